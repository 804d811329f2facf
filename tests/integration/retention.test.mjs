// Retention: the sweep deletes exactly the chat messages and journal entries
// older than atlas.xml's days, in bounded batches, and follows a change of
// the file without a restart. Time moves by writing old rows through the
// store (tests/tools/store-tool), not by sleeping.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { STORE_TOOL, startServer } from './harness.mjs';
import { clientLogin } from './rt-client.mjs';

const run = promisify(execFile);
const PW = 'retention-pass-1';
const DAY = 86400;

describe('retention', () => {
  let srv, admin, alice, bob;
  const tool = async (...args) => (await run(STORE_TOOL, [srv.storeTarget, ...args.map(String)])).stdout.trim();
  const message = (age, delivered, text) => tool('message', 'alice', 'bob', age, delivered ? 1 : 0, text);
  const texts = async () => {
    const r = await srv.api('GET', '/client/v1/messages?with=alice@ret.example&limit=200', { token: bob });
    assert.equal(r.status, 200, r.text);
    return r.json.messages.map((m) => m.text).sort();
  };
  const calls = async () => {
    const r = await srv.api('GET', '/client/v1/journal?limit=200', { token: alice });
    return r.json.entries.filter((e) => e.kind === 'call').map((e) => e.peer).sort();
  };
  const sweep = async () => {
    const r = await srv.api('POST', '/api/v1/retention/run', { token: admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.finished, true);
    return r.json;
  };
  const writeAtlas = async (im, journal) => {
    const xml = await fsp.readFile(srv.atlasPath, 'utf8');
    let out = xml.replace(/<IMDeleteAfterDays>[^<]*<\/IMDeleteAfterDays>/, '')
      .replace(/<JournalDeleteAfterDays>[^<]*<\/JournalDeleteAfterDays>/, '');
    const add = (im === null ? '' : `<IMDeleteAfterDays>${im}</IMDeleteAfterDays>`)
      + (journal === null ? '' : `<JournalDeleteAfterDays>${journal}</JournalDeleteAfterDays>`);
    out = out.replace('</Atlas>', `${add}</Atlas>`);
    await fsp.writeFile(srv.atlasPath, out);
  };

  before(async () => {
    srv = await startServer({ atlas: '<Domain>ret.example</Domain>', imDays: 30, journalDays: 60 });
    admin = await srv.login();
    for (const name of ['alice', 'bob']) {
      const r = await srv.api('POST', '/api/v1/users', { token: admin, body: { name, password: PW } });
      assert.equal(r.status, 201, r.text);
    }
    alice = await clientLogin(srv, 'alice', PW);
    bob = await clientLogin(srv, 'bob', PW);
  });
  after(async () => { if (srv) await srv.stop(); });

  test('the sweep ran at start; the state shows the days from atlas.xml', async () => {
    const r = await srv.api('GET', '/api/v1/retention', { token: admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.im_delete_after_days, 30);
    assert.equal(r.json.journal_delete_after_days, 60);
    assert.ok(r.json.last_run && Date.parse(r.json.last_run) > Date.now() - 60000, r.json.last_run);
    assert.ok(Date.parse(r.json.next_run) - Date.parse(r.json.last_run) >= 3599000, 'hourly');
    assert.equal((await srv.api('GET', '/api/v1/retention')).status, 401);
    assert.equal((await srv.api('POST', '/api/v1/retention/run', { token: alice })).status, 401);
  });

  test('exactly what is older than the days goes, delivered or not', async () => {
    await message(30 * DAY + 120, true, 'old delivered');
    await message(30 * DAY + 120, false, 'old undelivered');
    await message(30 * DAY - 120, true, 'just inside');
    await message(DAY, false, 'recent');
    await tool('journal', 'alice', 'call-61d', 61 * DAY);
    await tool('journal', 'alice', 'call-59d', 59 * DAY);
    const s = await sweep();
    assert.deepEqual(s.last_deleted, { messages: 2, journal: 1 });
    assert.deepEqual(await texts(), ['just inside', 'recent']);
    assert.deepEqual(await calls(), ['call-59d']);
    const again = await sweep();
    assert.deepEqual(again.last_deleted, { messages: 0, journal: 0 }, 'nothing twice');
    assert.ok(again.total_deleted.messages >= 2);
  });

  test('many rows go in bounded batches, all in one run', async () => {
    await tool('message', 'alice', 'bob', 40 * DAY, 1, 'bulk delivered', 700);
    await tool('message', 'alice', 'bob', 41 * DAY, 0, 'bulk waiting', 500);
    const s = await sweep();
    assert.equal(s.last_deleted.messages, 1200);
    assert.deepEqual(await texts(), ['just inside', 'recent']);
  });

  test('a change of atlas.xml takes effect without a restart; 0 deletes what was delivered', async () => {
    await writeAtlas(0, 60);
    let r = await srv.api('GET', '/api/v1/retention', { token: admin });
    assert.equal(r.json.im_delete_after_days, 0);
    await message(10, true, 'delivered a moment ago');
    await message(10, false, 'still waiting');
    const s = await sweep();
    assert.equal(s.im_delete_after_days, 0);
    // Marking one delivered marks the earlier ones too ("recent").
    assert.equal(s.last_deleted.messages, 3, 'just inside, recent and delivered a moment ago');
    assert.deepEqual(await texts(), ['still waiting']);
    // none given: kept
    await writeAtlas(null, null);
    r = await srv.api('GET', '/api/v1/retention', { token: admin });
    assert.equal(r.json.im_delete_after_days, null);
    assert.equal(r.json.journal_delete_after_days, null);
    await message(400 * DAY, true, 'ancient');
    assert.deepEqual((await sweep()).last_deleted, { messages: 0, journal: 0 });
    assert.ok((await texts()).includes('ancient'));
  });

  test('an invalid atlas.xml deletes nothing and says why', async () => {
    await writeAtlas(5, 5);
    const xml = await fsp.readFile(srv.atlasPath, 'utf8');
    await fsp.writeFile(srv.atlasPath, xml.replace('<IMDeleteAfterDays>5<', '<IMDeleteAfterDays>five<'));
    const s = await sweep();
    assert.deepEqual(s.last_deleted, { messages: 0, journal: 0 });
    assert.equal(s.im_delete_after_days, null);
    assert.match(s.atlas_error, /IMDeleteAfterDays/);
    assert.ok((await texts()).includes('ancient'));
    await fsp.writeFile(srv.atlasPath, xml);
    const fixed = await sweep();
    assert.equal(fixed.atlas_error, undefined);
    assert.ok(fixed.last_deleted.messages >= 1);
    assert.ok(!(await texts()).includes('ancient'));
  });
});
