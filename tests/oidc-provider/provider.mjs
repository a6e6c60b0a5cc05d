// The OpenID Provider of the sign-in tests: oidc-provider (an OpenID
// Certified implementation) on loopback, with what the tests need around it.
// Never for production: the users' password is fixed and the admin routes
// let anyone rotate keys and forge tokens.
//
//   node provider.mjs            PORT (default 0: any free port; the first
//                                line printed is `listening <issuer>`)
//
// - Clients (fixed): `reportfiles` authenticates with private_key_jwt
//   (the key in tests/fixtures/oidc_client_private.pem), `reportfiles-basic`
//   with client_secret_basic (secret below), `reportfiles-api` is an API
//   client (client_credentials, client_secret_basic) whose access tokens are
//   JWTs for the resource `urn:reportfiles:api`. PKCE (S256) is required of all.
//   Their redirect URIs are `http://127.0.0.1/auth/callback` and
//   `http://localhost/auth/callback`, on any port (test servers take free
//   ports); the post-logout ones `/auth/signed-out`, likewise.
// - Users: any name of letters, digits, `.`, `_` and `-`, with the password
//   `test-password`; `sub` is the name, `email` name@example.gov, `name` the
//   name capitalised. The ID token holds `sub` only (the others come from
//   userinfo, as with Login.gov).
// - Pages: a login page and a consent page (/interaction/UID), plain forms.
// - Admin routes, for the tests:
//     POST /admin/rotate           a new signing key (new kid) signs from now
//                                  on; the previous one stays published
//     POST /admin/rotate?keep=0    the same, and only the new key is published
//     POST /admin/tamper           JSON {"claims": {...}, "expired": bool}:
//                                  the next token response's ID token gets
//                                  these claims (expired: exp and iat in the
//                                  past), re-signed with the current key
//     GET  /admin/keys             the kids published now
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(here, '../fixtures');

export const PASSWORD = 'test-password';
export const BASIC_SECRET = 'reportfiles-basic-test-secret-0123456789';
export const API_SECRET = 'reportfiles-api-test-secret-0123456789';
export const API_RESOURCE = 'urn:reportfiles:api';

const port = Number(process.env.PORT ?? 0);
const quiet = process.env.OIDC_PROVIDER_QUIET === '1';

// The client's public key, from the committed private test key.
const clientPublicJwk = crypto
  .createPublicKey(fs.readFileSync(path.join(FIXTURES, 'oidc_client_private.pem')))
  .export({ format: 'jwk' });

let keyCount = 0;
async function newSigningKey() {
  keyCount += 1;
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `test-key-${keyCount}-${crypto.randomBytes(3).toString('hex')}`, use: 'sig', alg: 'RS256' };
}

let published = [await newSigningKey()];
let tamper = null;

const accountName = /^[A-Za-z0-9._-]{1,64}$/;
const capitalised = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function configuration() {
  return {
    clients: [
      {
        client_id: 'reportfiles',
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'RS256',
        jwks: { keys: [{ ...clientPublicJwk, kid: 'reportfiles-test-client', use: 'sig', alg: 'RS256' }] },
        redirect_uris: ['http://127.0.0.1/auth/callback', 'http://localhost/auth/callback'],
        post_logout_redirect_uris: ['http://127.0.0.1/auth/signed-out', 'http://localhost/auth/signed-out'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
      {
        client_id: 'reportfiles-basic',
        client_secret: BASIC_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: ['http://127.0.0.1/auth/callback', 'http://localhost/auth/callback'],
        post_logout_redirect_uris: ['http://127.0.0.1/auth/signed-out', 'http://localhost/auth/signed-out'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
      {
        client_id: 'reportfiles-api',
        client_secret: API_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [],
        grant_types: ['client_credentials'],
        response_types: [],
      },
    ],
    jwks: { keys: published },
    pkce: { required: () => true },
    cookies: { keys: ['reportfiles-test-provider-cookie-key'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    async findAccount(_ctx, sub) {
      if (!accountName.test(sub)) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, email: `${sub}@example.gov`, email_verified: true, name: capitalised(sub) };
        },
      };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: () => false,
        getResourceServerInfo(_ctx, resource) {
          if (resource !== API_RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'api',
            audience: API_RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: { IdToken: 600, AccessToken: 600, ClientCredentials: 600, AuthorizationCode: 120 },
    renderError,
  };
}

// Test servers listen on free ports: a registered loopback redirect URI
// matches on any port (as RFC 8252 lets native clients do).
function loopbackMatch(value, registered) {
  const url = URL.parse(value);
  if (!url || !['127.0.0.1', 'localhost'].includes(url.hostname) || url.protocol !== 'http:') return false;
  return registered.some((r) => {
    const allowed = URL.parse(r);
    return allowed && allowed.hostname === url.hostname && allowed.pathname === url.pathname && !url.search;
  });
}

let current;
let handle;
let issuer;

function build() {
  const provider = new Provider(issuer, configuration());
  const proto = provider.Client.prototype;
  const redirect = proto.redirectUriAllowed;
  const postLogout = proto.postLogoutRedirectUriAllowed;
  proto.redirectUriAllowed = function allowed(value) {
    return redirect.call(this, value) || loopbackMatch(value, this.redirectUris);
  };
  proto.postLogoutRedirectUriAllowed = function allowed(value) {
    return postLogout.call(this, value) || loopbackMatch(value, this.postLogoutRedirectUris ?? []);
  };
  provider.use(tamperWithTokens);
  provider.on('server_error', (_ctx, err) => console.error('provider error', err));
  current = provider;
  handle = provider.callback();
}

// One-shot forgery of the next ID token, signed with the current key: what a
// misconfigured or hostile provider would send.
async function tamperWithTokens(ctx, next) {
  await next();
  if (!tamper || ctx.path !== '/token' || ctx.status !== 200 || !ctx.body?.id_token) return;
  const { claims = {}, expired = false } = tamper;
  tamper = null;
  const payload = jose.decodeJwt(ctx.body.id_token);
  Object.assign(payload, claims);
  if (expired) {
    const now = Math.floor(Date.now() / 1000);
    payload.iat = now - 1200;
    payload.exp = now - 600;
  }
  const key = published[0];
  ctx.body = {
    ...ctx.body,
    id_token: await new jose.SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .sign(await jose.importJWK(key, 'RS256')),
  };
}

const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>
<body><h1>${title}</h1>${body}</body></html>`;

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

async function logoutSource(ctx, form) {
  ctx.body = page(
    'Sign out of the test provider',
    `${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
     <button type="submit" form="op.logoutForm">No, stay signed in</button>`,
  );
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p>You are signed out of the test provider.</p>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Provider error', `<pre id="error">${escape(JSON.stringify(out))}</pre>`);
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16384) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function loginPage(uid, error = '') {
  return page(
    'Sign in to the test provider',
    `${error ? `<p id="error">${escape(error)}</p>` : ''}
     <form method="post" action="/interaction/${uid}/login">
       <label>User <input name="login" autocomplete="off" required></label>
       <label>Password <input name="password" type="password" required></label>
       <button type="submit">Sign in</button>
     </form>`,
  );
}

function consentPage(uid, client, scopes) {
  return page(
    'Allow access',
    `<p><b>${escape(client)}</b> asks for: <span id="scopes">${escape(scopes.join(' '))}</span></p>
     <form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form>
     <form method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`,
  );
}

async function interaction(req, res, uid, action) {
  const details = await current.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Wrong interaction', ''));
  const { prompt, params, session } = details;
  if (!action && req.method === 'GET') {
    if (prompt.name === 'login') return send(res, 200, loginPage(uid));
    const scopes = [...(prompt.details.missingOIDCScope ?? [])];
    return send(res, 200, consentPage(uid, params.client_id, scopes));
  }
  if (req.method !== 'POST') return send(res, 405, page('Method not allowed', ''));
  if (action === 'login') {
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    if (!accountName.test(login) || form.get('password') !== PASSWORD) {
      return send(res, 200, loginPage(uid, 'Wrong user name or password.'));
    }
    return current.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm') {
    const grant = details.grantId
      ? await current.Grant.find(details.grantId)
      : new current.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    const grantId = await grant.save();
    return current.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (action === 'abort') {
    return current.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'the user denied access' },
      { mergeWithLastSubmission: false },
    );
  }
  return send(res, 404, page('Not found', ''));
}

async function admin(req, res, url) {
  const json = (status, value) => send(res, status, JSON.stringify(value), 'application/json');
  if (url.pathname === '/admin/keys' && req.method === 'GET') {
    return json(200, { kids: published.map((k) => k.kid) });
  }
  if (url.pathname === '/admin/rotate' && req.method === 'POST') {
    const key = await newSigningKey();
    published = url.searchParams.get('keep') === '0' ? [key] : [key, ...published];
    // oidc-provider reads its keys when it is made: a new instance over the
    // same storage (the memory adapter is shared) signs with the new key,
    // and every grant, session and code stays valid.
    build();
    return json(200, { kid: key.kid, kids: published.map((k) => k.kid) });
  }
  if (url.pathname === '/admin/tamper' && req.method === 'POST') {
    let body = '';
    for await (const chunk of req) body += chunk;
    tamper = JSON.parse(body || '{}');
    return json(200, { armed: tamper });
  }
  return json(404, { error: 'no such admin route' });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith('/admin/')) return await admin(req, res, url);
    const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    return handle(req, res);
  } catch (err) {
    if (!quiet) console.error('request failed', err);
    if (!res.headersSent) send(res, err.statusCode ?? 500, page('Error', `<pre id="error">${escape(err.message)}</pre>`));
  }
});

server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  build();
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
