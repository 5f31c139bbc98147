// Protocol-conformance client for cocod's KBS (Trustee RCAR 0.4.0) that
// shares no code with cocod: Node's built-in WebCrypto for every primitive
// (SHA-384 binding, ES256 token check against the published JWKS, ECDH-ES
// + Concat KDF + AES-KW + AES-GCM and RSA-OAEP-256 JWE decryption), its
// own JCS.  Driven by test_kbs.py, which starts the daemons:
//   node test_kbs.js CONFIG_JSON
// CONFIG_JSON: {cocod, main: {url, ca, token, dir}, strict: {...}}
// where `main` runs with sim + dev mode and `strict` with sim, no dev mode
// and 2-second session/token lifetimes.  Prints one line per case, exits 1
// on the first failure.
'use strict';
const https = require('https');
const { execFileSync } = require('child_process');
const { webcrypto, createHash } = require('crypto');
const fs = require('fs');
const subtle = webcrypto.subtle;

const cfg = JSON.parse(process.argv[2]);
const SECRET = 'kbs-secret-' + Math.random().toString(36).slice(2) + '-payload';
const INIT_DATA = 'version = "0.1.0"\nalgorithm = "sha256"\n\n[data]\n"aa.toml" = \'\'\'\n[token_configs]\n\'\'\'\n"policy.rego" = "package agent_policy\\n"\n';
let passed = 0;

function assert(cond, msg) { if (!cond) throw new Error('assertion failed: ' + msg); }
function eq(a, b, msg) { if (a !== b) throw new Error(`${msg}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`); }

function request(d, method, path, { body, headers = {} } = {}) {
  const u = new URL(d.url + path);
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : (Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
    const h = { ...headers };
    if (data) { h['Content-Length'] = data.length; if (!h['Content-Type']) h['Content-Type'] = 'application/json'; }
    const r = https.request({ host: u.hostname, port: u.port, path: u.pathname, method, headers: h, ca: fs.readFileSync(d.ca) }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch (_) { }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    r.on('error', reject);
    if (data) r.write(data);
    r.end();
  });
}

// --- encodings, JCS (RFC 8785) ---
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const unb64u = (s) => Buffer.from(s, 'base64url');
function jcs(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(jcs).join(',') + ']';
  const keys = Object.keys(v).sort(); // JS sorts by UTF-16 code units, as RFC 8785 requires
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + jcs(v[k])).join(',') + '}';
}
// The guest's re-serialisation of a JWE protected header: alg, enc, then the rest sorted.
function guestHeader(h) {
  const sortDeep = (v) => (v && typeof v === 'object' && !Array.isArray(v)) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortDeep(v[k])])) : v;
  const out = { alg: h.alg, enc: h.enc };
  for (const k of Object.keys(h).filter((k) => k !== 'alg' && k !== 'enc').sort()) out[k] = sortDeep(h[k]);
  return JSON.stringify(out);
}

// --- the guest's key pairs ---
async function teeKey(kind) {
  if (kind === 'RSA') {
    const kp = await subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['decrypt', 'encrypt']);
    const j = await subtle.exportKey('jwk', kp.publicKey);
    return { kind, kp, jwk: { kty: 'RSA', alg: 'RSA-OAEP-256', n: j.n, e: j.e } };
  }
  const kp = await subtle.generateKey({ name: 'ECDH', namedCurve: kind }, true, ['deriveBits']);
  const j = await subtle.exportKey('jwk', kp.publicKey);
  return { kind, kp, jwk: { kty: 'EC', crv: kind, alg: 'ECDH-ES+A256KW', x: j.x, y: j.y } };
}

async function reportData(nonce, jwk, additional = '') {
  const text = jcs({ 'additional-evidence': additional, nonce, 'tee-pubkey': jwk });
  const d = Buffer.from(await subtle.digest('SHA-384', Buffer.from(text)));
  return Buffer.concat([d, Buffer.alloc(16)]);
}

function simEvidence(d, rd, hostData) {
  const args = ['sim-evidence', '--data-dir', d.dir, '--report-data', rd.toString('hex')];
  if (hostData) args.push('--host-data', hostData.toString('hex'));
  return JSON.parse(execFileSync(cfg.cocod, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
}

const initDigest = (text) => createHash('sha256').update(text).digest();

async function auth(d, tee = 'snp', version = '0.4.0') {
  const r = await request(d, 'POST', '/kbs/v0/auth', { body: { version, tee, 'extra-params': { 'supported-hash-algorithms': ['sha384'] } } });
  const set = r.headers['set-cookie'] ? r.headers['set-cookie'][0] : '';
  const m = /kbs-session-id=([0-9a-f]+)/.exec(set);
  return { r, cookie: m ? `kbs-session-id=${m[1]}` : null, nonce: r.json && r.json.nonce, setCookie: set };
}

function attestBody(nonce, jwk, evidence, initText = INIT_DATA) {
  return {
    'init-data': initText === null ? null : { format: 'toml', body: initText },
    'runtime-data': { nonce, 'tee-pubkey': jwk },
    'tee-evidence': { primary_evidence: evidence, additional_evidence: '' },
  };
}

// A full auth -> attest; returns {cookie, token, key}.
async function attestFull(d, key, opts = {}) {
  const a = await auth(d);
  eq(a.r.status, 200, 'auth status');
  const rd = await reportData(a.nonce, key.jwk);
  const ev = simEvidence(d, rd, initDigest(INIT_DATA));
  const r = await request(d, 'POST', '/kbs/v0/attest', { body: attestBody(a.nonce, key.jwk, ev), headers: { Cookie: a.cookie } });
  eq(r.status, 200, 'attest status ' + r.text);
  return { cookie: a.cookie, token: r.json.token, key, nonce: a.nonce, evidence: ev };
}

async function verifyToken(d, token) {
  const jwks = (await request(d, 'GET', '/kbs/v0/.well-known/jwks.json')).json;
  const [h, p, s] = token.split('.');
  const hdr = JSON.parse(unb64u(h));
  eq(hdr.alg, 'ES256', 'token alg');
  assert(Array.isArray(hdr.x5c) && hdr.x5c.length === 1, 'x5c present');
  const k = jwks.keys[0];
  const pub = await subtle.importKey('jwk', { kty: k.kty, crv: k.crv, x: k.x, y: k.y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  const ok = await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pub, unb64u(s), Buffer.from(h + '.' + p));
  assert(ok, 'token signature verifies against the published JWKS');
  eq(hdr.jwk.x, k.x, 'header jwk is the published key');
  return JSON.parse(unb64u(p));
}

async function concatKdf(z, alg) {
  const a = Buffer.from(alg);
  const len = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const input = Buffer.concat([len(1), Buffer.from(z), len(a.length), a, len(0), len(0), len(256)]);
  return Buffer.from(await subtle.digest('SHA-256', input));
}

async function decryptJwe(key, jwe) {
  for (const f of ['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag']) assert(typeof jwe[f] === 'string', 'JWE has ' + f);
  const hdrText = unb64u(jwe.protected).toString();
  const hdr = JSON.parse(hdrText);
  eq(hdrText, guestHeader(hdr), 'protected header serialised as the guest re-derives it');
  eq(hdr.enc, 'A256GCM', 'enc');
  let cek;
  if (key.kind === 'RSA') {
    eq(hdr.alg, 'RSA-OAEP-256', 'alg');
    cek = await subtle.decrypt({ name: 'RSA-OAEP' }, key.kp.privateKey, unb64u(jwe.encrypted_key));
  } else {
    eq(hdr.alg, 'ECDH-ES+A256KW', 'alg');
    eq(hdr.epk.crv, key.kind, 'epk curve');
    const epk = await subtle.importKey('jwk', { kty: 'EC', crv: hdr.epk.crv, x: hdr.epk.x, y: hdr.epk.y }, { name: 'ECDH', namedCurve: key.kind }, false, []);
    const bits = key.kind === 'P-256' ? 256 : 528;
    const z = await subtle.deriveBits({ name: 'ECDH', public: epk }, key.kp.privateKey, bits);
    const kek = await subtle.importKey('raw', await concatKdf(z, hdr.alg), 'AES-KW', false, ['unwrapKey']);
    const k = await subtle.unwrapKey('raw', unb64u(jwe.encrypted_key), kek, 'AES-KW', 'AES-GCM', true, ['decrypt']);
    cek = await subtle.exportKey('raw', k);
  }
  const aes = await subtle.importKey('raw', cek, 'AES-GCM', false, ['decrypt']);
  const pt = await subtle.decrypt({ name: 'AES-GCM', iv: unb64u(jwe.iv), additionalData: Buffer.from(jwe.protected), tagLength: 128 },
    aes, Buffer.concat([unb64u(jwe.ciphertext), unb64u(jwe.tag)]));
  return Buffer.from(pt).toString();
}

// Every failure: the expected status and Trustee's error shape, no secret.
function noSecret(r) {
  const t = r.text;
  for (const form of [SECRET, Buffer.from(SECRET).toString('base64'), b64u(Buffer.from(SECRET))])
    assert(!t.includes(form), 'response carries no secret bytes');
}
function denied(r, status, variant, detailPart) {
  noSecret(r);
  eq(r.status, status, `status (${r.text})`);
  assert(r.json && typeof r.json.detail === 'string', 'error has a detail');
  if (variant) eq(r.json.type, 'https://github.com/confidential-containers/kbs/errors/' + variant, 'error type');
  if (detailPart) assert(r.json.detail.includes(detailPart), `detail "${r.json.detail}" mentions "${detailPart}"`);
}

async function test(name, fn) {
  await fn();
  passed++;
  console.log('ok  ' + name);
}

const admin = (d) => ({ Authorization: 'Bearer ' + d.token });
const M = cfg.main, S = cfg.strict;

async function main() {
  // Admin: the secret, stored sealed.
  await test('admin stores a resource (raw bytes)', async () => {
    const r = await request(M, 'POST', '/kbs/v0/resource/default/key/app', { body: Buffer.from(SECRET), headers: { ...admin(M), 'Content-Type': 'application/octet-stream' } });
    eq(r.status, 200, 'put ' + r.text);
    const l = await request(M, 'GET', '/kbs/v0/resources', { headers: admin(M) });
    assert(l.json.resources.includes('default/key/app'), 'listed by name');
    noSecret(l);
    const u = await request(M, 'POST', '/kbs/v0/resource/default/key/x', { body: 'x', headers: { 'Content-Type': 'application/octet-stream' } });
    eq(u.status, 401, 'resource write without the admin token');
  });

  await test('auth: challenge, cookie, nonce of 32 bytes in standard base64', async () => {
    const a = await auth(M);
    eq(a.r.status, 200, 'status');
    eq(a.r.json['extra-params'], '', 'extra-params');
    eq(Buffer.from(a.nonce, 'base64').length, 32, 'nonce bytes');
    eq(a.nonce.length, 44, 'nonce is padded standard base64');
    assert(/Expires=/.test(a.setCookie), 'cookie has an expiry');
  });

  await test('auth: protocol version mismatch is 401 ProtocolVersion', async () => {
    const a = await auth(M, 'snp', '0.3.0');
    denied(a.r, 401, 'ProtocolVersion', 'Version Mismatch');
  });

  for (const kind of ['P-256', 'P-521', 'RSA']) {
    await test(`round trip auth -> attest -> resource with a ${kind} tee key (cookie and bearer)`, async () => {
      const key = await teeKey(kind);
      const s = await attestFull(M, key);
      const claims = await verifyToken(M, s.token);
      eq(claims.eat_profile, 'tag:github.com,2024:confidential-containers/Trustee', 'eat_profile');
      assert(claims.exp - claims.iat === 300, 'five-minute token');
      const cpu0 = claims.submods.cpu0;
      eq(cpu0['ear.status'], 'warning', 'sim evidence is at most warning');
      eq(claims.sim, true, 'sim claim');
      const ann = cpu0['ear.veraison.annotated-evidence'];
      eq(JSON.stringify(ann.runtime_data_claims['tee-pubkey']), JSON.stringify(key.jwk), 'tee-pubkey where Trustee reads it');
      eq(ann.init_data, initDigest(INIT_DATA).toString('hex'), 'init_data digest');
      eq(ann.init_data_claims['policy.rego'], 'package agent_policy\n', 'init_data_claims parsed from TOML');
      assert(typeof cpu0['ear.trustworthiness-vector'].hardware === 'number', 'trust vector');
      const r = await request(M, 'GET', '/kbs/v0/resource/default/key/app', { headers: { Cookie: s.cookie } });
      eq(r.status, 200, 'resource via cookie ' + r.text);
      eq(await decryptJwe(key, r.json), SECRET, 'decrypted resource (cookie)');
      const b = await request(M, 'GET', '/kbs/v0/resource/default/key/app', { headers: { Authorization: 'Bearer ' + s.token } });
      eq(b.status, 200, 'resource via bearer ' + b.text);
      eq(await decryptJwe(key, b.json), SECRET, 'decrypted resource (bearer)');
    });
  }

  const key = await teeKey('P-256');

  await test('attack: replayed nonce (second attest on a used session)', async () => {
    const s = await attestFull(M, key);
    const r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(s.nonce, key.jwk, s.evidence), headers: { Cookie: s.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'already used');
  });

  await test('attack: evidence replayed into a new session (foreign nonce)', async () => {
    const s = await attestFull(M, key);
    const a = await auth(M);
    let r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(s.nonce, key.jwk, s.evidence), headers: { Cookie: a.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'nonce');
    const b = await auth(M);
    r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(b.nonce, key.jwk, s.evidence), headers: { Cookie: b.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'REPORT_DATA');
  });

  await test('attack: attest without a session cookie, or with an unknown one', async () => {
    let r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody('x', key.jwk, {}) });
    denied(r, 401, 'RcarAttestFailed', 'cookie');
    r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody('x', key.jwk, {}), headers: { Cookie: 'kbs-session-id=00112233445566778899aabbccddeeff' } });
    denied(r, 401, 'RcarAttestFailed', 'session');
  });

  await test('attack: report_data bound to another key', async () => {
    const other = await teeKey('P-256');
    const a = await auth(M);
    const ev = simEvidence(M, await reportData(a.nonce, other.jwk), initDigest(INIT_DATA));
    const r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(a.nonce, key.jwk, ev), headers: { Cookie: a.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'REPORT_DATA');
  });

  await test('attack: init-data digest mismatch', async () => {
    const a = await auth(M);
    const ev = simEvidence(M, await reportData(a.nonce, key.jwk), initDigest(INIT_DATA + '# changed\n'));
    const r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(a.nonce, key.jwk, ev), headers: { Cookie: a.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'HOST_DATA');
  });

  await test('attack: tampered evidence (measurement byte flipped)', async () => {
    const a = await auth(M);
    const ev = simEvidence(M, await reportData(a.nonce, key.jwk), initDigest(INIT_DATA));
    const raw = Buffer.from(ev.attestation_report, 'base64');
    raw[0x90] ^= 1;
    ev.attestation_report = raw.toString('base64');
    const r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(a.nonce, key.jwk, ev), headers: { Cookie: a.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'SNP evidence');
  });

  await test('attack: token signed by another key', async () => {
    const s = await attestFull(M, key);
    const [, p] = s.token.split('.');
    const kp = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']);
    const jwk = await subtle.exportKey('jwk', kp.publicKey);
    const h = b64u(Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT', jwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } })));
    const sig = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, kp.privateKey, Buffer.from(h + '.' + p));
    const r = await request(M, 'GET', '/kbs/v0/resource/default/key/app', { headers: { Authorization: `Bearer ${h}.${p}.${b64u(sig)}` } });
    denied(r, 401, 'TokenVerifierError', 'signature');
  });

  await test('attack: tampered token (claims edited, signature kept)', async () => {
    const s = await attestFull(M, key);
    const [h, p, sig] = s.token.split('.');
    const c = JSON.parse(unb64u(p));
    c.submods.cpu0['ear.status'] = 'affirming';
    c.sim = false;
    const r = await request(M, 'GET', '/kbs/v0/resource/default/key/app', { headers: { Authorization: `Bearer ${h}.${b64u(Buffer.from(JSON.stringify(c)))}.${sig}` } });
    denied(r, 401, 'TokenVerifierError', 'signature');
  });

  await test('attack: resource without a token', async () => {
    const r = await request(M, 'GET', '/kbs/v0/resource/default/key/app');
    denied(r, 401, 'TokenNotFound');
    const a = await auth(M); // a session that never attested
    const r2 = await request(M, 'GET', '/kbs/v0/resource/default/key/app', { headers: { Cookie: a.cookie } });
    denied(r2, 401, 'TokenNotFound');
  });

  await test('attack: sample evidence is denied by the default policy', async () => {
    const a = await auth(M, 'sample');
    eq(a.r.status, 200, 'auth sample');
    const d = Buffer.from(await subtle.digest('SHA-384', Buffer.from(jcs({ 'additional-evidence': '', nonce: a.nonce, 'tee-pubkey': key.jwk }))));
    const r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(a.nonce, key.jwk, { svn: '1', report_data: d.toString('base64') }, null), headers: { Cookie: a.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'denied by policy');
  });

  await test('attack: malformed and oversized bodies', async () => {
    let r = await request(M, 'POST', '/kbs/v0/auth', { body: '{"version": "0.4.0", ' });
    denied(r, 401, 'InvalidRequest', 'malformed');
    r = await request(M, 'POST', '/kbs/v0/attest', { body: '[1,2]' });
    denied(r, 401, 'InvalidRequest');
    r = await request(M, 'POST', '/kbs/v0/attest', { body: '{"x":"' + 'A'.repeat(2 << 20) + '"}' });
    noSecret(r);
    eq(r.status, 413, 'oversized attest body');
    const a = await auth(M);
    r = await request(M, 'POST', '/kbs/v0/attest', { body: attestBody(a.nonce, { kty: 'EC', crv: 'P-256', x: key.jwk.x, y: key.jwk.x }, {}), headers: { Cookie: a.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'curve');
    r = await request(M, 'GET', '/kbs/v0/resource/default/key/..hidden');
    eq(r.status, 404, 'invalid path segment');
  });

  // The strict daemon: no dev mode, 2-second sessions and tokens.
  await test('attack: release denied by policy for a non-affirming (sim) token', async () => {
    const r0 = await request(S, 'POST', '/kbs/v0/resource/default/key/app', { body: Buffer.from(SECRET), headers: { ...admin(S), 'Content-Type': 'application/octet-stream' } });
    eq(r0.status, 200, 'put');
    const s = await attestFull(S, key);
    const r = await request(S, 'GET', '/kbs/v0/resource/default/key/app', { headers: { Authorization: 'Bearer ' + s.token } });
    denied(r, 401, 'PolicyDeny', 'dev mode');
  });

  await test('attack: expired session and expired token', async () => {
    const a = await auth(S);
    const s = await attestFull(S, key);
    await new Promise((res) => setTimeout(res, 3200));
    const ev = simEvidence(S, await reportData(a.nonce, key.jwk), initDigest(INIT_DATA));
    let r = await request(S, 'POST', '/kbs/v0/attest', { body: attestBody(a.nonce, key.jwk, ev), headers: { Cookie: a.cookie } });
    denied(r, 401, 'RcarAttestFailed', 'session');
    r = await request(S, 'GET', '/kbs/v0/resource/default/key/app', { headers: { Authorization: 'Bearer ' + s.token } });
    denied(r, 401, 'TokenVerifierError', 'expired');
  });

  await test('audit log and metrics record attestations and releases', async () => {
    const m = await request(M, 'GET', '/metrics', { headers: admin(M) });
    assert(/cocod_kbs_attestations_total\{tee="snp",verdict="issued"\} \d+/.test(m.text), 'attestation counter');
    assert(/cocod_kbs_attestations_total\{tee="snp",verdict="denied"\}/.test(m.text), 'denial counter');
    assert(/cocod_kbs_resource_requests_total\{result="released"\}/.test(m.text), 'release counter');
    noSecret(m);
  });

  console.log(`kbs conformance: ${passed} passed`);
}

main().catch((err) => { console.error('FAIL after ' + passed + ' passed: ' + (err && err.stack || err)); process.exit(1); });
