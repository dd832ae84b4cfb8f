// TEST-ONLY OpenID Provider for the interop suite (`cargo xtask interop`).
//
// Runs the stock `oidc-provider` npm package (the implementation OnesID's
// standard routes are those of) mounted at /oidc on a loopback port, with one
// private_key_jwt client per px-device-identity fixture key, client
// credentials, CIBA (poll mode, signed requests required), refresh token
// rotation, introspection, revocation and resource indicators.
//
// Nothing here is a workaround for onesoidc: every setting below is the
// provider's documented configuration for these features. The only addition
// is /control/*, a test-only route that plays the user's phone (approve or
// deny a pending CIBA request). Never expose this server beyond loopback.
//
// DPoP (RFC 9449) is on, as the package has it by default since 9.0. With
// --dpop-nonce the provider also issues server nonces and requires one in
// every proof (features.dPoP.nonceSecret + requireNonce): `cargo xtask
// interop` runs a second instance that way.
//
// Devices whose key is made at test time (in a swtpm) register themselves
// with dynamic client registration (RFC 7591, features.registration) using
// the initial access token below.
//
// Usage: node provider.mjs --fixtures DIR [--port 0] [--dpop-nonce]
// Prints `READY http://127.0.0.1:PORT/oidc` on stdout once it listens; logs
// go to stderr.

import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    fixtures: { type: 'string' },
    port: { type: 'string', default: '0' },
    'dpop-nonce': { type: 'boolean', default: false },
  },
});
if (!args.fixtures) {
  console.error('usage: node provider.mjs --fixtures DIR [--port PORT] [--dpop-nonce]');
  process.exit(2);
}

// The px-device-identity fixture keys and the JWS algorithm each signs with
// (PROTOCOL §1). The client id of each is `interop-<dir>`; the Rust tests use
// the same names.
const DEVICE_KEYS = [
  { dir: 'rsa-2048', alg: 'RS256' },
  { dir: 'rsa-3072', alg: 'RS256' },
  { dir: 'ecc-p256', alg: 'ES256' },
  { dir: 'ecc-p384', alg: 'ES384' },
  { dir: 'ecc-p521', alg: 'ES512' },
];

const ALGS = ['RS256', 'ES256', 'ES384', 'ES512'];

// Test-only: lets the TPM tests register the device they just made a key for
// (RFC 7591 §3, `Authorization: Bearer` this token). Loopback only.
const REGISTRATION_TOKEN = 'interop-registration-not-secret';

// DPoP: the package's defaults (on, no nonces), or nonces required in every
// proof (RFC 9449 §8) with a fresh secret per start.
const DPOP = args['dpop-nonce']
  ? { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true }
  : { enabled: true };

// Users the CIBA login_hint can name.
const USERS = new Map([
  ['alice', { name: 'Alice Interop' }],
  ['bob', { name: 'Bob Interop' }],
]);

// Resource servers (RFC 8707) the tests ask for: one issuing JWT access
// tokens, one opaque.
const RESOURCE_SERVERS = new Map([
  ['https://api.interop.test/jwt', { scope: 'read write', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }],
  ['https://api.interop.test/opaque', { scope: 'read write', accessTokenFormat: 'opaque' }],
]);

// The public key of each fixture, derived by node from the private PEM
// (independently of onesoidc's own JWK code).
function devicePublicJwk(dir, alg) {
  const pem = readFileSync(join(args.fixtures, dir, 'private.pem'));
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig' };
}

// The provider's own signing keys, fresh on every start: one per algorithm the
// devices use, so that ID tokens are signed with each kind of key.
function providerKeys() {
  const specs = [
    ['RS256', 'rsa', { modulusLength: 2048 }],
    ['ES256', 'ec', { namedCurve: 'P-256' }],
    ['ES384', 'ec', { namedCurve: 'P-384' }],
    ['ES512', 'ec', { namedCurve: 'P-521' }],
  ];
  const keys = specs.map(([alg, type, options]) => {
    const { privateKey } = generateKeyPairSync(type, options);
    return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `interop-${alg.toLowerCase()}` };
  });
  // An Ed25519 key too, as a real provider's JWKS may hold keys of kinds the
  // device never verifies: the client must still read the set.
  const { privateKey } = generateKeyPairSync('ed25519');
  keys.push({ ...privateKey.export({ format: 'jwk' }), use: 'sig', kid: 'interop-ed25519' });
  return keys;
}

const clients = DEVICE_KEYS.map(({ dir, alg }) => ({
  client_id: `interop-${dir}`,
  token_endpoint_auth_method: 'private_key_jwt',
  token_endpoint_auth_signing_alg: alg,
  jwks: { keys: [devicePublicJwk(dir, alg)] },
  grant_types: ['client_credentials', 'urn:openid:params:grant-type:ciba', 'refresh_token'],
  response_types: [],
  redirect_uris: [],
  backchannel_token_delivery_mode: 'poll',
  backchannel_authentication_request_signing_alg: alg,
  id_token_signed_response_alg: alg,
}));

// Pending CIBA requests, for the control route: auth_req_id -> {clientId, loginHint}.
const pending = new Map();

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;
const issuer = `${origin}/oidc`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: providerKeys() },
  cookies: { keys: ['interop-test-cookie-key-not-secret'] },
  findAccount(ctx, sub) {
    const user = USERS.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: user.name, preferred_username: sub };
      },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
  },
  scopes: ['openid', 'offline_access'],
  enabledJWA: {
    clientAuthSigningAlgValues: ALGS,
    requestObjectSigningAlgValues: ALGS,
    idTokenSigningAlgValues: ALGS,
  },
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 600,
    ClientCredentials: 600,
    IdToken: 600,
    RefreshToken: 3600,
    Grant: 3600,
    Session: 3600,
    Interaction: 600,
    // CIBA Core §7.1: requested_expiry, capped at 120 s here.
    BackchannelAuthenticationRequest(ctx) {
      const requested = Number(ctx?.oidc?.params?.requested_expiry);
      return Number.isSafeInteger(requested) && requested > 0 ? Math.min(requested, 120) : 120;
    },
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    requestObjects: { enabled: true },
    dPoP: DPOP,
    registration: { enabled: true, initialAccessToken: REGISTRATION_TOKEN },
    resourceIndicators: {
      enabled: true,
      // A CIBA request's resource is the application the tokens are for
      // (PROTOCOL §5): its access token is issued for that resource.
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        const info = RESOURCE_SERVERS.get(resourceIndicator);
        if (!info) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        return { ...info, audience: resourceIndicator };
      },
    },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      async processLoginHint(ctx, loginHint) {
        return USERS.has(loginHint) ? loginHint : undefined;
      },
      async processLoginHintToken() {
        throw new errors.InvalidRequest('login_hint_token is not supported by this test provider');
      },
      async verifyUserCode(ctx, account, userCode) {
        if (userCode) throw new errors.InvalidRequest('user_code is not supported');
      },
      async validateRequestContext() {},
      // validateBindingMessage: the package default (1-20 characters of
      // [a-zA-Z0-9-._+/!?#]) is kept on purpose.
      async triggerAuthenticationDevice(ctx, request, account, client) {
        pending.set(request.jti, { clientId: client.clientId, loginHint: account.accountId });
        console.error(`ciba: ${client.clientId} asks ${account.accountId} (${request.jti})`);
      },
    },
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

const oidc = provider.callback();

// ---- test-only control route: the user's phone -----------------------------

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The pending request named by auth_req_id, or the oldest one matching
// login_hint (and client_id if given), waiting up to wait_ms for it to appear.
async function findPending({ auth_req_id: id, login_hint: hint, client_id: clientId, wait_ms: waitMs = 0 }) {
  const deadline = Date.now() + Math.min(Number(waitMs) || 0, 30000);
  for (;;) {
    if (id && pending.has(id)) return id;
    if (!id && hint) {
      for (const [jti, p] of pending) {
        if (p.loginHint === hint && (!clientId || p.clientId === clientId)) return jti;
      }
    }
    if (Date.now() >= deadline) return undefined;
    await sleep(50);
  }
}

async function control(req, res) {
  const url = new URL(req.url, origin);
  const action = { '/control/ciba/approve': 'approve', '/control/ciba/deny': 'deny' }[url.pathname];
  if (req.method !== 'POST' || !action) return json(res, 404, { error: 'not_found' });
  const body = await readJson(req);
  const id = await findPending(body);
  if (!id) return json(res, 404, { error: 'no_such_request', ...body });
  pending.delete(id);
  const request = await provider.BackchannelAuthenticationRequest.find(id, { ignoreExpiration: true });
  if (!request) return json(res, 404, { error: 'no_such_request', auth_req_id: id });
  if (action === 'approve') {
    const grant = new provider.Grant({ clientId: request.clientId, accountId: request.accountId });
    grant.addOIDCScope(request.scope);
    if (request.resource) {
      const info = RESOURCE_SERVERS.get(request.resource);
      grant.addResourceScope(request.resource, info ? info.scope : '');
    }
    await grant.save();
    await provider.backchannelResult(request, grant, {
      authTime: Math.floor(Date.now() / 1000),
      amr: ['pop'],
    });
  } else {
    await provider.backchannelResult(request, new errors.AccessDenied('the user denied the request'));
  }
  console.error(`ciba: ${action} ${id}`);
  return json(res, 200, { auth_req_id: id, result: action });
}

// ---- routing: /oidc/* to the provider, /control/* to the test hooks ---------

server.on('request', (req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/oidc' || path.startsWith('/oidc/')) {
    // Mounted as express/connect would: the provider sees the path below the
    // mount point and derives the mount path from originalUrl.
    req.originalUrl = req.url;
    req.url = req.url.slice('/oidc'.length) || '/';
    oidc(req, res);
  } else if (path.startsWith('/control/')) {
    control(req, res).catch((err) => {
      console.error('control error', err);
      json(res, 500, { error: 'server_error', error_description: String(err) });
    });
  } else {
    json(res, 404, { error: 'not_found' });
  }
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}

console.error(`dpop: ${args['dpop-nonce'] ? 'nonces required' : 'default configuration (no nonces)'}`);
console.log(`READY ${issuer}`);
