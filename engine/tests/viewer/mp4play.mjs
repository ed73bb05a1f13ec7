// Opens recorded MP4 segments directly in headless Chromium (a file:// URL:
// the browser's own <video> player) and reports, for each after 1.5 s, its
// size, duration, how far it played and any media error.
// Usage: node mp4play.mjs FILE...
import { launchChromium } from './browser.mjs';

const browser = await launchChromium();
const result = {};
try {
  for (const file of process.argv.slice(2)) {
    const page = await browser.newPage();
    await page.goto('file://' + file);
    await page.waitForTimeout(1500);
    result[file] = await page.evaluate(() => {
      const v = document.querySelector('video');
      return v ? { width: v.videoWidth, height: v.videoHeight, duration: v.duration, played: v.currentTime, error: v.error && v.error.code } : null;
    });
    await page.close();
  }
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
