// Crash safety of the domain change: with 200,000 users and 200,000
// federation subscriptions, atriumd is killed with SIGKILL at several points
// during a domain change. After each kill the store must pass
// PRAGMA integrity_check and be wholly old or wholly new: the settings'
// domain.name and federation.fqdn, the directory's domain generation, the
// audit entries, the subscription marks and the mobile registrations all
// agree. A change the API confirmed (200) must be there after the kill.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { TEST_STORE, startServer, apiCall, sleep } from './harness.mjs';

const USERS = 200000;
const CHUNK = 100000;
const PW = 'crash-test-pw-1';
const MOBILE = ['m1', 'm2', 'm3'];
// Milliseconds between sending the change and the kill: before the request
// arrives, while it counts and writes, around the commit, after the answer.
const DELAYS = [0, 1, 2, 4, 6, 8, 12, 16, 25, 40, 80, 200];

function sql(db, query) {
  const r = spawnSync('sqlite3', ['-batch', '-noheader', '-separator', '|', db, query],
    { encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`sqlite3 failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

/** The store's state as seen by an outside reader. */
function state(db) {
  const row = sql(db, `
    SELECT coalesce((SELECT value FROM settings WHERE key = 'domain.name'),
                    (SELECT json_quote(value) FROM meta WHERE name = 'install.domain.name')),
           coalesce((SELECT value FROM settings WHERE key = 'federation.fqdn'), '""'),
           (SELECT name FROM domains ORDER BY generation DESC LIMIT 1),
           (SELECT max(generation) FROM domains),
           (SELECT count(*) FROM audit WHERE key = 'domain.change'),
           (SELECT count(*) FROM audit WHERE key = 'domain.name'),
           (SELECT count(*) FROM subscriptions
              WHERE generation < (SELECT max(generation) FROM domains)),
           (SELECT count(*) FROM devices
              WHERE generation = (SELECT max(generation) FROM domains)),
           (SELECT count(*) FROM users),
           (SELECT count(*) FROM subscriptions),
           (SELECT version FROM settings_state)`);
  const f = row.split('|');
  return {
    domain: JSON.parse(f[0]), fqdn: JSON.parse(f[1]), directory: f[2], generation: Number(f[3]),
    auditChanges: Number(f[4]), auditDomainName: Number(f[5]), outdatedSubs: Number(f[6]),
    currentDevices: Number(f[7]), users: Number(f[8]), subs: Number(f[9]), version: Number(f[10]),
  };
}

// It reads the SQLite file itself; PostgreSQL's crash behaviour is tested in
// cluster.test.mjs (the database killed with pg_ctl -m immediate).
const skip = TEST_STORE !== 'sqlite' && 'reads the SQLite file directly (ATRIUM_TEST_STORE is not sqlite)';

test('kill -9 during domain changes leaves the store wholly old or wholly new', { timeout: 110000, skip }, async (t) => {
  let srv = await startServer({ atlas: '<Domain>d0.example</Domain>', keep: true, startTimeoutMs: 20000 });
  const dirs = [srv.dir];
  const dataDir = srv.dataDir;
  const db = path.join(dataDir, 'atrium.db');
  try {
    let token = await srv.login();
    const api = (m, p, o = {}) => apiCall(srv.url, m, p, { token, timeoutMs: 60000, ...o });

    // Population through the real import API, in two big chunks each.
    const t0 = Date.now();
    for (let s = 0; s < USERS; s += CHUNK) {
      const rows = [];
      for (let i = s; i < Math.min(USERS, s + CHUNK); i++) rows.push({ name: `u${i}` });
      const r = await api('POST', '/api/v1/users/import', { body: rows });
      assert.equal(r.status, 200, r.text.slice(0, 500));
    }
    for (let s = 0; s < USERS; s += CHUNK) {
      let csv = 'user,remote,state\n';
      for (let i = s; i < Math.min(USERS, s + CHUNK); i++) csv += `u${i},r${i}@partner.example,active\n`;
      const r = await api('POST', '/api/v1/federation/subscriptions/import',
        { body: csv, headers: { 'content-type': 'text/csv' } });
      assert.equal(r.status, 200, r.text.slice(0, 500));
    }
    for (const m of MOBILE) {
      let r = await api('POST', '/api/v1/users', { body: { name: m, password: PW } });
      assert.equal(r.status, 201, r.text);
      r = await apiCall(srv.url, 'POST', '/client/v1/login',
        { body: { login: `${m}@d0.example`, password: PW, device: { id: `dev-${m}`, platform: 'ios' } } });
      assert.equal(r.status, 200, r.text);
    }
    let r = await api('PATCH', '/api/v1/settings', { body: { 'federation.fqdn': 'sip.d0.example' } });
    assert.equal(r.status, 200, r.text);
    t.diagnostic(`populated ${USERS} users and ${USERS} subscriptions in ${Date.now() - t0} ms`);

    let before = state(db);
    assert.equal(before.users, USERS + MOBILE.length);
    assert.equal(before.subs, USERS);
    assert.equal(before.generation, 1);
    const auditBase = before.auditDomainName - before.auditChanges;
    let outcomes = { old: 0, new: 0 };

    for (let round = 0; round < DELAYS.length; round++) {
      const target = `d${round + 1}.example`;
      let confirmed = false;
      const pending = apiCall(srv.url, 'POST', '/api/v1/domain/change',
        { token, body: { domain: target, dry_run: false }, timeoutMs: 30000 })
        .then((res) => { if (res.status === 200) confirmed = true; else throw new Error(res.text); })
        .catch((e) => { if (!/fetch failed|aborted|other side closed|ECONNRESET|terminated/i.test(String(e?.cause ?? e))) throw e; });
      if (DELAYS[round] > 0) await sleep(DELAYS[round]);
      const wasConfirmed = confirmed; // only what was answered before the kill counts
      await srv.kill();
      await pending;

      const check = sql(db, 'PRAGMA integrity_check');
      assert.equal(check, 'ok', `round ${round}: integrity_check: ${check}`);
      const s = state(db);
      const isNew = s.domain === target;
      assert.ok(isNew || s.domain === before.domain, `round ${round}: domain ${s.domain} is neither ${before.domain} nor ${target}`);
      if (wasConfirmed) assert.ok(isNew, `round ${round}: a confirmed change was lost`);
      // Every part agrees with domain.name.
      assert.equal(s.directory, s.domain, `round ${round}: directory on ${s.directory}, settings on ${s.domain}`);
      assert.equal(s.fqdn, `sip.${s.domain}`, `round ${round}`);
      assert.equal(s.generation, before.generation + (isNew ? 1 : 0), `round ${round}`);
      assert.equal(s.auditChanges, s.generation - 1, `round ${round}: one audit entry per change`);
      assert.equal(s.auditDomainName - s.auditChanges, auditBase, `round ${round}`);
      assert.equal(s.version, before.version + (isNew ? 1 : 0), `round ${round}: settings version`);
      assert.equal(s.outdatedSubs, s.generation > 1 ? USERS : 0, `round ${round}: subscription marks`);
      assert.equal(s.currentDevices, s.generation > 1 ? 0 : MOBILE.length, `round ${round}: devices`);
      assert.equal(s.users, before.users);
      assert.equal(s.subs, before.subs);
      outcomes[isNew ? 'new' : 'old']++;
      before = s;

      srv = await startServer({ dataDir, keep: true, startTimeoutMs: 20000 });
      dirs.push(srv.dir);
      token = await srv.login();
    }
    t.diagnostic(`after the kills: ${outcomes.old} wholly old, ${outcomes.new} wholly new`);
    assert.ok(outcomes.new >= 1, 'no change ever completed: the later delays are too short');

    // The restarted daemon agrees with the store, through the API.
    r = await apiCall(srv.url, 'GET', '/api/v1/settings', { token });
    assert.equal(r.json.settings['domain.name'].value, before.domain);
    r = await apiCall(srv.url, 'GET', '/api/v1/federation/subscriptions?state=to-be-recreated&limit=1', { token });
    assert.equal(r.json.total, before.generation > 1 ? USERS : 0);
    r = await apiCall(srv.url, 'POST', '/client/v1/login', { body: { login: 'm1@d0.example', password: PW } });
    if (before.generation > 1) {
      assert.equal(r.status, 401);
      assert.equal(r.json.login, `m1@${before.domain}`);
    }
  } finally {
    await srv.stop();
    for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
  }
});
