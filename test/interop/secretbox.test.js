// Interoperability of domi.secretbox with the two libraries Node applications
// use for crypto_secretbox: what either side seals, the other opens.
//
// Connects with the usual PG* environment variables (scripts/test sets them
// for its throwaway cluster).  Run: npm ci && node --test
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('pg');
const sodium = require('libsodium-wrappers');
const nacl = require('tweetnacl');

const NONCE = 24;
const OVERHEAD = 40;

// The values every direction is tried with.
const VALUES = {
  'empty': Buffer.alloc(0),
  '1 byte': Buffer.from([0x7f]),
  'multi-byte UTF-8': Buffer.from('Grüße, 東京 ✓ 😀 — ünïcödé', 'utf8'),
  '1 MB': crypto.randomBytes(1024 * 1024),
};

let db;
let key;

before(async () => {
  await sodium.ready;
  db = new Client();
  await db.connect();
  await db.query('CREATE EXTENSION IF NOT EXISTS domi');
  key = Buffer.from(sodium.crypto_secretbox_keygen());
});

after(async () => {
  if (db) await db.end();
});

// The ways a Node application seals: nonce || secretbox(...).
const sealers = {
  'libsodium-wrappers': (msg, k) => {
    const nonce = sodium.randombytes_buf(NONCE);
    return Buffer.concat([nonce, sodium.crypto_secretbox_easy(msg, nonce, k)]);
  },
  'tweetnacl': (msg, k) => {
    const nonce = nacl.randomBytes(NONCE);
    return Buffer.concat([nonce, nacl.secretbox(msg, nonce, k)]);
  },
};

// ... and opens; null when the box does not authenticate.
const openers = {
  'libsodium-wrappers': (box, k) => {
    try {
      return Buffer.from(sodium.crypto_secretbox_open_easy(box.subarray(NONCE), box.subarray(0, NONCE), k));
    } catch (e) {
      return null;
    }
  },
  'tweetnacl': (box, k) => {
    const m = nacl.secretbox.open(box.subarray(NONCE), box.subarray(0, NONCE), k);
    return m === null ? null : Buffer.from(m);
  },
};

async function sqlstateOf(sql, params) {
  try {
    await db.query(sql, params);
  } catch (e) {
    return e.code;
  }
  return 'no error';
}

for (const lib of Object.keys(sealers)) {
  for (const [name, value] of Object.entries(VALUES)) {
    test(`${name}: sealed by ${lib}, opened by domi.secretbox_open`, async () => {
      const box = sealers[lib](value, key);
      const { rows } = await db.query('SELECT domi.secretbox_open($1, $2) AS m', [box, key]);
      assert.ok(rows[0].m.equals(value));
    });

    test(`${name}: sealed by domi.secretbox, opened by ${lib}`, async () => {
      const { rows } = await db.query('SELECT domi.secretbox($1, $2) AS box', [value, key]);
      const box = rows[0].box;
      assert.equal(box.length, value.length + OVERHEAD);
      const opened = openers[lib](box, key);
      assert.notEqual(opened, null, 'the box authenticates');
      assert.ok(opened.equals(value));
    });
  }

  test(`text: sealed by ${lib} as UTF-8, opened by domi.secretbox_open_text`, async () => {
    const text = 'Grüße, 東京 ✓ 😀';
    const box = sealers[lib](Buffer.from(text, 'utf8'), key);
    const { rows } = await db.query('SELECT domi.secretbox_open_text($1, $2) AS t', [box, key]);
    assert.equal(rows[0].t, text);
  });

  test(`text: sealed by domi.secretbox_text, opened by ${lib} as UTF-8`, async () => {
    const text = 'Grüße, 東京 ✓ 😀';
    const { rows } = await db.query('SELECT domi.secretbox_text($1, $2) AS box', [text, key]);
    assert.equal(openers[lib](rows[0].box, key).toString('utf8'), text);
  });

  test(`tampered boxes from ${lib} are refused by domi with SQLSTATE 39000`, async () => {
    const box = sealers[lib](Buffer.from('pay 100 to alice'), key);
    // One flipped bit in the nonce, the MAC and the ciphertext; a cut-off
    // byte; an added byte; the wrong key.
    for (const at of [0, NONCE, box.length - 1]) {
      const bad = Buffer.from(box);
      bad[at] ^= 0x01;
      assert.equal(await sqlstateOf('SELECT domi.secretbox_open($1, $2)', [bad, key]), '39000', `bit flipped at ${at}`);
    }
    assert.equal(await sqlstateOf('SELECT domi.secretbox_open($1, $2)', [box.subarray(0, box.length - 1), key]), '39000');
    assert.equal(await sqlstateOf('SELECT domi.secretbox_open($1, $2)', [Buffer.concat([box, Buffer.from([0])]), key]), '39000');
    assert.equal(await sqlstateOf('SELECT domi.secretbox_open_text($1, $2)', [box, crypto.randomBytes(32)]), '39000');
  });

  test(`tampered boxes from domi are refused by ${lib}`, async () => {
    const { rows } = await db.query("SELECT domi.secretbox('pay 100 to alice', $1) AS box", [key]);
    for (const at of [0, NONCE, rows[0].box.length - 1]) {
      const bad = Buffer.from(rows[0].box);
      bad[at] ^= 0x01;
      assert.equal(openers[lib](bad, key), null, `bit flipped at ${at}`);
    }
  });

  test(`invalid UTF-8 sealed by ${lib} is refused by secretbox_open_text with SQLSTATE 22021`, async () => {
    const box = sealers[lib](Buffer.from([0x61, 0xc3, 0x28]), key);
    assert.equal(await sqlstateOf('SELECT domi.secretbox_open_text($1, $2)', [box, key]), '22021');
  });
}

test('the same fixed nonce gives the same bytes in libsodium-wrappers and tweetnacl', () => {
  const nonce = Buffer.alloc(NONCE, 7);
  const msg = Buffer.from('format check');
  assert.ok(Buffer.from(sodium.crypto_secretbox_easy(msg, nonce, key)).equals(Buffer.from(nacl.secretbox(msg, nonce, key))));
});

test('short boxes and wrong-length keys are refused with their own SQLSTATEs', async () => {
  assert.equal(await sqlstateOf('SELECT domi.secretbox_open($1, $2)', [crypto.randomBytes(39), key]), '22P03');
  assert.equal(await sqlstateOf('SELECT domi.secretbox($1, $2)', [Buffer.from('x'), crypto.randomBytes(31)]), '22023');
  assert.equal(await sqlstateOf('SELECT domi.secretbox_open($1, $2)', [sealers.tweetnacl(Buffer.from('x'), key), key.subarray(0, 16)]), '22023');
});

test('domi never reuses a nonce across 10,000 boxes', async () => {
  const { rows } = await db.query(
    "SELECT count(DISTINCT substr(domi.secretbox('', $1), 1, 24)) AS n FROM generate_series(1, 10000)", [key]);
  assert.equal(Number(rows[0].n), 10000);
});

test('the known box of test/sql/crypto.sql is what tweetnacl seals for the same key and nonce', () => {
  const k = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  const nonce = Buffer.from(Array.from({ length: NONCE }, (_, i) => 0xa0 + i));
  const box = Buffer.concat([nonce, nacl.secretbox(Buffer.from('hello, domi'), nonce, k)]);
  assert.equal(box.toString('hex'),
    'a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b771670f2a7089bf31f3e3b92ddb147a815ef0db76ed4ac7ca184652');
});

// domi takes a faster path for values up to 480 bytes and libsodium's
// crypto_secretbox_easy above: every length across both, both directions.
test('every length from 0 to 1100 bytes, both ways, with both libraries', async () => {
  const data = crypto.randomBytes(1100);
  const lengths = Array.from({ length: 1101 }, (_, n) => n);
  const { rows } = await db.query(
    'SELECT n, domi.secretbox(substr($1::bytea, 1, n), $2) AS box FROM generate_series(0, 1100) n ORDER BY n',
    [data, key]);
  assert.equal(rows.length, lengths.length);
  for (const { n, box } of rows) {
    for (const lib of Object.keys(openers)) {
      const opened = openers[lib](box, key);
      assert.notEqual(opened, null, `${n} bytes sealed by domi authenticate in ${lib}`);
      assert.ok(opened.equals(data.subarray(0, n)), `${n} bytes sealed by domi open in ${lib}`);
    }
  }
  for (const lib of Object.keys(sealers)) {
    const boxes = lengths.map((n) => sealers[lib](data.subarray(0, n), key));
    const res = await db.query(
      `SELECT count(*) FILTER (WHERE domi.secretbox_open(box, $2) = substr($3::bytea, 1, (n - 1)::int)) AS good
         FROM unnest($1::bytea[]) WITH ORDINALITY AS b(box, n)`,
      [boxes, key, data]);
    assert.equal(Number(res.rows[0].good), lengths.length, `all lengths sealed by ${lib} open in domi`);
  }
  // A flipped MAC bit is refused on both paths.
  for (const n of [200, 1000]) {
    const bad = sealers.tweetnacl(data.subarray(0, n), key);
    bad[NONCE + 3] ^= 0x10;
    assert.equal(await sqlstateOf('SELECT domi.secretbox_open($1, $2)', [bad, key]), '39000', `${n} bytes`);
  }
});
