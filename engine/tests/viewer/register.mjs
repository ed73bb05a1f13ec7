// The operator registers the phantom from the viewer page: pivots the pointer
// (when no tip is configured), then for each fiducial,
// wait until the page says the tracked pointer rests still on its dot, then
// press "take" (fiducials 2 and 3 on each other's dots: the residuals must
// name them), redo the suspects on their own dots, and press "accept".
// Usage: node register.mjs ORIGIN TOKEN DOTS_JSON SCREENSHOT_PNG
// (DOTS_JSON: the dots in the patient reference's frame, mm, the test's truth
// for where the pointer rests). Prints a JSON report.
import { launchChromium } from './browser.mjs';

const [origin, token, dotsJson, screenshot] = process.argv.slice(2, 6);
const dots = JSON.parse(dotsJson);
const browser = await launchChromium();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const report = { takes: [], refusals: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on('console', (m) => console.error('page:', m.text()));
  await page.goto(`${origin}/#token=${token}&name=OR%20nurse`);
  await page.waitForFunction(() => window.scopecastStats && window.scopecastStats.channel === 'open' && window.scopecastStats.registration,
    null, { timeout: 30000 });
  report.role = await page.evaluate(() => window.scopecastStats.role);
  report.controls_shown = await page.evaluate(() => getComputedStyle(document.getElementById('registration')).display !== 'none');
  report.tracking_before = await page.evaluate(() => window.scopecastStats.tracking);
  const state = () => page.evaluate(() => window.scopecastStats.registration);
  const near = (tip, dot) => tip && Math.hypot(tip[0] - dot[0], tip[1] - dot[1], tip[2] - dot[2]) < 1.5;
  // Waits until the pointer rests still on `dot`, presses take, and waits for `done(state)`.
  async function takeOn(dot, done, label) {
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      const s = await state();
      if (s.pointer === 'still' && near(s.tip_mm, dot)) {
        const errors = await page.evaluate(() => window.scopecastStats.errors.length);
        await page.click('#regTake');
        const until = Date.now() + 1500;
        while (Date.now() < until) {
          await sleep(50);
          if (done(await state())) { report.takes.push(label); return; }
          const refused = await page.evaluate((n) => window.scopecastStats.errors.slice(n).map((e) => e.message), errors);
          if (refused.length) { report.refusals.push(...refused); break; }
        }
      }
      await sleep(50);
    }
    throw new Error(`could not take ${label}: ${JSON.stringify(await state())}`);
  }
  // No tip configured: pivot first (the simulated pointer pivots on the first dot at the start).
  if ((await state()).phase === 'pivot') {
    await page.click('#regPivot');
    await page.waitForFunction(() => window.scopecastStats.registration.phase !== 'pivot', null, { timeout: 15000 });
    const pivoted = await state();
    report.pivot = { phase: pivoted.phase, pivot_rms_mm: pivoted.pivot_rms_mm, message: pivoted.message };
  }
  // Fiducials 2 and 3 are touched in the wrong order: a wrong pairing.
  const order = dots.map((_, i) => (i === 1 ? 2 : i === 2 ? 1 : i));
  for (let i = 0; i < dots.length; i++) {
    await takeOn(dots[order[i]], (s) => s.fiducials[i].taken, `fiducial ${i + 1} on dot ${order[i] + 1}`);
    if (i === 3) await page.screenshot({ path: screenshot });
  }
  const suspects = (s) => s.fiducials.flatMap((f, i) => f.suspect ? [i + 1] : []);
  const wrong = await state();
  report.wrong = { phase: wrong.phase, fre_mm: wrong.fre_mm, message: wrong.message, suspects: suspects(wrong),
    residuals_mm: wrong.fiducials.map((f) => f.residual_mm),
    redo_selected: await page.evaluate(() => document.getElementById('regRedoWhich').value) };
  // Each suspect redone on its own dot (the page preselects the first suspect).
  for (let round = 0; round < 3 && suspects(await state()).length; round++) {
    const which = suspects(await state())[0];
    await page.selectOption('#regRedoWhich', String(which));
    await page.click('#regRedo');
    await page.waitForFunction((n) => window.scopecastStats.registration.next === n, which, { timeout: 5000 });
    await takeOn(dots[which - 1], (s) => s.phase === 'review', `fiducial ${which} redone on dot ${which}`);
  }
  const redone = await state();
  report.redone = { fre_mm: redone.fre_mm, tre_mm: redone.tre_mm, target: redone.target,
    residuals_mm: redone.fiducials.map((f) => f.residual_mm),
    leave_one_out_mm: redone.fiducials.map((f) => f.leave_one_out_mm), suspects: suspects(redone),
    panel: await page.evaluate(() => document.getElementById('registration').innerText) };
  await page.click('#regAccept');
  await page.waitForFunction(() => window.scopecastStats.registration.phase === 'accepted', null, { timeout: 5000 });
  await page.waitForFunction(() => window.scopecastStats.tracking && window.scopecastStats.tracking.tracked, null, { timeout: 10000 });
  const accepted = await state();
  report.accepted = { phase: accepted.phase, accepted_by: accepted.accepted_by,
    tracking_after: await page.evaluate(() => window.scopecastStats.tracking) };
  report.frames = await page.evaluate(() => window.scopecastStats.frames);
  report.errors = await page.evaluate(() => window.scopecastStats.errors.map((e) => e.message));
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
