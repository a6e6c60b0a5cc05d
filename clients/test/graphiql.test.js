// Issue: GraphiQL without the internet. The page is opened in Chromium with
// no network but the server (every other host is unresolvable, and any
// request elsewhere would be recorded and aborted); it must render, load the
// schema, run a query with a pasted token and show the result. The
// screenshot is left in target/screenshots/graphiql.png to look at.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { SCREENSHOTS, launchChromium, startServer } from '../harness.js';

let server;
let browser;
let token;

before(async () => {
  server = await startServer();
  token = server.user('graphiql-admin', 'SYSTEM_ADMIN');
  // Nothing but 127.0.0.1 resolves: a CDN reference could not load even if
  // the request interception below missed it.
  browser = await launchChromium(['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page that may reach the server only; returns what else it asked for. */
async function offlinePage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const elsewhere = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${server.base}/`)) return route.continue();
    elsewhere.push(url);
    return route.abort('internetdisconnected');
  });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(String(e)));
  return { context, page, elsewhere, problems };
}

/** Replaces the text of the CodeMirror editor inside `container`. */
async function typeInto(page, container, text) {
  await page.click(`${container} .CodeMirror-scroll`);
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

test('GraphiQL renders from the server alone and runs a query with a pasted token', async () => {
  const { context, page, elsewhere, problems } = await offlinePage();
  await page.goto(`${server.base}/graphql`);
  await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror');

  // The schema loaded (introspection): the documentation explorer shows the
  // root query type and its fields.
  await page.click('[aria-label="Show Documentation Explorer"]');
  await page.locator('.graphiql-doc-explorer a', { hasText: /^Query$/ }).click();
  await page.waitForSelector('.graphiql-doc-explorer :text("reportFiles")');

  await page.click('.graphiql-editor-tools button:text("Headers")');
  await typeInto(
    page,
    '.graphiql-editor-tool .graphiql-editor:not(.hidden)',
    JSON.stringify({ Authorization: `Bearer ${token}` }),
  );
  await typeInto(page, '.graphiql-query-editor', '{ me { subject role status } }');
  await page.click('.graphiql-execute-button');

  const result = page.locator('.graphiql-response .CodeMirror-code');
  await result.filter({ hasText: '"graphiql-admin"' }).waitFor();
  const text = await result.innerText();
  assert.match(text, /"subject": "graphiql-admin"/);
  assert.match(text, /"role": "SYSTEM_ADMIN"/);
  assert.match(text, /"status": "APPROVED"/);

  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const shot = path.join(SCREENSHOTS, 'graphiql.png');
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);

  assert.deepEqual(elsewhere, [], 'the page asked for nothing but the server');
  assert.deepEqual(problems, [], 'no script or Content-Security-Policy errors');
  await context.close();
});

test('without the pasted token the same query is anonymous', async () => {
  const { context, page, elsewhere } = await offlinePage();
  await page.goto(`${server.base}/graphql`);
  await page.waitForSelector('.graphiql-query-editor .CodeMirror');
  await typeInto(page, '.graphiql-query-editor', '{ me { subject } }');
  await page.click('.graphiql-execute-button');
  const result = page.locator('.graphiql-response .CodeMirror-code');
  await result.filter({ hasText: 'UNAUTHENTICATED' }).waitFor();
  assert.doesNotMatch(await result.innerText(), /graphiql-admin/);
  assert.deepEqual(elsewhere, []);
  await context.close();
});
