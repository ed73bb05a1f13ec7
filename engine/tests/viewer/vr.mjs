// The viewer page's headset mode in headless Chromium, which has no WebXR of
// its own: Meta's Immersive Web Emulation Runtime (npm `iwer`) is injected
// before the page loads and emulates a Quest 3 with its controllers.
// Usage: node vr.mjs ORIGIN ANNOTATOR_TOKEN TIMEOUT_MS
//
// The page plays a side-by-side stereo source (`stereo=sbs`), enters
// immersive-vr, renders both eyes; the right controller is aimed at the
// virtual screen, its trigger held while it sweeps sideways, then released:
// the stroke must appear in the video at the point the ray hit.
import { launchChromium } from './browser.mjs';
import fs from 'node:fs';

const [origin, token] = process.argv.slice(2, 4);
const timeoutMs = Number(process.argv[4] || 60000);
const iwer = fs.readFileSync(process.env.SCOPECAST_NODE_MODULES + '/iwer/build/iwer.min.js', 'utf8');
const browser = await launchChromium();
const result = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('console', (m) => console.error('page:', m.text()));
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.addInitScript({ content: `${iwer}
    ;(() => { const device = new IWER.XRDevice(IWER.metaQuest3); device.installRuntime({ forceInstall: true }); window.__xrDevice = device; })();` });
  await page.goto(`${origin}/#token=${token}&stereo=sbs&name=Headset`);
  await page.waitForFunction(() => {
    const s = window.scopecastStats;
    return s && s.frames >= 30 && s.channel === 'open' && s.role && s.xr.state === 'available';
  }, null, { timeout: timeoutMs });
  result.button_visible = await page.isVisible('#enterVr');
  await page.click('#enterVr');
  await page.waitForFunction(() => window.scopecastStats.xr.frames >= 20, null, { timeout: 20000 });
  Object.assign(result, await page.evaluate(() => {
    const x = window.scopecastStats.xr;
    return { state: x.state, views: x.views, eyes: x.eyes, uv: x.uv };
  }));
  // Aim the right controller straight ahead from beside the head.
  await page.evaluate(() => {
    const d = window.__xrDevice, head = d.position, right = d.controllers.right;
    right.position.set(head.x + 0.2, head.y - 0.1, head.z - 0.3);
    right.quaternion.set(0, 0, 0, 1);
  });
  await page.waitForFunction(() => window.scopecastStats.xr.hit !== null, null, { timeout: 10000 });
  result.hit = await page.evaluate(() => window.scopecastStats.xr.hit);
  await page.evaluate(() => { window.scopecastProbe = { x: window.scopecastStats.xr.hit[0], y: window.scopecastStats.xr.hit[1], rgb: [0, 255, 0], tolerance: 90, seenAt: null }; });
  await page.evaluate(() => window.__xrDevice.controllers.right.updateButtonValue('trigger', 1));
  for (let k = 1; k <= 10; k++) {
    await sleep(50);
    await page.evaluate((k) => { const d = window.__xrDevice; d.controllers.right.position.x = d.position.x + 0.2 + 0.02 * k; }, k);
  }
  await sleep(100);
  await page.evaluate(() => window.__xrDevice.controllers.right.updateButtonValue('trigger', 0));
  await page.waitForFunction(() => window.scopecastStats.xr.strokes >= 1, null, { timeout: 5000 }).catch(() => {});
  result.strokes = await page.evaluate(() => window.scopecastStats.xr.strokes);
  result.stroke_seen = await page.waitForFunction(() => window.scopecastProbe.seenAt, null, { timeout: 5000 })
    .then(() => true).catch(() => false);
  result.probe_last = await page.evaluate(() => window.scopecastProbe.last);
  result.errors = await page.evaluate(() => window.scopecastStats.errors);
  result.xr_frames = await page.evaluate(() => window.scopecastStats.xr.frames);
} finally {
  console.log(JSON.stringify(result));
  await browser.close();
}
