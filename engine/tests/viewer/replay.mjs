// A replay watched by a trainer (operator token) and a trainee (viewer
// token) in one headless Chromium (one clock). Prints one JSON object with
// the timecodes each phase presented on the trainee's page, as
// [Date.now() ms, low 36 bits of the recorded capture time in Unix ms].
// Usage: node replay.mjs ORIGIN TRAINER_TOKEN TRAINEE_TOKEN SEEK_MS SEEK_KEYFRAME_WALL
//
// 1. Both pages play; the trainee's page shows the playback state.
// 2. normal: 2 s at 1×.
// 3. The trainee tries to seek: refused (forbidden), nothing changes.
// 4. The trainer seeks to SEEK_MS; seek_latency_ms is the time from sending
//    to the trainee presenting the keyframe whose recorded time is
//    SEEK_KEYFRAME_WALL (masked to 36 bits), or a frame within 200 ms after
//    it (seek_first_shown: which).
// 5. fast: 2× for 2 s; slow: 0.5× for 2 s; held: paused for 1.5 s;
//    resumed: 1 s after play.
// 6. The trainer uses the page's own controls (hold button, speed list):
//    the trainee's page follows (ui_paused, ui_speed, ui_playing).
import { launchChromium } from './browser.mjs';

const [origin, trainerToken, traineeToken] = process.argv.slice(2, 5);
const seekMs = Number(process.argv[5]);
const seekKeyframeWall = Number(process.argv[6]);
const browser = await launchChromium();
const result = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  const trainer = await browser.newPage({ viewport: { width: 800, height: 500 } });
  const trainee = await browser.newPage({ viewport: { width: 800, height: 500 } });
  for (const [page, who] of [[trainer, 'trainer'], [trainee, 'trainee']]) {
    page.on('console', (m) => console.error(`${who}:`, m.text()));
  }
  await trainer.goto(`${origin}/#token=${trainerToken}&name=Trainer`);
  await trainee.goto(`${origin}/#token=${traineeToken}&name=Trainee`);
  const ready = (page) => page.waitForFunction(() => {
    const s = window.scopecastStats;
    return s && s.frames >= 20 && s.playback !== null && s.channel === 'open';
  }, null, { timeout: 30000 });
  await Promise.all([ready(trainer), ready(trainee)]);
  const send = (page, message) => page.evaluate((m) => window.scopecast.send(m), message);
  const timecodes = () => trainee.evaluate(() => window.scopecastStats.timecodes.slice());
  const phase = async (ms) => {
    const from = Date.now();
    await sleep(ms);
    const to = Date.now();
    return (await timecodes()).filter(([t]) => t >= from && t <= to);
  };
  result.trainer_role = await trainer.evaluate(() => window.scopecastStats.role);
  result.trainee_role = await trainee.evaluate(() => window.scopecastStats.role);
  result.bar_shown = await trainee.evaluate(() => getComputedStyle(document.getElementById('playback')).display !== 'none');
  result.trainee_controls_disabled = await trainee.evaluate(() => document.getElementById('seekBar').disabled);
  result.trainer_tools_shown = await trainer.evaluate(() => getComputedStyle(document.getElementById('tools')).display !== 'none');
  result.trainer_draw_errors = await trainer.evaluate(async () => {
    window.scopecast.send({ type: 'laser', at: [0.5, 0.5] });
    await new Promise((r) => setTimeout(r, 300));
    return window.scopecastStats.errors.map((e) => e.code);
  });

  result.normal = await phase(2000);

  await send(trainee, { type: 'seek', to_ms: 0 });
  await sleep(300);
  result.trainee_errors = await trainee.evaluate(() => window.scopecastStats.errors.map((e) => e.code));

  const sentAt = Date.now();
  await send(trainer, { type: 'seek', to_ms: seekMs });
  // The picture the seek landed on: the keyframe, or (when the browser
  // presents two frames in one display refresh) one of the frames just after it.
  const landed = (v) => v >= seekKeyframeWall % 2 ** 36 && v < seekKeyframeWall % 2 ** 36 + 200;
  try {
    await trainee.waitForFunction(([since, key]) => window.scopecastStats.timecodes.some(([t, v]) => t >= since && v >= key && v < key + 200),
      [sentAt, seekKeyframeWall % 2 ** 36], { timeout: 5000, polling: 5 });
    const hit = (await timecodes()).find(([t, v]) => t >= sentAt && landed(v));
    result.seek_latency_ms = hit[0] - sentAt;
    result.seek_first_shown = hit[1];
  } catch (e) {
    result.seek_latency_ms = null;
    result.after_seek = (await timecodes()).filter(([t]) => t >= sentAt).slice(0, 10);
  }
  result.trainee_playback_after_seek = await trainee.evaluate(() => window.scopecastStats.playback);

  await send(trainer, { type: 'speed', factor: 2 });
  await sleep(400);
  result.fast = await phase(2000);
  await send(trainer, { type: 'speed', factor: 0.5 });
  await sleep(400);
  result.slow = await phase(2000);
  result.trainee_speed = await trainee.evaluate(() => window.scopecastStats.playback.speed);
  await send(trainer, { type: 'pause' });
  await sleep(400);
  result.held = await phase(1500);
  result.trainee_paused = await trainee.evaluate(() => window.scopecastStats.playback.paused);
  await send(trainer, { type: 'play' });
  await sleep(200);
  result.resumed = await phase(1000);
  // The trainer's own controls on the page: the hold button and the speed list.
  await trainer.click('#playPause');
  await sleep(400);
  result.ui_paused = await trainee.evaluate(() => window.scopecastStats.playback.paused);
  await trainer.selectOption('#speed', '4');
  await sleep(400);
  result.ui_speed = await trainee.evaluate(() => window.scopecastStats.playback.speed);
  await trainer.click('#playPause');
  await sleep(400);
  result.ui_playing = await trainee.evaluate(() => !window.scopecastStats.playback.paused);
  result.trainee_frames = await trainee.evaluate(() => window.scopecastStats.frames);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
