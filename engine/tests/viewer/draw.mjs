// Telestration between two viewer pages in one headless Chromium (one clock):
// an annotator draws, a watcher looks for the stroke in its decoded video.
// Prints one JSON object with what happened. Usage:
//   node draw.mjs ORIGIN ANNOTATOR_TOKEN WATCHER_TOKEN TRIALS TIMEOUT_MS
//
// 1. Both pages play; presence must list both with their roles.
// 2. Refusals: the watcher (viewer role) tries to draw; the annotator sends
//    garbage, an oversized message, a wrong version and a flood of laser
//    moves; each gets its error code back on its own channel.
// 3. Pen-to-video latency, TRIALS times: the annotator sends a green stroke
//    at a fresh spot (pen_down, pen_move, pen_up in one go, time t0); the
//    watcher's frame callback sees the spot turn green (time t1); t1 - t0.
//    Then undo, and the spot must clear again.
// 4. Drawing with the mouse on a letterboxed page: a real drag across a
//    point must land on the same image point in the watcher's video.
import { launchChromium } from './browser.mjs';

const [origin, annotatorToken, watcherToken] = process.argv.slice(2, 5);
const trials = Number(process.argv[5] || 10);
const timeoutMs = Number(process.argv[6] || 60000);
const browser = await launchChromium();
const result = { latencies_ms: [], misses: 0, errors_seen: {}, presence: [], undo_cleared: 0 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  // The annotator's window is squarer than the video: letterboxed top and bottom.
  const annotator = await browser.newPage({ viewport: { width: 800, height: 800 } });
  const watcher = await browser.newPage({ viewport: { width: 960, height: 540 } });
  for (const [page, who] of [[annotator, 'annotator'], [watcher, 'watcher']]) {
    page.on('console', (m) => console.error(`${who}:`, m.text()));
  }
  await annotator.goto(`${origin}/#token=${annotatorToken}&name=Dr%20A`);
  await watcher.goto(`${origin}/#token=${watcherToken}&name=Watcher%20B`);
  const ready = (page) => page.waitForFunction(() => {
    const s = window.scopecastStats;
    return s && s.frames >= 30 && s.channel === 'open' && s.role !== null;
  }, null, { timeout: timeoutMs });
  await ready(annotator);
  await ready(watcher);
  await watcher.waitForFunction(() => window.scopecastStats.presence.length >= 2, null, { timeout: 10000 }).catch(() => {});
  result.presence = await watcher.evaluate(() => window.scopecastStats.presence);
  result.roles = { annotator: await annotator.evaluate(() => window.scopecastStats.role), watcher: await watcher.evaluate(() => window.scopecastStats.role) };

  // 2. Refusals.
  await watcher.evaluate(() => window.scopecast.send({ type: 'pen_down', stroke: 1, at: [0.5, 0.5], colour: '#ff0000', width: 8 }));
  // Raw sends bypass the page's own { v: 1 } wrapper.
  await annotator.evaluate(() => window.scopecast.sendRaw('this is not json'));
  await annotator.evaluate(() => window.scopecast.sendRaw(JSON.stringify({ v: 1, type: 'hello', name: 'x'.repeat(9000) })));
  await annotator.evaluate(() => window.scopecast.sendRaw(JSON.stringify({ v: 7, type: 'undo_mine' })));
  await annotator.evaluate(() => window.scopecast.sendRaw(JSON.stringify({ v: 1, type: 'pen_move', stroke: 99, points: [[0.1, 0.1]] })));
  await annotator.evaluate(() => { for (let i = 0; i < 400; i++) window.scopecast.send({ type: 'laser', at: [0.02, 0.02] }); });
  await sleep(1500);
  for (const [page, who] of [[annotator, 'annotator'], [watcher, 'watcher']]) {
    const codes = await page.evaluate(() => window.scopecastStats.errors.map((e) => e.code));
    result.errors_seen[who] = [...new Set(codes)];
  }
  result.watcher_still_playing = await watcher.evaluate(() => window.scopecastStats.frames);
  await sleep(1600); // the laser dot expires

  // 3. Pen-to-video latency.
  for (let i = 0; i < trials; i++) {
    const x = 0.2 + 0.6 * ((i * 7) % 10) / 10, y = 0.25 + 0.5 * ((i * 3) % 5) / 5;
    await watcher.evaluate(([x, y]) => { window.scopecastProbe = { x, y, rgb: [0, 255, 0], tolerance: 90, seenAt: null }; }, [x, y]);
    const t0 = await annotator.evaluate(([x, y, i]) => {
      const t = performance.timeOrigin + performance.now();
      window.scopecast.send({ type: 'pen_down', stroke: 1000 + i, at: [x - 0.01, y], colour: '#00ff00', width: 16 });
      window.scopecast.send({ type: 'pen_move', stroke: 1000 + i, points: [[x, y], [x + 0.01, y]] });
      window.scopecast.send({ type: 'pen_up', stroke: 1000 + i });
      return t;
    }, [x, y, i]);
    const seen = await watcher.waitForFunction(() => window.scopecastProbe.seenAt, null, { timeout: 5000 })
      .then((h) => h.jsonValue()).catch(() => null);
    if (seen === null) {
      result.misses += 1;
      result.last_probe = await watcher.evaluate(() => window.scopecastProbe.last);
    } else {
      result.latencies_ms.push(seen - t0);
    }
    await annotator.evaluate(() => window.scopecast.send({ type: 'undo_mine' }));
    // The spot must return to the tissue's colour.
    const cleared = await watcher.waitForFunction(() => {
      const p = window.scopecastProbe;
      return p.last && !(p.last[1] > 200 && p.last[0] < 100);
    }, null, { timeout: 5000, polling: 50 }).then(() => true).catch(() => false);
    await watcher.evaluate(() => { window.scopecastProbe.seenAt = null; });
    if (cleared) result.undo_cleared += 1;
    await sleep(250); // within the control rate limit (undo: 5 per second)
  }

  // 4. A real mouse drag on the letterboxed annotator page, across the image point (0.5, 0.3).
  await watcher.evaluate(() => { window.scopecastProbe = { x: 0.5, y: 0.3, rgb: [0, 255, 0], tolerance: 90, seenAt: null }; });
  const box = await annotator.evaluate(() => {
    const v = document.getElementById('video').getBoundingClientRect();
    return { left: v.left, top: v.top, width: v.width, height: v.height, vw: window.scopecastStats.width, vh: window.scopecastStats.height };
  });
  const scale = Math.min(box.width / box.vw, box.height / box.vh);
  const px = (ix, iy) => [box.left + (box.width - box.vw * scale) / 2 + ix * box.vw * scale, box.top + (box.height - box.vh * scale) / 2 + iy * box.vh * scale];
  const [sx, sy] = px(0.4, 0.3), [ex, ey] = px(0.6, 0.3);
  await annotator.mouse.move(sx, sy);
  await annotator.mouse.down();
  for (let k = 1; k <= 20; k++) await annotator.mouse.move(sx + (ex - sx) * k / 20, sy + (ey - sy) * k / 20);
  await annotator.mouse.up();
  result.mouse_stroke_seen = await watcher.waitForFunction(() => window.scopecastProbe.seenAt, null, { timeout: 5000 })
    .then(() => true).catch(() => false);
  result.letterbox = { viewport: [800, 800], video: [box.vw, box.vh] };
} finally {
  console.log(JSON.stringify(result));
  await browser.close();
}
