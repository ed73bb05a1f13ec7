// One viewer page sends a sequence of data-channel messages and reports its
// state after each. Usage: node send.mjs ORIGIN TOKEN STEPS_JSON, where
// STEPS_JSON is [[wait_ms, message or null], ...]: wait, then send.
// Prints { role, after: [{ recording, playback, errors, frames, state, presence }, ...] }.
import { launchChromium } from './browser.mjs';

const [origin, token, stepsJson] = process.argv.slice(2, 5);
const steps = JSON.parse(stepsJson);
const browser = await launchChromium();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error('page:', m.text()));
  await page.goto(`${origin}/#token=${token}&name=Sender`);
  await page.waitForFunction(() => window.scopecastStats && window.scopecastStats.channel === 'open' && window.scopecastStats.role,
    null, { timeout: 30000 });
  await sleep(300);
  const result = { role: await page.evaluate(() => window.scopecastStats.role), after: [] };
  result.record_button = await page.evaluate(() => getComputedStyle(document.getElementById('record')).display !== 'none');
  for (const [wait, message] of steps) {
    await sleep(wait);
    if (message) await page.evaluate((m) => window.scopecast.send(m), message);
    await sleep(300);
    result.after.push(await page.evaluate(() => {
      const s = window.scopecastStats;
      return { recording: s.recording, playback: s.playback, errors: s.errors.map((e) => e.code), frames: s.frames || 0,
        state: s.state, presence: (s.presence || []).map((p) => `${p.name} (${p.role})`) };
    }));
  }
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
