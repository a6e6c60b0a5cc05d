// Issue #10: in Chromium, the frontend's upload (Apollo Client with
// apollo-upload-client) of a data file carrying the test marker is refused
// by the server's ClamAV scan: the page shows VIRUS_DETECTED and the
// signature, and nothing is stored. A clean file through the same page is
// stored. The server scans with the tests' clamd (TEST_CLAMD_ADDR, started
// by scripts/test-clients).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { REPO, launchChromium, startPages, startServer } from '../harness.js';

let server;
let pages;
let browser;
let token;
let admin;

before(async () => {
  const clamd = process.env.TEST_CLAMD_ADDR;
  if (!clamd) throw new Error('TEST_CLAMD_ADDR is unset: run scripts/test-clients, which starts clamd');
  pages = await startPages();
  const frontend = `http://localhost:${pages.port}`;
  server = await startServer({
    host: 'localhost',
    corsOrigins: [frontend],
    env: { AV_SCAN: 'required', CLAMD_ADDR: clamd },
  });
  token = server.user('scan-analyst', 'DATA_ANALYST', 1);
  admin = server.user('scan-admin', 'SYSTEM_ADMIN');
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await pages?.stop();
});

/** A TANF-shaped text file; with `marker`, the test marker line 100 KiB in. */
function dataFile(marker) {
  const line = (i) => `T1${String(i).padStart(9, '0')}${'0'.repeat(140)}\n`;
  const lines = Array.from({ length: 2000 }, (_, i) => line(i));
  if (marker) {
    const text = fs.readFileSync(path.join(REPO, 'tests/fixtures/av-test-marker.txt'), 'utf8');
    lines.splice(650, 0, `${text.split('\n')[0]}\n`);
  }
  return Buffer.from(lines.join(''));
}

async function uploadPage() {
  const page = await browser.newPage();
  await page.goto(`http://localhost:${pages.port}/apollo-upload.html?api=${encodeURIComponent(server.base)}`);
  await page.fill('#token', token);
  await page.click('#login');
  await page.waitForSelector('#who:text("scan-analyst")');
  return page;
}

async function upload(page, name, buffer) {
  await page.setInputFiles('#file', { name, mimeType: 'text/plain', buffer });
  await page.click('#send');
  await page.waitForSelector('#result:not(:empty)', { timeout: 20_000 });
  return page.textContent('#result');
}

async function scans() {
  const data = await server.gql(admin, '{ scanEvents(first: 10) { edges { node { result signature originalFilename } } } }');
  return data.scanEvents.edges.map((e) => e.node);
}

test('the marker file is refused with VIRUS_DETECTED through apollo-upload-client', async () => {
  const page = await uploadPage();
  assert.equal(await upload(page, 'section1.ts01', dataFile(true)), 'refused VIRUS_DETECTED');
  assert.match(await page.textContent('#message'), /Reportfiles-Tanf-Test-Marker/);
  const files = await server.gql(admin, '{ reportFiles { totalCount } }');
  assert.equal(files.reportFiles.totalCount, 0);
  const [scan] = await scans();
  assert.equal(scan.result, 'INFECTED');
  assert.equal(scan.originalFilename, 'section1.ts01');
  assert.match(scan.signature, /Reportfiles-Tanf-Test-Marker/);
  await page.close();
});

test('the same file without the marker is stored through the same page', async () => {
  const page = await uploadPage();
  assert.equal(await upload(page, 'section1.ts01', dataFile(false)), 'stored section1.ts01 v1');
  const [scan] = await scans();
  assert.equal(scan.result, 'CLEAN');
  await page.close();
});
