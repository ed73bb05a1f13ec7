// Debian's headless Chromium driven by playwright-core (from
// SCOPECAST_NODE_MODULES; never a downloaded browser), started the same way
// by every viewer script: no sandbox (root in CI), no GPU, no background
// traffic, autoplay allowed. SCOPECAST_CHROMIUM overrides the binary.
import { createRequire } from 'node:module';

const require = createRequire(process.env.SCOPECAST_NODE_MODULES + '/');
const { chromium } = require('playwright-core');

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.SCOPECAST_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
  });
}
