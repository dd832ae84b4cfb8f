// Bench-only (`cargo xtask bench`, item 5): the openid-client equivalent of
// `onesoidc device-token`. Discovery, then client credentials with
// private_key_jwt signed by the device key; prints the access token.
//
//   node device_token.mjs ISSUER CLIENT_ID PRIVATE_KEY_PEM ALG
//
// The key is px-device-identity's private.pem (PKCS#8 for EC keys). OnesID
// (and the dev IdP) want the assertion's `aud` to be the token endpoint;
// openid-client puts the issuer there, so the assertion is adjusted.
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';
import { importPKCS8 } from 'jose';

const [issuer, clientId, keyPath, alg = 'ES256'] = process.argv.slice(2);
if (!issuer || !clientId || !keyPath) {
  console.error('usage: node device_token.mjs ISSUER CLIENT_ID PRIVATE_KEY_PEM [ALG]');
  process.exit(2);
}
const key = await importPKCS8(readFileSync(keyPath, 'utf8'), alg);
let config;
const auth = client.PrivateKeyJwt(key, {
  [client.modifyAssertion]: (_header, payload) => {
    payload.aud = config.serverMetadata().token_endpoint;
  },
});
config = await client.discovery(new URL(issuer), clientId, undefined, auth, {
  execute: [client.allowInsecureRequests],
});
const tokens = await client.clientCredentialsGrant(config);
process.stdout.write(`${tokens.access_token}\n`);
