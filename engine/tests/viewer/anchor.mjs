// A mark on the anatomy seen from another page: the drawer (an operator's
// page, "on anatomy" chosen) finds the painted dot nearest the picture's
// centre in the frame it shows and draws a circle around it with the mouse;
// the watcher (a viewer's page) sees the circle, then, WAIT_MS later, sees it
// still around the same dot, which the moving scope has carried elsewhere.
// The drawer holds its picture while drawing, as a surgeon may (the page names
// the frame on screen, so the circle is lifted in the frame the dot was found in).
// Usage: node anchor.mjs ORIGIN OPERATOR_TOKEN VIEWER_URL BEFORE_PNG AFTER_PNG WAIT_MS
// Prints a JSON report.
import { launchChromium } from './browser.mjs';

const [origin, token, viewerUrl, beforePng, afterPng, waitMs] = process.argv.slice(2, 8);
const browser = await launchChromium();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const report = {};
// Runs in the page: the dark blob (a painted dot: 100 to 3000 px, roughly round)
// nearest the centre of the frame on screen, in video pixels.
function findDot() {
  const video = document.getElementById('video');
  const w = video.videoWidth, h = video.videoHeight;
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, w, h);
  const data = ctx.getImageData(0, 0, w, h).data;
  const dark = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) dark[i] = (data[4 * i] + data[4 * i + 1] + data[4 * i + 2]) / 3 < 70 ? 1 : 0;
  let best = null;
  for (let start = 0; start < w * h; start++) {
    if (dark[start] !== 1) continue;
    const stack = [start];
    dark[start] = 2;
    let n = 0, sx = 0, sy = 0, x0 = w, x1 = 0, y0 = h, y1 = 0;
    while (stack.length) {
      const i = stack.pop();
      const x = i % w, y = (i - x) / w;
      n++; sx += x; sy += y;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      for (const j of [i - 1, i + 1, i - w, i + w]) {
        if (j >= 0 && j < w * h && dark[j] === 1 && Math.abs((j % w) - x) <= 1) { dark[j] = 2; stack.push(j); }
      }
    }
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    if (n < 100 || n > 3000 || bw > 2 * bh || bh > 2 * bw || n < 0.5 * bw * bh) continue;
    const c = [sx / n, sy / n];
    const d = Math.hypot(c[0] - w / 2, c[1] - h / 2);
    if (!best || d < best.d) best = { x: c[0], y: c[1], d, n, frame_ms: window.scopecastStats.shown_frame_ms };
  }
  return best;
}
try {
  const drawer = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  drawer.on('console', (m) => console.error('drawer:', m.text()));
  await drawer.goto(`${origin}/#token=${token}&name=Dr%20A&anchor=anatomy`);
  const watcher = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await watcher.goto(`${viewerUrl}&name=Dr%20B`);
  const ready = () => window.scopecastStats.channel === 'open' && window.scopecastStats.frames > 30 &&
    window.scopecastStats.shown_frame_ms !== undefined && window.scopecastStats.width === 1280;
  await drawer.waitForFunction(ready, null, { timeout: 60000 });
  await watcher.waitForFunction(ready, null, { timeout: 60000 });
  report.roles = [await drawer.evaluate(() => window.scopecastStats.role), await watcher.evaluate(() => window.scopecastStats.role)];
  // The drawer holds the picture while drawing (the page keeps naming the frame on
  // screen, so every point is lifted in the frame the dot was found in); live again after.
  await drawer.evaluate(() => document.getElementById('video').pause());
  await sleep(300);
  const dot = await drawer.evaluate(findDot);
  if (!dot) throw new Error('no painted dot found on the drawer\'s page');
  report.dot = dot;
  // Magenta and pinned, so the test can find it and it does not fade.
  await drawer.evaluate(() => { document.getElementById('colour').value = '#ff00ff'; document.getElementById('pinned').checked = true; });
  // A circle of 30 px around it, drawn quickly (the page sends each point with the frame on screen).
  const r = 30;
  await drawer.mouse.move(dot.x + r, dot.y);
  await drawer.mouse.down();
  for (let k = 1; k <= 32; k++) {
    const a = (2 * Math.PI * k) / 32;
    await drawer.mouse.move(dot.x + r * Math.cos(a), dot.y + r * Math.sin(a));
  }
  await drawer.mouse.up();
  report.drawn_on_frame_ms = await drawer.evaluate(() => window.scopecastStats.shown_frame_ms);
  await drawer.evaluate(() => document.getElementById('video').play());
  const anchored = () => (window.scopecastStats.marks || []).some((m) => m.anchor === 'anatomy' && m.on_anatomy > 20);
  await watcher.waitForFunction(anchored, null, { timeout: 10000 });
  await sleep(1000);
  await watcher.screenshot({ path: beforePng });
  report.before_ms = Date.now();
  await sleep(Number(waitMs));
  await watcher.screenshot({ path: afterPng });
  report.after_ms = Date.now();
  report.watcher_marks = await watcher.evaluate(() => window.scopecastStats.marks);
  report.watcher_panel = await watcher.evaluate(() => document.getElementById('marks').innerText);
  report.drawer_panel = await drawer.evaluate(() => document.getElementById('marks').innerText);
  report.errors = await drawer.evaluate(() => window.scopecastStats.errors.map((e) => e.message));
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
