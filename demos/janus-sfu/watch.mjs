// Opens N subscriber pages through Janus and one page straight from the
// station (WHEP) in one headless Chromium, lets them play, and prints one
// JSON object: per page its frames, size and glass-to-glass p50/p99 (from the
// timecode strip, one clock). Usage:
//   node watch.mjs JANUS_PAGE_URL N DIRECT_VIEWER_URL SECONDS
import { createRequire } from 'node:module';
const require = createRequire(process.env.SCOPECAST_NODE_MODULES + '/');
const { chromium } = require('playwright-core');

const [janusUrl, count, directUrl, seconds] = [process.argv[2], Number(process.argv[3]), process.argv[4], Number(process.argv[5] || 10)];
const browser = await chromium.launch({
  executablePath: process.env.SCOPECAST_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required',
         // Every page is a viewer in its own right: none may be throttled as a background tab.
         '--disable-renderer-backgrounding', '--disable-background-timer-throttling', '--disable-backgrounding-occluded-windows'],
});
const quantile = (values, q) => {
  const v = [...values].sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))] : null;
};
const result = { janus: [], direct: null };
try {
  // One context (one window) per viewer, so each page is a foreground tab.
  const newPage = async () => (await browser.newContext({ viewport: { width: 640, height: 360 } })).newPage();
  const pages = [];
  for (let i = 0; i < count; i++) {
    const page = await newPage();
    await page.goto(janusUrl);
    pages.push(page);
  }
  const direct = await newPage();
  await direct.goto(directUrl);
  const all = [...pages, direct];
  // Everyone playing, then measure `seconds` from a clean start.
  const deadline = Date.now() + 60000;
  for (const page of all) {
    await page.waitForFunction(() => window.scopecastStats && window.scopecastStats.frames >= 30, null, { timeout: Math.max(1000, deadline - Date.now()) }).catch(() => {});
  }
  for (const page of all) await page.evaluate(() => { const s = window.scopecastStats; s.latencies = []; s.frames_at_start = s.frames; s.max_gap_ms = 0; });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const figures = async (page) => page.evaluate(() => {
    const s = window.scopecastStats;
    return { frames: s.frames - (s.frames_at_start || 0), width: s.width, height: s.height, state: s.state, latencies: s.latencies, max_gap_ms: s.max_gap_ms };
  });
  for (const page of pages) {
    const f = await figures(page);
    result.janus.push({ frames: f.frames, width: f.width, height: f.height, state: f.state, p50: quantile(f.latencies, 0.5), p99: quantile(f.latencies, 0.99), max_gap_ms: f.max_gap_ms, latencies: f.latencies });
  }
  const f = await figures(direct);
  result.direct = { frames: f.frames, width: f.width, height: f.height, state: f.state, p50: quantile(f.latencies, 0.5), p99: quantile(f.latencies, 0.99), max_gap_ms: f.max_gap_ms, latencies: f.latencies };
} finally {
  console.log(JSON.stringify(result));
  await browser.close();
}
