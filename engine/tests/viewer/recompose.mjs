// A trainer replays a session whose clean video was kept: the overlays are
// drawn afresh, so the recorded stroke shows, the annotations layer can be
// switched off and on, and a new stroke can be drawn over the replay.
// Then the trainer seeks to SEEK_MS: seek_latency_ms until the page shows the
// keyframe at or before it (recorded time SEEK_KEYFRAME_WALL) or a frame
// within 200 ms after it, decoded, composited and encoded afresh.
// Usage: node recompose.mjs ORIGIN TRAINER_TOKEN RECORDED_X RECORDED_Y SEEK_MS SEEK_KEYFRAME_WALL
// Prints { recorded_stroke_seen, hidden_pixel, shown_again, new_stroke_seen,
// timecodes, errors }: pixels as [r, g, b] read at the recorded stroke.
import { launchChromium } from './browser.mjs';

const [origin, token] = process.argv.slice(2, 4);
const [x, y] = [Number(process.argv[4]), Number(process.argv[5])];
const [seekMs, seekKeyframeWall] = [Number(process.argv[6]), Number(process.argv[7]) % 2 ** 36];
const browser = await launchChromium();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 500 } });
  page.on('console', (m) => console.error('trainer:', m.text()));
  await page.goto(`${origin}/#token=${token}&name=Trainer`);
  await page.waitForFunction(() => {
    const s = window.scopecastStats;
    return s && s.frames >= 10 && s.playback !== null && s.channel === 'open';
  }, null, { timeout: 30000 });
  const probe = (px, py, rgb) => page.evaluate(([px, py, rgb]) => {
    window.scopecastProbe = { x: px, y: py, rgb, tolerance: 70, seenAt: null, last: null };
  }, [px, py, rgb]);
  const seen = (ms) => page.waitForFunction(() => window.scopecastProbe.seenAt !== null, null, { timeout: ms, polling: 20 })
    .then(() => true, () => false);
  const pixel = () => page.evaluate(() => window.scopecastProbe.last);
  const send = (m) => page.evaluate((m) => window.scopecast.send(m), m);

  await probe(x, y, [0, 255, 0]);
  result.recorded_stroke_seen = await seen(20000);
  await send({ type: 'pause' });
  await sleep(500);
  await send({ type: 'layer', layer: 'annotations', visible: false });
  await sleep(1000);
  result.hidden_pixel = await pixel();
  await probe(x, y, [0, 255, 0]);
  await send({ type: 'layer', layer: 'annotations', visible: true });
  result.shown_again = await seen(3000);
  await probe(0.5, 0.75, [0, 0, 255]);
  await send({ type: 'pen_down', stroke: 1, at: [0.3, 0.75], colour: '#0000ff', width: 16, pinned: true });
  await send({ type: 'pen_move', stroke: 1, points: [[0.5, 0.75], [0.7, 0.75]] });
  await send({ type: 'pen_up', stroke: 1 });
  result.new_stroke_seen = await seen(3000);
  result.new_stroke_pixel = await pixel();
  await send({ type: 'play' });
  await sleep(1500);
  result.timecodes = await page.evaluate(() => window.scopecastStats.timecodes.slice(-40));
  const sentAt = Date.now();
  await send({ type: 'seek', to_ms: seekMs });
  try {
    await page.waitForFunction(([since, key]) => window.scopecastStats.timecodes.some(([t, v]) => t >= since && v >= key && v < key + 200),
      [sentAt, seekKeyframeWall], { timeout: 5000, polling: 5 });
    const hit = (await page.evaluate(() => window.scopecastStats.timecodes.slice()))
      .find(([t, v]) => t >= sentAt && v >= seekKeyframeWall && v < seekKeyframeWall + 200);
    result.seek_latency_ms = hit[0] - sentAt;
  } catch (e) {
    result.seek_latency_ms = null;
  }
  result.errors = await page.evaluate(() => window.scopecastStats.errors.map((e) => e.code));
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
