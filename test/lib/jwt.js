'use strict';
// Hand-made JSON Web Tokens, so that tests can also make the bad ones
// (wrong key, alg "none", expired, malformed) that a library would refuse.

const crypto = require('node:crypto');

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

// sign({ sub: '42' }, secret) -> HS256 token valid for an hour.
// opts: { alg: 'HS256' | 'HS512' | 'none', exp: seconds since epoch | null, header: {...} }
function sign(claims, secret, opts = {}) {
  const alg = opts.alg || 'HS256';
  const now = Math.floor(Date.now() / 1000);
  const body = { ...claims };
  if (opts.exp !== null && body.exp === undefined) body.exp = opts.exp ?? now + 3600;
  const head = b64url({ alg, typ: 'JWT', ...(opts.header || {}) });
  const payload = b64url(body);
  if (alg === 'none') return `${head}.${payload}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const sig = crypto.createHmac(hash, secret).update(`${head}.${payload}`).digest('base64url');
  return `${head}.${payload}.${sig}`;
}

module.exports = { sign };
