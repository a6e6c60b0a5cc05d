// Issue #11: people sign in through the agency's OpenID Provider, with the
// server as the confidential client. In Chromium: the frontend's "Sign in"
// link, the provider's real login and consent pages, back on the page
// signed in (`me` answers), an anchor download saves the file; "Sign out"
// ends the session here and at the provider, and the link answers 401. No
// token ever reaches the page.
//
// Origins: the frontend is http://localhost:F, the API http://localhost:A
// (the same site), the provider http://127.0.0.1:P (another site).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import {
  ALABAMA,
  freePort,
  launchChromium,
  oidcProvider,
  sha256,
  slot,
  startPages,
  startServer,
  uploadFile,
} from '../harness.js';

const NAME = 'Alabama Q1 – signed in.txt';
const BYTES = Buffer.from(Array.from({ length: 2000 }, (_, i) => `case ${i}\t${i * 3}\n`).join(''), 'utf8');

let server;
let pages;
let browser;
let frontend;
let provider;

before(async () => {
  provider = oidcProvider();
  pages = await startPages();
  frontend = `http://localhost:${pages.port}`;
  const port = await freePort();
  server = await startServer({
    host: 'localhost',
    port,
    corsOrigins: [frontend],
    env: provider.vars(`http://localhost:${port}`),
  });
  // The user the provider calls `ana`, approved beforehand, and a file of
  // her STT.
  const token = server.user('ana', 'DATA_ANALYST', ALABAMA);
  await uploadFile(server, token, NAME, BYTES, slot());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await pages?.stop();
});

test('sign in at the provider, download with the session, sign out everywhere', async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const url = `${frontend}/signin.html?api=${encodeURIComponent(server.base)}`;
  await page.goto(url);
  await page.waitForSelector('body[data-ready]');
  assert.equal(await page.textContent('#who'), 'signed out');

  const began = Date.now();
  await page.click('#signin');
  await page.waitForURL(`${provider.issuer}/interaction/**`);
  await page.fill('input[name=login]', 'ana');
  await page.fill('input[name=password]', 'test-password');
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('h1:has-text("Allow access")');
  await page.click('button:has-text("Allow")');
  await page.waitForURL(url);
  await page.waitForSelector('body[data-ready]');
  console.log(`sign-in in Chromium (link to back on the page, two provider pages): ${Date.now() - began} ms`);
  assert.equal(await page.textContent('#who'), 'Ana (ana, APPROVED)');

  // The session is an HttpOnly cookie of the API's; the page never saw a
  // token, nor a code.
  const cookies = await context.cookies(server.base);
  const session = cookies.find((c) => c.name === 'reportfiles_session');
  assert.ok(session, 'signed in: the session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(cookies.find((c) => c.name === 'reportfiles_session_flow'), undefined, 'the flow is over');
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal(page.url(), url, 'no code or token in the address');

  const link = page.getByRole('link', { name: NAME });
  const href = await link.getAttribute('href');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), NAME);
  assert.equal(await download.failure(), null);
  assert.equal(sha256(fs.readFileSync(await download.path())), sha256(BYTES));

  await page.click('#signout button');
  await page.waitForURL(`${provider.issuer}/session/end**`);
  await page.click('button:has-text("Yes, sign me out")');
  await page.waitForURL(url);
  await page.waitForSelector('body[data-ready]');
  assert.equal(await page.textContent('#who'), 'signed out');
  const after = await context.cookies(server.base);
  assert.equal(after.find((c) => c.name === 'reportfiles_session'), undefined);

  const response = await page.goto(href);
  assert.equal(response.status(), 401);
  assert.match(await page.textContent('body'), /UNAUTHENTICATED/);

  // Signing in again asks for the password: the provider's session ended too.
  await page.goto(url);
  await page.waitForSelector('body[data-ready]');
  await page.click('#signin');
  await page.waitForURL(`${provider.issuer}/interaction/**`);
  assert.equal(await page.locator('input[name=password]').count(), 1);
  await context.close();
});
