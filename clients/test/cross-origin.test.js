// Issue: the frontend is served from another origin. CORS (with credentials)
// for the configured origins only: the allowed frontend can query and upload
// with the session cookie; a page on another origin cannot read answers; a
// form post from another origin cannot run a mutation with the cookie.
//
// Origins: the API is http://localhost:A, the allowed frontend
// http://localhost:F. http://localhost:E is the same site (cookies are sent
// to the API from it, SameSite=Lax notwithstanding) but not allowed, so only
// the server's own rules stand between it and the session;
// http://127.0.0.1:F is another site altogether.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchChromium, sha256, startPages, startServer } from '../harness.js';

let server;
let pages;
let otherPages;
let browser;
let frontend;
let token;

before(async () => {
  pages = await startPages();
  otherPages = await startPages();
  frontend = `http://localhost:${pages.port}`;
  server = await startServer({ host: 'localhost', corsOrigins: [frontend] });
  token = server.user('admin-cors', 'SYSTEM_ADMIN');
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await pages?.stop();
  await otherPages?.stop();
});

const appUrl = () => `${frontend}/app.html?api=${encodeURIComponent(server.base)}`;

/** A context whose cookie jar holds the admin's session, made by the frontend. */
async function signedIn() {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(appUrl());
  await page.fill('#token', token);
  await page.click('#login');
  await page.waitForSelector('#status:text("files")');
  return { context, page };
}

async function fileCount() {
  const data = await server.gql(token, '{ reportFiles { totalCount } }');
  return data.reportFiles.totalCount;
}

test('the allowed origin queries and uploads with the session cookie', async () => {
  const { context, page } = await signedIn();
  assert.match(await page.textContent('#who'), /admin-cors \(SYSTEM_ADMIN\)/);
  const before = await fileCount();

  const bytes = Buffer.from('quarterly aggregate\n1\t2\t3\n');
  await page.setInputFiles('#file', { name: 'aggregate q2.txt', mimeType: 'text/plain', buffer: bytes });
  await page.click('#send');
  await page.waitForSelector('#uploaded:text("aggregate q2.txt")', { timeout: 10_000 }).catch(async (e) => {
    throw new Error(`${e.message}; status: ${await page.textContent('#status')}`);
  });
  assert.equal(await page.textContent('#uploaded'), `aggregate q2.txt v1 ${sha256(bytes)}`);
  await page.waitForSelector('#files a:text("aggregate q2.txt")');
  const listed = await page.getAttribute('#files a:text("aggregate q2.txt")', 'data-sha256');
  assert.equal(listed, sha256(bytes));
  assert.equal(await fileCount(), before + 1);
  await context.close();
});

test('another origin cannot read any answer, even with the cookie', async () => {
  const { context } = await signedIn();
  const before = await fileCount();
  for (const origin of [`http://localhost:${otherPages.port}`, `http://127.0.0.1:${pages.port}`]) {
    const page = await context.newPage();
    await page.goto(`${origin}/probe.html`);
    const attempts = await page.evaluate((api) => window.attempts(api), server.base);
    assert.equal(attempts.length, 4);
    for (const a of attempts) {
      assert.equal(a.read, false, `${origin} read ${a.name}: ${JSON.stringify(a)}`);
      assert.match(a.error, /TypeError/, `${origin} ${a.name}`);
    }
    await page.close();
  }
  assert.equal(await fileCount(), before, 'the preflighted upload never ran');

  // The same page on the allowed origin reads every answer: the refusals
  // above are the browser enforcing the server's CORS answer.
  const page = await context.newPage();
  await page.goto(`${frontend}/probe.html`);
  const allowed = await page.evaluate((api) => window.attempts(api), server.base);
  for (const a of allowed) {
    assert.equal(a.read, true, `${a.name}: ${JSON.stringify(a)}`);
    assert.equal(a.status, 200, a.name);
  }
  assert.match(allowed[0].body, /"subject":"admin-cors"/);
  await context.close();
});

test('form posts from other origins cannot run a mutation with the cookie', async () => {
  const { context } = await signedIn();
  const victim = server.pendingUser('pending-victim');
  const mutation = `mutation { setUserAccess(userId: "${victim.id}", role: SYSTEM_ADMIN, status: APPROVED) { id status } }`;
  const apiGraphql = `${server.base}/graphql`;
  for (const origin of [`http://localhost:${otherPages.port}`, `http://127.0.0.1:${pages.port}`]) {
    for (const [form, status] of [['text', 415], ['urlencoded', 415], ['multipart', 400]]) {
      const page = await context.newPage();
      await page.goto(
        `${origin}/forge.html?api=${encodeURIComponent(server.base)}&query=${encodeURIComponent(mutation)}`,
      );
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url() === apiGraphql),
        page.evaluate((id) => document.getElementById(id).submit(), form),
      ]);
      // Closing a page mid-navigation can hang: let the answer finish loading.
      await page.waitForURL(apiGraphql);
      await page.waitForLoadState('load');
      assert.equal(response.status(), status, `${origin} ${form}`);
      const sent = await response.request().allHeaders();
      if (origin.includes('localhost')) {
        // Same site: the browser did send the session; the server refused anyway.
        assert.match(sent.cookie ?? '', /reportfiles_session=/, `${origin} ${form} sent no cookie`);
      }
      await page.close();
    }
  }
  const users = await server.gql(token, '{ users(status: PENDING) { subject } }');
  assert.deepEqual(users.users, [{ subject: 'pending-victim' }], 'the victim is still pending');
  await context.close();
});
