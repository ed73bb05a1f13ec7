// Plays the station's viewer page in headless Chromium (Debian's, driven by
// playwright-core) until `frames` frames were presented, then prints the
// page's statistics as JSON. Usage: node play.mjs URL FRAMES TIMEOUT_MS
//
// With SCOPECAST_RELAY=HOST:PORT and SCOPECAST_RELAY_CONTROL=HOST:PORT the
// media goes through a test-controlled UDP relay: the offer leaves without
// candidates, trickle PATCHes are held back, the answer's host candidate is
// rewritten to the relay, and the relay is told (one datagram to its control
// port) where the station really listens.
import { launchChromium } from './browser.mjs';
import dgram from 'node:dgram';

const [url, frames, timeoutMs] = [process.argv[2], Number(process.argv[3] || 300), Number(process.argv[4] || 20000)];
const relay = process.env.SCOPECAST_RELAY;
const relayControl = process.env.SCOPECAST_RELAY_CONTROL;
const browser = await launchChromium();
function tellRelay(target) {
  const [host, port] = relayControl.split(':');
  const socket = dgram.createSocket('udp4');
  return new Promise((resolve) => socket.send(`target ${target}`, Number(port), host, () => { socket.close(); resolve(); }));
}
try {
  // A self-signed certificate (HTTPS off loopback) is accepted here; a person checks its fingerprint.
  const page = await browser.newPage({ ignoreHTTPSErrors: true });
  page.on('console', (m) => console.error('page:', m.text()));
  if (relay) {
    const [relayHost, relayPort] = relay.split(':');
    await page.route('**/whep**', async (route) => {
      const request = route.request();
      if (request.method() === 'PATCH') return route.fulfill({ status: 204 });
      if (request.method() !== 'POST') return route.continue();
      const offer = request.postData().split('\r\n').filter((l) => !l.startsWith('a=candidate')).join('\r\n');
      const response = await route.fetch({ postData: offer });
      let answer = await response.text();
      const m = answer.match(/a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/);
      if (m) {
        await tellRelay(`${m[1]}:${m[2]}`);
        answer = answer.split('\r\n')
          .filter((l) => !l.startsWith('a=candidate') || l.includes(` ${m[1]} ${m[2]} typ host`))
          .map((l) => l.replace(` ${m[1]} ${m[2]} typ host`, ` ${relayHost} ${relayPort} typ host`))
          .join('\r\n');
      }
      await route.fulfill({ response, body: answer });
    });
  }
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
