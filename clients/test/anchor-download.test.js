// Issue: the frontend puts downloadUrl into <a href>. A real browser signs in
// through `login` (the session is then the HttpOnly cookie), lists files over
// GraphQL, clicks the link, and must save the file under its original name
// with its exact bytes; after `logout` the same link is a 401 and saves nothing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { launchChromium, sha256, slot, startPages, startServer, uploadFile } from '../harness.js';

const NAME = 'Données trimestrielles – Alabama Q1.txt';
const BYTES = Buffer.from(
  Array.from({ length: 4000 }, (_, i) => `case ${i}\tnaïve résumé ✓ ${i * 7}\n`).join(''),
  'utf8',
);

let server;
let pages;
let browser;
let frontend;
let token;

before(async () => {
  pages = await startPages();
  frontend = `http://localhost:${pages.port}`;
  server = await startServer({ host: 'localhost', corsOrigins: [frontend] });
  token = server.user('analyst-al', 'DATA_ANALYST', 1);
  await uploadFile(server, token, NAME, BYTES, slot());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await pages?.stop();
});

async function signIn(page) {
  await page.goto(`${frontend}/app.html?api=${encodeURIComponent(server.base)}`);
  await page.fill('#token', token);
  await page.click('#login');
  await page.waitForSelector('#files a');
}

test('a link to downloadUrl saves the file under its original name with its bytes', async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  await signIn(page);

  const link = page.getByRole('link', { name: NAME });
  assert.equal(await link.getAttribute('data-sha256'), sha256(BYTES));
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), NAME);
  assert.equal(await download.failure(), null);
  const saved = fs.readFileSync(await download.path());
  assert.equal(saved.length, BYTES.length);
  assert.equal(sha256(saved), sha256(BYTES));
  await context.close();
});

test('the session is an HttpOnly cookie that page scripts never see', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);

  const cookies = await context.cookies(server.base);
  const session = cookies.find((c) => c.name === 'reportfiles_session');
  assert.ok(session, 'login set the session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(session.path, '/');
  assert.equal(await page.evaluate(() => document.cookie.includes('reportfiles_session')), false);
  assert.equal(await page.inputValue('#token'), '', 'the page dropped the token after login');
  await context.close();
});

test('after logout the same link answers 401 and nothing is saved', async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  await signIn(page);
  const link = page.getByRole('link', { name: NAME });
  const href = await link.getAttribute('href');

  await page.click('#logout');
  await page.waitForSelector('#status:text("signed out")');
  const cookies = await context.cookies(server.base);
  assert.equal(cookies.find((c) => c.name === 'reportfiles_session'), undefined);

  const downloads = [];
  page.on('download', (d) => downloads.push(d));
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === href),
    link.click(),
  ]);
  assert.equal(response.status(), 401);
  assert.equal(response.headers()['www-authenticate'], 'Bearer');
  await page.waitForLoadState('load');
  // A download would have started with the response; give it time to show.
  await page.waitForTimeout(1000);
  assert.deepEqual(downloads, []);
  assert.match(await page.textContent('body'), /UNAUTHENTICATED/);
  await context.close();
});
