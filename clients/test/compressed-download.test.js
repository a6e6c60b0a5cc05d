// Issue 13: compressed delivery, as a real browser meets it. Chromium sends
// Accept-Encoding on every request; a text file must still be saved under
// its original name with its original bytes, and a download cut midway must
// be resumed by the browser (Range + If-Range) into the same bytes.
//
// Everything goes through a small proxy of the test's own, which records the
// download requests the browser sends and cuts the first response of a file
// it is told to cut.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { launchChromium, sha256, slot, startPages, startServer, uploadFile } from '../harness.js';

/** TANF-like fixed-width records: 156 characters and a newline each. */
function tanf(records) {
  const lines = [];
  for (let i = 0; i < records; i++) {
    const kind = ['T1', 'T2', 'T3'][i % 3];
    const fields = `${kind}20260${1 + (i % 3)}${String(100000 + i * 7).padStart(11, '0')}`
      + `${String((i * 37) % 200).padStart(3, '0')}  ${String(35004 + (i % 80) * 23)}`
      + `${String((i * 7919) % 10000).padStart(4, '0')}0000000${i % 2 ? '12' : '21'}`;
    lines.push(`${fields.padEnd(156, ' ')}\n`);
  }
  return Buffer.from(lines.join(''), 'ascii');
}

const PLAIN = { name: 'ADS.E2J.NDM1.TS01', bytes: tanf(20_000) };
const CUT = { name: 'Interrupted – Q1.txt', bytes: tanf(60_000) };
/** How much of the first response of CUT the proxy lets through. */
const CUT_AFTER = 100_000;

let server;
let pages;
let proxy;
let browser;
let frontend;
let token;
let admin;
const files = {};
/** Every download request the browser sent: its path and headers. */
const seen = [];

/** Forwards to the server; the first response for `cutPath` is cut. */
function startProxy(port, cutPath) {
  let cut = false;
  const srv = http.createServer((req, res) => {
    const isDownload = req.url.includes('/download');
    if (isDownload) seen.push({ url: req.url, headers: { ...req.headers } });
    const up = http.request(
      { host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode, upRes.headers);
        if (!isDownload || cut || !req.url.startsWith(cutPath) || upRes.statusCode !== 200) {
          upRes.pipe(res);
          return;
        }
        cut = true;
        let sent = 0;
        upRes.on('data', (chunk) => {
          if (sent >= CUT_AFTER) return;
          const room = CUT_AFTER - sent;
          res.write(chunk.subarray(0, room));
          sent += Math.min(room, chunk.length);
          if (sent >= CUT_AFTER) {
            // A connection that breaks midway: fewer bytes than promised.
            setTimeout(() => {
              res.socket.destroy();
              upRes.destroy();
            }, 200);
          }
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) => {
    srv.listen(0, '127.0.0.1', () =>
      resolve({
        port: srv.address().port,
        stop: () =>
          new Promise((r) => {
            srv.close(r);
            srv.closeAllConnections();
          }),
      }),
    );
  });
}

before(async () => {
  pages = await startPages();
  frontend = `http://localhost:${pages.port}`;
  server = await startServer({ host: 'localhost', corsOrigins: [frontend] });
  token = server.user('analyst-al', 'DATA_ANALYST', 1);
  admin = server.user('admin', 'SYSTEM_ADMIN');
  files.plain = await uploadFile(server, token, PLAIN.name, PLAIN.bytes, slot());
  files.cut = await uploadFile(server, token, CUT.name, CUT.bytes, slot('CLOSED_CASE_DATA'));
  proxy = await startProxy(server.port, files.cut.downloadUrl);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await proxy?.stop();
  await server?.stop();
  await pages?.stop();
});

async function signIn(page) {
  const api = `http://localhost:${proxy.port}`;
  await page.goto(`${frontend}/app.html?api=${encodeURIComponent(api)}`);
  await page.fill('#token', token);
  await page.click('#login');
  await page.waitForSelector('#files a');
}

/** The download events of a file, once there are `n` (they are written
 * off the request path). */
async function bytesSent(fileId, n = 1) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const data = await server.gql(
      admin,
      `query($id: ID!) { downloadEvents(reportFileId: $id, first: 20) {
        edges { node { bytesSent outcome requestedRange } } } }`,
      { id: fileId },
    );
    const events = data.downloadEvents.edges.map((e) => e.node);
    if (events.length >= n || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function download(page, name) {
  const link = page.getByRole('link', { name });
  const [d] = await Promise.all([page.waitForEvent('download'), link.click()]);
  return d;
}

test('an anchor download of a text file saves the original bytes under the original name', async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  await signIn(page);
  const d = await download(page, PLAIN.name);
  assert.equal(d.suggestedFilename(), PLAIN.name);
  assert.equal(await d.failure(), null);
  const saved = fs.readFileSync(await d.path());
  assert.equal(saved.length, PLAIN.bytes.length);
  assert.equal(sha256(saved), sha256(PLAIN.bytes));

  const request = seen.find((s) => s.url === files.plain.downloadUrl);
  assert.ok(request, 'the browser asked the route');
  assert.match(request.headers['accept-encoding'] ?? '', /zstd/, 'Chromium takes zstd here');
  // What crossed the wire was the compressed copy, decoded by the browser.
  const events = await bytesSent(files.plain.id);
  assert.equal(events.length, 1);
  assert.equal(events[0].outcome, 'COMPLETED');
  assert.ok(
    events[0].bytesSent * 4 < PLAIN.bytes.length,
    `sent ${events[0].bytesSent} of ${PLAIN.bytes.length}`,
  );
  await context.close();
});

test('a download cut midway is resumed by the browser into the same bytes', async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  await signIn(page);
  const d = await download(page, CUT.name);
  assert.equal(d.suggestedFilename(), CUT.name);
  assert.equal(await d.failure(), null, 'the browser resumed and finished');
  const saved = fs.readFileSync(await d.path());
  assert.equal(sha256(saved), sha256(CUT.bytes));

  const requests = seen.filter((s) => s.url === files.cut.downloadUrl);
  assert.ok(requests.length >= 2, `requests: ${JSON.stringify(requests)}`);
  const [first, resumed] = requests;
  assert.equal(first.headers.range, undefined);
  assert.match(resumed.headers.range ?? '', /^bytes=[1-9]\d*-$/, JSON.stringify(resumed.headers));
  assert.ok(resumed.headers['if-range'], 'the resume is validated');
  // Chromium resumes a download it received encoded by asking for the
  // original's bytes from the length it saved (decoded), with the encoded
  // ETag: the server sends just the rest of the original, not all of it.
  const offset = Number(resumed.headers.range.match(/\d+/)[0]);
  const events = await bytesSent(files.cut.id, requests.length);
  const rest = events.find((e) => e.requestedRange === resumed.headers.range);
  assert.ok(rest, JSON.stringify(events));
  assert.equal(rest.outcome, 'COMPLETED');
  assert.equal(rest.bytesSent, CUT.bytes.length - offset, 'only the rest was sent');
  assert.ok(offset > CUT_AFTER, 'the offset counts decoded bytes');
  await context.close();
});
