// The test harness for the real clients: the real server binary (built by
// `cargo build`, never here) on a free port with a SQLite file and a local
// object folder, users and tokens made with its own CLI, a static server for
// the frontend pages on other ports, and Debian's Chromium.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..');
export const BIN = process.env.REPORTFILES_BIN ?? path.join(REPO, 'target/debug/reportfiles');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = path.join(REPO, 'target/screenshots');
const PAGES = path.join(here, 'pages');
const SECRET = 'client-tests-secret-'.repeat(3);

export const ALABAMA = 1;

export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(url, child, log) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`the server exited with ${child.exitCode}:\n${log()}`);
    }
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the server did not answer ${url}:\n${log()}`);
}

/**
 * Starts the server. `host` is the name clients use for it (`localhost` or
 * `127.0.0.1`): cookies belong to a host name, and CORS compares origins.
 * `port`: when the test must know it beforehand (a redirect URL names it).
 */
export async function startServer({ corsOrigins = [], host = '127.0.0.1', env = {}, port } = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run \`cargo build\` first (scripts/test-clients does)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reportfiles-clients-'));
  port ??= await freePort();
  const vars = {
    ...process.env,
    APP_ENV: 'development',
    DATABASE_URL: `sqlite://${dir}/db.sqlite?mode=rwc`,
    STORAGE_URL: `file://${dir}/objects`,
    BIND_ADDR: `127.0.0.1:${port}`,
    JWT_HS256_SECRET: SECRET,
    CORS_ALLOWED_ORIGINS: corsOrigins.join(','),
    LOG_JSON: 'false',
    RUST_LOG: 'warn',
    ...env,
  };
  let output = '';
  const child = spawn(BIN, ['serve'], { cwd: dir, env: vars, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const base = `http://${host}:${port}`;
  await waitFor(`http://127.0.0.1:${port}/healthz`, child, () => output);

  const cli = (...args) =>
    execFileSync(BIN, args, { cwd: dir, env: vars, encoding: 'utf8' }).trim();
  return {
    base,
    port,
    dir,
    log: () => output,
    cli,
    /** An HS256 token for `sub`, from `reportfiles token`. */
    token: (sub) => cli('token', '--sub', sub),
    /** An approved user with a role (and STT), from `reportfiles user create`. */
    user(sub, role, sttId) {
      const args = ['user', 'create', '--subject', sub, '--role', role, '--approve'];
      if (sttId !== undefined) args.push('--stt-id', String(sttId));
      cli(...args);
      return cli('token', '--sub', sub);
    },
    /** A user who signed up but was not approved. */
    pendingUser(sub) {
      const line = cli('user', 'create', '--subject', sub);
      return { id: line.match(/^user (\d+)/)[1], token: cli('token', '--sub', sub) };
    },
    /** POSTs a GraphQL request with a bearer token (the test's own view). */
    async gql(token, query, variables = {}) {
      const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = await res.json();
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data;
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The test OpenID Provider that `scripts/test-clients` starts
 * (`ensure_oidc_provider` in scripts/services.sh), and a server's settings
 * for signing in through it as the `reportfiles` client (private_key_jwt).
 * Without it the sign-in tests fail: they never skip.
 */
export function oidcProvider() {
  const issuer = process.env.TEST_OIDC_ISSUER;
  if (!issuer) {
    throw new Error('TEST_OIDC_ISSUER is unset: run scripts/test-clients, which starts the test OpenID Provider');
  }
  return {
    issuer,
    /** The server's OIDC settings when it listens on `base`. */
    vars: (base) => ({
      OIDC_ISSUER_URL: issuer,
      OIDC_CLIENT_ID: 'reportfiles',
      OIDC_CLIENT_PRIVATE_KEY_FILE: path.join(REPO, 'tests/fixtures/oidc_client_private.pem'),
      OIDC_REDIRECT_URL: `${base}/auth/callback`,
    }),
  };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

/** Serves clients/pages/ on a free port: a frontend origin of its own. */
export async function startPages() {
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname);
    const file = path.join(PAGES, name);
    if (!name || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(name)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    });
    res.end(fs.readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    // A browser keeps connections open; close them, or close() waits forever.
    stop: () =>
      new Promise((r) => {
        server.close(r);
        server.closeAllConnections();
      }),
  };
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's Chromium, headless, on a fresh profile. Missing: the test fails. */
export async function launchChromium(extraArgs = []) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/test-clients does)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/** Uploads a file as a plain multipart client would (setup, not under test). */
export async function uploadFile(server, token, filename, bytes, input) {
  const form = new FormData();
  form.append(
    'operations',
    JSON.stringify({
      query: `mutation($input: UploadReportFileInput!, $file: Upload!) {
        uploadReportFile(input: $input, file: $file) { id sha256 downloadUrl originalFilename }
      }`,
      variables: { input, file: null },
    }),
  );
  form.append('map', JSON.stringify({ 0: ['variables.file'] }));
  form.append('0', new Blob([bytes], { type: 'text/plain' }), filename);
  const res = await fetch(`http://127.0.0.1:${server.port}/graphql`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'apollo-require-preflight': 'true' },
    body: form,
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data.uploadReportFile;
}

export function slot(section = 'ACTIVE_CASE_DATA', quarter = 'Q1') {
  return { sttId: ALABAMA, fiscalYear: 2026, quarter, section };
}
