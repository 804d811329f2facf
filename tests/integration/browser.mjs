// Browser helpers for the admin page tests: Debian's chromium driven by
// playwright-core, headless, with a fresh profile per launch. Every wait is
// bounded (the context's default timeout).
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const WAIT_MS = 10000;

// The meeting tests run a presenter and viewers as pages side by side:
// a page behind another must keep its timers and animation frames.
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows'];

/** Starts chromium with an empty profile; close() removes the profile. */
export async function launchBrowser({ locale = 'en-US', viewport = { width: 1280, height: 900 } } = {}) {
  const profile = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    locale,
    viewport,
    timeout: 30000,
  });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS * 2);
  const errors = [];
  const watch = (page) => {
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // A failed API call (401 before login, 4xx under test) is logged by chromium; not a page error.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
    });
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return {
    context,
    errors,
    async page() {
      const p = context.pages()[0] ?? await context.newPage();
      return p;
    },
    async close() {
      await context.close().catch(() => {});
      await fsp.rm(profile, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** Opens /admin/ and logs in through the login form. */
export async function loginUi(page, server, { user = 'admin', password = server.adminPassword } = {}) {
  await page.goto(`${server.url}/admin/`);
  await page.locator('#login-user').fill(user);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-submit').click();
  await page.locator('#settings-form fieldset.section').first().waitFor();
}

/** The CSS selector of a setting's input ("proxy.host" → "#set-proxy-host"). */
export function field(key) {
  return `#set-${key.replace(/[^A-Za-z0-9]+/g, '-')}`;
}

/** The error element beside a setting's input. */
export function fieldError(key) {
  return `${field(key)}-error`;
}

/** Clicks through click() and waits (bounded) for the download it starts:
 * {name, text}. */
export async function downloadText(page, click) {
  const [download] = await Promise.all([page.waitForEvent('download'), click()]);
  const file = await download.path();
  return { name: download.suggestedFilename(), text: await fsp.readFile(file, 'utf8') };
}
