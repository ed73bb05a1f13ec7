// Plays the station's viewer page in headless Chromium (Debian's, driven by
// playwright-core) until `frames` frames were presented, then prints the
// page's statistics as JSON. Usage: node play.mjs URL FRAMES TIMEOUT_MS
import { createRequire } from 'node:module';
const require = createRequire(process.env.SCOPECAST_NODE_MODULES + '/');
const { chromium } = require('playwright-core');

const [url, frames, timeoutMs] = [process.argv[2], Number(process.argv[3] || 300), Number(process.argv[4] || 20000)];
const browser = await chromium.launch({
  executablePath: process.env.SCOPECAST_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error('page:', m.text()));
  await page.goto(url);
  const started = Date.now();
  try {
    await page.waitForFunction((n) => window.scopecastStats && window.scopecastStats.frames >= n, frames, { timeout: timeoutMs });
  } catch (e) {
    // Report what there is; the Rust test decides.
  }
  const stats = await page.evaluate(() => window.scopecastStats);
  stats.elapsed_ms = Date.now() - started;
  console.log(JSON.stringify(stats));
} finally {
  await browser.close();
}
