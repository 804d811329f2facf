// Push notifications end to end: a real atriumd sends to protocol-faithful
// stand-ins of APNs, FCM (with its OAuth2 token endpoint) and a Matrix push
// gateway (peers/push-providers.mjs), directly and through a real squid.
// The stand-ins verify the ES256 provider token in r||s form, its age, the
// headers, the path and the sizes, and answer with Apple's and Google's
// reasons, so what is tested is atriumd's protocol code.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { STORE_TOOL, ctl, show, sleep, startServer } from './harness.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';
import { makeTlsFiles } from './peers/tls-files.mjs';
import { makeApnsKey, makeServiceAccount, startApns, startFcm, startGateway } from './peers/push-providers.mjs';
import { squidAvailable, startSquid } from './peers/squid.mjs';
import { launchBrowser, loginUi } from './browser.mjs';

const PW = 'push-test-pass-1';
const KEY_ID = 'ABC123DEFG';
const TEAM_ID = 'TEAM123456';
const TOPIC = 'com.example.atrium';

const hexToken = () => crypto.randomBytes(32).toString('hex');

/** Polls fn (bounded) until it returns a truthy value. */
async function until(fn, ms = 10000, what = 'the condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function metric(server, token, name) {
  const text = (await server.api('GET', '/metrics', { token })).text;
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

describe('push notifications', { timeout: 300000 }, () => {
  let tls, apns, fcm, gateway, apnsKey, account, srv, admin;
  const tokens = {};   // client tokens by user
  const devices = {};  // push token by user

  async function patch(values, status = 200) {
    const r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: values });
    assert.equal(r.status, status, r.text);
    return r;
  }

  /** Logs `name` in with a device and registers a push token for it. */
  async function phone(name, platform = 'ios', pushToken = platform === 'ios' ? hexToken() : `fcm-${crypto.randomBytes(80).toString('hex')}`) {
    const t = await clientLogin(srv, name, PW, { id: `${name}-phone`, platform });
    const r = await srv.api('PUT', '/client/v1/device', { token: t, body: { push_token: pushToken } });
    assert.equal(r.status, 200, r.text);
    tokens[name] = t;
    devices[name] = pushToken;
    return t;
  }

  async function chat(from, to, text) {
    const c = await rtConnect(srv, await clientLogin(srv, from, PW));
    const ok = await c.request({ type: 'chat.send', to: `${to}@push.example`, text });
    c.close();
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    return ok.message_id;
  }

  /** n chat.send frames to `to`, spread over the clients, sent at once; their answers. */
  async function burst(clients, to, n, text = (i) => `burst ${i}`) {
    const per = clients.map(() => []);
    for (let i = 0; i < n; i++) {
      const k = i % clients.length, id = `b${Date.now()}-${i}`;
      per[k].push(id);
      clients[k].send({ type: 'chat.send', id, to: `${to}@push.example`, text: text(i) });
    }
    const answers = [];
    for (const [k, ids] of per.entries()) {
      for (const id of ids) answers.push(await clients[k].waitFor((f) => (f.type === 'ok' || f.type === 'error') && f.id === id, 20000, `answer ${id}`));
    }
    return answers;
  }

  const forToken = (st, token) => st.received.filter((r) => r.token === token);

  before(async () => {
    tls = await makeTlsFiles();
    apnsKey = makeApnsKey();
    apns = await startApns({ cert: tls.cert, key: tls.key, keyId: KEY_ID, teamId: TEAM_ID, topic: TOPIC, publicKey: apnsKey.publicKey });
    fcm = await startFcm({ cert: tls.cert, key: tls.key });
    account = makeServiceAccount(fcm.tokenUri);
    fcm.account = account;
    gateway = await startGateway({ cert: tls.cert, key: tls.key });
    srv = await startServer({
      atlas: `<Domain>push.example</Domain><CABundle>${tls.caFile}</CABundle>`,
      env: { ATRIUM_PUSH_APNS_URL: apns.url, ATRIUM_PUSH_FCM_URL: fcm.url },
    });
    admin = await srv.login();
    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank'].map((name) => ({ name, password: PW, display_name: name[0].toUpperCase() + name.slice(1) + ' Example' }));
    const r = await srv.api('POST', '/api/v1/users/import', { token: admin, body: users });
    assert.equal(r.status, 200, r.text);
  });

  after(async () => {
    await srv?.stop();
    await apns?.close();
    await fcm?.close();
    await gateway?.close();
    await tls?.remove();
  });

  test('keys and URLs that cannot work are refused, naming the field; secrets never come back', async () => {
    const cases = [
      [{ 'mobile.apns_key': makeApnsKey({ format: 'sec1' }).pem }, 'mobile.apns_key', /PKCS#8/],
      [{ 'mobile.apns_key': makeApnsKey({ curve: 'P-384' }).pem }, 'mobile.apns_key', /P-256/],
      [{ 'mobile.apns_key': 'not a key' }, 'mobile.apns_key', /PEM/],
      [{ 'mobile.apns_key': account.json.private_key }, 'mobile.apns_key', /RSA|EC/],
      [{ 'mobile.fcm_service_account': '{"type":"service_account"}' }, 'mobile.fcm_service_account', /project_id/],
      [{ 'mobile.fcm_service_account': 'nope' }, 'mobile.fcm_service_account', /JSON/],
      [{ 'mobile.fcm_service_account': JSON.stringify({ ...account.json, token_uri: 'http://x.example/token' }) }, 'mobile.fcm_service_account', /https/],
      [{ 'mobile.push_gateway_url': 'http://push.example.com/_matrix/push/v1/notify' }, 'mobile.push_gateway_url', /https|encrypted/],
      [{ 'mobile.apns_key_id': 'abc' }, 'mobile.apns_key_id', /10 characters/],
      [{ 'mobile.push_content': 'everything' }, 'mobile.push_content', /choices/],
    ];
    for (const [body, key, re] of cases) {
      const r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body });
      assert.equal(r.status, 422, `${key}: ${r.text}`);
      const e = r.json.errors.find((x) => x.key === key);
      assert.ok(e, r.text);
      assert.match(e.message, re, r.text);
    }
    await patch({
      'mobile.push_enabled': true, 'mobile.apns_key_id': KEY_ID, 'mobile.apns_team_id': TEAM_ID,
      'mobile.apns_topic': TOPIC, 'mobile.apns_key': apnsKey.pem, 'mobile.fcm_service_account': account.text,
    });
    const g = await srv.api('GET', '/api/v1/settings', { token: admin });
    assert.ok(!g.text.includes('BEGIN PRIVATE KEY'), 'a key came back');
    assert.ok(!g.text.includes(account.json.private_key_id), 'the service account came back');
    const audit = await srv.api('GET', '/api/v1/audit?limit=50', { token: admin });
    assert.ok(!audit.text.includes('PRIVATE KEY'), 'a key is in the audit log');
    assert.ok(!srv.output().includes('PRIVATE KEY'), 'a key is in the log');
  });

  test('the app registers its push token; a desktop login and a bad token are refused', async () => {
    const desk = await clientLogin(srv, 'hank', PW);
    let r = await srv.api('PUT', '/client/v1/device', { token: desk, body: { push_token: hexToken() } });
    assert.equal(r.status, 409, r.text);
    const t = await clientLogin(srv, 'hank', PW, { id: 'hank-phone', platform: 'ios' });
    for (const bad of [{ push_token: 'has space' }, { push_token: 42 }, {}, { push_token: 'x', extra: 1 }, { push_token: 'x', platform: 'android' }]) {
      r = await srv.api('PUT', '/client/v1/device', { token: t, body: bad });
      assert.equal(r.status, 422, `${JSON.stringify(bad)}: ${r.text}`);
    }
    r = await srv.api('PUT', '/client/v1/device', { token: 'wrong', body: { push_token: 'abc' } });
    assert.equal(r.status, 401, r.text);
    r = await srv.api('PUT', '/client/v1/device', { token: t, body: { push_token: hexToken() } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { device: 'hank-phone', platform: 'ios', push: true });
    r = await srv.api('PUT', '/client/v1/device', { token: t, body: { push_token: null } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.push, false);
  });

  test('APNs: a chat to a user with no client connected is pushed, ids only; the app fetches the text', async () => {
    await phone('bob');
    const before = apns.received.length;
    const mid = await chat('alice', 'bob', 'The secret plan is on page 7');
    const got = await until(() => forToken(apns, devices.bob)[0], 10000, 'the push to bob');
    assert.equal(apns.received.length, before + 1);
    const h = got.headers;
    assert.equal(h[':path'], `/3/device/${devices.bob}`);
    assert.equal(h['apns-push-type'], 'alert');
    assert.equal(h['apns-priority'], '10');
    assert.equal(h['apns-topic'], TOPIC);
    assert.match(h['apns-id'], /^[0-9a-f-]{36}$/);
    assert.equal(h['apns-collapse-id'], `m${mid}`);
    const exp = Number(h['apns-expiration']);
    assert.ok(exp > Date.now() / 1000 + 3600 && exp < Date.now() / 1000 + 86400 + 60, h['apns-expiration']);
    // The stand-in verified the ES256 signature (64-byte r||s) and the token's age.
    const jwt = h.authorization.split(' ')[1].split('.');
    assert.equal(Buffer.from(jwt[2], 'base64url').length, 64);
    const claims = JSON.parse(Buffer.from(jwt[1], 'base64url'));
    assert.equal(claims.iss, TEAM_ID);
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 120);
    // id_only: Apple never holds the text nor the sender.
    const text = JSON.stringify(got.body);
    assert.ok(!text.includes('secret plan') && !text.includes('alice') && !text.includes('Alice'), text);
    assert.equal(got.body.atrium.kind, 'message');
    assert.equal(got.body.aps['mutable-content'], 1);
    const id = got.body.atrium.id;
    let r = await srv.api('GET', `/client/v1/notifications/${id}`, { token: tokens.bob });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.kind, 'message');
    assert.equal(r.json.message.text, 'The secret plan is on page 7');
    assert.equal(r.json.message.from, 'alice');
    r = await srv.api('GET', `/client/v1/notifications/${id}`, { token: await clientLogin(srv, 'carol', PW) });
    assert.equal(r.status, 404, 'another user read the notification');
    r = await srv.api('GET', '/client/v1/notifications/abc', { token: tokens.bob });
    assert.equal(r.status, 400, r.text);
    await until(async () => (await metric(srv, admin, 'atrium_push_sent_total{provider="apns"}')) >= 1, 5000, 'the sent metric');
  });

  test('no push while the user has a client connected; a read on another client clears the phone', async () => {
    const bobWeb = await rtConnect(srv, await clientLogin(srv, 'bob', PW));
    const n0 = forToken(apns, devices.bob).length;
    const mid = await chat('alice', 'bob', 'while you are here');
    await bobWeb.type('chat', 5000, (f) => f.message_id === mid);
    await sleep(500);
    assert.equal(forToken(apns, devices.bob).length, n0, 'pushed to a connected user');
    bobWeb.close();
    await sleep(200);
    const mid2 = await chat('alice', 'bob', 'now you are gone');
    await until(() => forToken(apns, devices.bob).length === n0 + 1, 10000, 'the second push');
    // Bob reads on the web client: the phone gets a background clear.
    const web2 = await rtConnect(srv, await clientLogin(srv, 'bob', PW));
    const ok = await web2.request({ type: 'chat.read', message_id: mid2 });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    const clear = await until(() => forToken(apns, devices.bob).find((x) => x.body.atrium.kind === 'clear'), 10000, 'the clear push');
    web2.close();
    assert.equal(clear.headers['apns-push-type'], 'background');
    assert.equal(clear.headers['apns-priority'], '5');
    assert.equal(clear.body.aps['content-available'], 1);
    assert.ok(!clear.body.aps.alert);
  });

  test('content levels: generic names the sender only, full carries the text, cut to fit 4 KiB', async () => {
    await phone('carol');
    await patch({ 'mobile.push_content': 'generic' });
    await chat('alice', 'carol', 'generic level text');
    let got = await until(() => forToken(apns, devices.carol)[0], 10000, 'the generic push');
    assert.equal(got.body.aps.alert.title, 'Alice Example');
    assert.ok(!JSON.stringify(got.body).includes('generic level text'));
    await patch({ 'mobile.push_content': 'full' });
    await chat('alice', 'carol', 'full level text');
    got = await until(() => forToken(apns, devices.carol)[1], 10000, 'the full push');
    assert.equal(got.body.aps.alert.body, 'full level text');
    // 6,000 characters of which many need escaping: cut, never refused.
    const long = 'é"'.repeat(3000);
    await chat('alice', 'carol', long);
    got = await until(() => forToken(apns, devices.carol)[2], 10000, 'the long push');
    assert.ok(got.bytes <= 4096, `${got.bytes} bytes`);
    assert.ok(got.body.aps.alert.body.endsWith('…'));
    assert.ok(long.startsWith(got.body.aps.alert.body.slice(0, -1)));
    assert.ok(!apns.answers.some((a) => a.reason === 'PayloadTooLarge'));
    await patch({ 'mobile.push_content': 'id_only' });
  });

  test('a missed call is pushed; an answered one is not', async () => {
    const call = (answered) => srv.api('POST', '/client/v1/journal', {
      token: tokens.bob, body: { direction: 'in', peer: '+4930123456', started: new Date().toISOString(), duration_s: 0, answered },
    });
    const n0 = forToken(apns, devices.bob).length;
    let r = await call(true);
    assert.equal(r.status, 201, r.text);
    r = await call(false);
    assert.equal(r.status, 201, r.text);
    const got = await until(() => forToken(apns, devices.bob).find((x, i) => i >= n0 && x.body.atrium.kind === 'call'), 10000, 'the missed-call push');
    assert.equal(got.headers['apns-collapse-id'], `c${r.json.id}`);
    await sleep(300);
    assert.equal(forToken(apns, devices.bob).filter((x) => x.body.atrium.kind === 'call').length, 1);
    const f = await srv.api('GET', `/client/v1/notifications/${got.body.atrium.id}`, { token: tokens.bob });
    assert.equal(f.status, 200, f.text);
    assert.equal(f.json.call.peer, '+4930123456');
  });

  test('410 Unregistered prunes the token only when newer than its registration; BadDeviceToken prunes', async () => {
    await phone('dave');
    // Unregistered before the token was registered: the app registered again since.
    apns.unregistered.set(devices.dave, Date.now() - 3600000);
    await chat('alice', 'dave', 'one');
    await until(() => apns.answers.filter((a) => a.status === 410).length === 1, 10000, 'the first 410');
    await chat('alice', 'dave', 'two');
    await until(() => apns.answers.filter((a) => a.status === 410).length === 2, 10000, 'the second 410 (token kept)');
    apns.unregistered.set(devices.dave, Date.now() + 1000);
    await chat('alice', 'dave', 'three');
    await until(() => apns.answers.filter((a) => a.status === 410).length === 3, 10000, 'the third 410');
    await until(async () => (await srv.api('GET', '/api/v1/push/status', { token: admin })).json.pruned >= 1, 5000, 'the prune');
    const before410 = apns.answers.length;
    await chat('alice', 'dave', 'four: nothing to push to');
    await sleep(700);
    assert.equal(apns.answers.length, before410, 'pushed to a pruned token');
    // A token APNs does not know.
    await phone('erin');
    apns.badTokens.add(devices.erin);
    await chat('alice', 'erin', 'x');
    await until(() => apns.answers.some((a) => a.reason === 'BadDeviceToken'), 10000, 'BadDeviceToken');
    await until(async () => (await srv.api('GET', '/api/v1/push/status', { token: admin })).json.pruned >= 2, 5000, 'the second prune');
    const m = await metric(srv, admin, 'atrium_push_pruned_total');
    assert.ok(m >= 2, String(m));
    const reasons = (await srv.api('GET', '/metrics', { token: admin })).text;
    assert.match(reasons, /atrium_push_failed_by_reason_total\{provider="apns",reason="BadDeviceToken"\} 1/);
  });

  test('503 with Retry-After is retried after the wait; the notification arrives once', async () => {
    const n0 = forToken(apns, devices.bob).length;
    apns.fail.push({ status: 503, reason: 'ServiceUnavailable', retryAfter: 1 });
    const t0 = Date.now();
    await chat('alice', 'bob', 'after the outage');
    const got = await until(() => forToken(apns, devices.bob)[n0], 15000, 'the retried push');
    assert.ok(got.at - t0 >= 900, `retried after ${got.at - t0} ms`);
    await sleep(300);
    assert.equal(forToken(apns, devices.bob).length, n0 + 1);
    const st = (await srv.api('GET', '/api/v1/push/status', { token: admin })).json;
    assert.ok(st.retried >= 1, JSON.stringify(st));
  });

  test('a GOAWAY in the middle of a burst: every notification arrives, the lost streams are not attempts', async () => {
    await phone('frank');
    apns.goawayAfter = 5;
    const senders = ['alice', 'carol'];
    const clients = await Promise.all(senders.map(async (n) => rtConnect(srv, await clientLogin(srv, n, PW))));
    const n0 = forToken(apns, devices.frank).length;
    const answers = await burst(clients, 'frank', 60);
    for (const c of clients) c.close();
    assert.ok(answers.every((a) => a.type === 'ok'), JSON.stringify(answers.find((a) => a.type !== 'ok')));
    const ids = new Set(answers.map((a) => `m${a.message_id}`));
    await until(() => {
      const seen = new Set(forToken(apns, devices.frank).slice(n0).map((x) => x.headers['apns-collapse-id']));
      return [...ids].every((id) => seen.has(id));
    }, 20000, 'every notification of the burst');
    assert.equal(apns.goaways, 1);
    assert.ok(apns.connections >= 2, `connections: ${apns.connections}`);
  });

  test('the streams kept open follow the round trip: a provider 100 ms away gets several hundred, a near one few', async () => {
    // A backlog written straight into the outbox (what a burst of chats to
    // phones leaves), the sender woken by one chat. A settings change makes
    // the sender measure the route again.
    const token = hexToken();
    await phone('hank', 'ios', token);
    const backlog = async (n) => {
      const base = forToken(apns, token).length;
      apns.maxStreamsSeen = 0;
      execFileSync(STORE_TOOL, [srv.dataDir, 'push', 'hank', 'hank-phone', 'ios', token, String(n)], { encoding: 'utf8' });
      await chat('alice', 'carol', 'wake up');
      await until(() => forToken(apns, token).length - base >= n, 90000, `${n} notifications`);
      return apns.maxStreamsSeen;
    };
    await patch({ 'mobile.push_content': 'generic' });
    const near = await backlog(2000);
    apns.delayMs = 100;
    try {
      await patch({ 'mobile.push_content': 'id_only' });
      const far = await backlog(4000);
      assert.ok(far >= 300, `streams open at once 100 ms away: ${far} (near: ${near})`);
      assert.ok(near < far, `near ${near}, far ${far}`);
      const window = await metric(srv, admin, 'atrium_push_stream_window');
      assert.ok(window >= 300 && window <= 1000, `window ${window}`);
    } finally {
      apns.delayMs = 0;
    }
    const m = await metric(srv, admin, 'atrium_http2_closed_stream_resets_cancelled_total');
    assert.ok(m > 0, `resets of closed streams cancelled: ${m}`);
  });

  test('a burst of DeviceTokenNotForTopic stops APNs and warns, without pruning; a new topic resumes', async () => {
    await patch({ 'mobile.apns_topic': 'com.example.wrong' });
    const n0 = apns.answers.length;
    for (let i = 0; i < 4; i++) await chat('alice', 'gina', `wrong topic ${i}`).catch(() => {});
    await phone('gina');
    for (let i = 0; i < 4; i++) await chat('alice', 'gina', `wrong topic ${i}`);
    const st = await until(async () => {
      const j = (await srv.api('GET', '/api/v1/push/status', { token: admin })).json;
      return j.state === 'warning' && /DeviceTokenNotForTopic/.test(j.sentence) ? j : null;
    }, 10000, 'the warning');
    assert.match(st.sentence, /com\.example\.wrong/);
    const notForTopic = apns.answers.slice(n0).filter((a) => a.reason === 'DeviceTokenNotForTopic').length;
    assert.ok(notForTopic >= 3 && notForTopic <= 4, String(notForTopic));
    const pruned = st.pruned;
    await sleep(500);
    assert.equal(apns.answers.slice(n0).filter((a) => a.reason === 'DeviceTokenNotForTopic').length, notForTopic, 'kept sending');
    await patch({ 'mobile.apns_topic': TOPIC });
    await chat('alice', 'gina', 'right topic');
    await until(() => forToken(apns, devices.gina).some((x) => x.body && x.headers['apns-topic'] === TOPIC), 70000, 'a push after the fix');
    const j = (await srv.api('GET', '/api/v1/push/status', { token: admin })).json;
    assert.equal(j.pruned, pruned, 'tokens were pruned for a topic error');
    assert.notEqual(j.state, 'warning');
  });

  test('FCM: the OAuth2 token is fetched once and reused; UNREGISTERED prunes', async () => {
    await phone('hank', 'android');
    await chat('alice', 'hank', 'to android');
    const got = await until(() => forToken(fcm, devices.hank)[0], 10000, 'the FCM message');
    assert.equal(got.message.data.kind, 'message');
    assert.match(got.message.data.atrium_id, /^\d+$/);
    assert.equal(got.message.android.priority, 'HIGH');
    assert.match(got.message.android.ttl, /^\d+s$/);
    assert.ok(!got.message.notification, 'id_only sent a notification block');
    assert.ok(!JSON.stringify(got.message).includes('to android'));
    await chat('alice', 'hank', 'again');
    await until(() => forToken(fcm, devices.hank).length === 2, 10000, 'the second FCM message');
    assert.equal(fcm.tokenRequests, 1);
    fcm.unregistered.add(devices.hank);
    await chat('alice', 'hank', 'gone');
    await until(() => fcm.answers.some((a) => a.status === 404), 10000, 'UNREGISTERED');
    await until(async () => {
      const t = (await srv.api('GET', '/metrics', { token: admin })).text;
      return /reason="UNREGISTERED"\} 1/.test(t);
    }, 5000, 'the UNREGISTERED metric');
    const age = await metric(srv, admin, 'atrium_push_provider_token_age_seconds{provider="fcm"}');
    assert.ok(age >= 0 && age < 120, String(age));
  });

  test('the staged push test: each hop, and one sentence for the first that fails', async () => {
    let r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { provider: 'apns' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true, r.text);
    assert.deepEqual(r.json.stages.map((x) => x.stage), ['config', 'connect', 'tls', 'alpn', 'token', 'answer']);
    assert.ok(r.json.stages.every((x) => x.ok), r.text);
    r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { provider: 'fcm' } });
    assert.equal(r.json.ok, true, r.text);
    r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { provider: 'apns', token: devices.bob } });
    assert.equal(r.json.ok, true, r.text);
    assert.match(r.json.stages.at(-1).detail, /accepted the notification/);
    // A key id APNs does not know: the token stage fails, and says what to check.
    await patch({ 'mobile.apns_key_id': 'ZZZ999ZZZ9' });
    r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { provider: 'apns' } });
    assert.equal(r.json.ok, false, r.text);
    const failed = r.json.stages.find((x) => !x.ok);
    assert.equal(failed.stage, 'token');
    assert.match(r.json.message, /InvalidProviderToken.*mobile\.apns_key_id/);
    await patch({ 'mobile.apns_key_id': KEY_ID });
    for (const bad of [{ provider: 'webpush' }, { token: 'a b' }, { nope: 1 }, { user: '' }]) {
      r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: bad });
      assert.equal(r.status, 422, `${JSON.stringify(bad)}: ${r.text}`);
    }
    // The button: a real test notification to a user's phones.
    const n0 = forToken(apns, devices.bob).length;
    r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { user: 'bob' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.queued, 1, r.text);
    const t = await until(() => forToken(apns, devices.bob).slice(n0).find((x) => x.body.atrium.kind === 'test'), 10000, 'the test notification');
    assert.equal(t.body.aps.alert.title, 'Test notification');
    // atriumctl push test
    const c = await ctl(srv, ['push', 'test', '--provider', 'apns'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /APNs work/);
    assert.match(c.stdout, /alpn/);
    const cs = await ctl(srv, ['push', 'status'], { token: admin });
    assert.equal(cs.code, 0, show(cs));
    assert.match(cs.stdout, /sent/);
  });

  test('the Test push button under Mobile App shows every hop and the failing one', async () => {
    const browser = await launchBrowser();
    try {
      const page = await browser.page();
      await loginUi(page, srv);
      await page.locator('#push-test-button').scrollIntoViewIfNeeded();
      await page.selectOption('#push-test-provider', 'apns');
      await page.click('#push-test-button');
      await page.locator('#push-test-result.ok').waitFor({ timeout: 30000 });
      assert.match(await page.textContent('#push-test-message'), /Push notifications to APNs work/);
      const stages = await page.locator('#push-test-result li').evaluateAll((l) => l.map((x) => x.dataset.stage));
      assert.deepEqual(stages, ['config', 'connect', 'tls', 'alpn', 'token', 'answer']);
      // The saved key id APNs does not know: the token hop fails, with the API's sentence.
      await patch({ 'mobile.apns_key_id': 'ZZZ999ZZZ9' });
      await page.click('#push-test-button');
      await page.locator('#push-test-result.error').waitFor({ timeout: 30000 });
      assert.match(await page.textContent('#push-test-message'), /InvalidProviderToken.*mobile\.apns_key_id/);
      assert.equal(await page.locator('#push-test-result li.error').getAttribute('data-stage'), 'token');
      // A token with a space is refused by the server; the page says why.
      await page.fill('#push-test-token', 'a b');
      await page.click('#push-test-button');
      await page.waitForFunction(() => /could not run/.test(document.getElementById('push-test-message')?.textContent ?? ''));
      assert.match(await page.textContent('#push-test-message'), /token: Must be a device's push token/);
      assert.deepEqual(browser.errors, []);
    } finally {
      await patch({ 'mobile.apns_key_id': KEY_ID });
      await browser.close();
    }
  });

  test('gateway mode: the Matrix push gateway gets the devices; a rejected pushkey is pruned', async () => {
    await patch({ 'mobile.push_mode': 'gateway', 'mobile.push_gateway_url': gateway.url, 'mobile.push_gateway_app_id': 'com.example.atrium.' });
    let r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: {} });
    assert.equal(r.json.ok, true, r.text);
    assert.equal(r.json.provider, 'gateway');
    await chat('alice', 'bob', 'via the gateway');
    const n = await until(() => gateway.received.find((x) => x.devices[0].pushkey === devices.bob && x.event_id), 10000, 'the gateway notify');
    assert.equal(n.devices[0].app_id, 'com.example.atrium.ios');
    assert.equal(n.prio, 'high');
    assert.ok(!n.content && !n.sender, JSON.stringify(n));
    await phone('erin');
    gateway.rejected.add(devices.erin);
    const pruned0 = (await srv.api('GET', '/api/v1/push/status', { token: admin })).json.pruned;
    await chat('alice', 'erin', 'rejected');
    await until(async () => (await srv.api('GET', '/api/v1/push/status', { token: admin })).json.pruned === pruned0 + 1, 10000, 'the prune');
    r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'mobile.push_gateway_url': '' } });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.errors[0].key, 'mobile.push_gateway_url');
    await patch({ 'mobile.push_mode': 'direct' });
  });
});

/** A server with push on and APNs configured for `apns`; users imported. */
async function pushServer({ tls, apns, apnsKey, users, env = {}, dataDir }) {
  const srv = await startServer({
    dataDir,
    atlas: `<Domain>push.example</Domain><CABundle>${tls.caFile}</CABundle>`,
    env: { ATRIUM_PUSH_APNS_URL: apns.url, ...env },
  });
  const admin = await srv.login();
  if (users) {
    const r = await srv.api('POST', '/api/v1/users/import', { token: admin, body: users.map((name) => ({ name, password: PW })) });
    assert.equal(r.status, 200, r.text);
    const p = await srv.api('PATCH', '/api/v1/settings', {
      token: admin,
      body: {
        'mobile.push_enabled': true, 'mobile.apns_key_id': KEY_ID, 'mobile.apns_team_id': TEAM_ID,
        'mobile.apns_topic': TOPIC, 'mobile.apns_key': apnsKey.pem,
      },
    });
    assert.equal(p.status, 200, p.text);
  }
  return { srv, admin };
}

async function registerPhone(srv, name, token) {
  const t = await clientLogin(srv, name, PW, { id: `${name}-phone`, platform: 'ios' });
  const r = await srv.api('PUT', '/client/v1/device', { token: t, body: { push_token: token } });
  assert.equal(r.status, 200, r.text);
  return t;
}

async function sendOne(srv, from, to, text) {
  const c = await rtConnect(srv, await clientLogin(srv, from, PW));
  const ok = await c.request({ type: 'chat.send', to: `${to}@push.example`, text });
  c.close();
  assert.equal(ok.type, 'ok', JSON.stringify(ok));
  return ok.message_id;
}

const squidSkip = squidAvailable() ? false : 'squid is not installed (scripts/deps.sh test)';

describe('push notifications through squid', { skip: squidSkip, timeout: 240000 }, () => {
  const SQUID_USER = 'pushsvc';
  const SQUID_PW = 'Squid-Push-Secret-91ab';
  let tls, apns, apnsKey, squid, srv, admin, tokenServer, fcm, account;
  const bobToken = hexToken();
  const androidToken = `fcm-${crypto.randomBytes(80).toString('hex')}`;

  before(async () => {
    tls = await makeTlsFiles();
    apnsKey = makeApnsKey();
    apns = await startApns({ cert: tls.cert, key: tls.key, keyId: KEY_ID, teamId: TEAM_ID, topic: TOPIC, publicKey: apnsKey.publicKey });
    // The OAuth2 token endpoint on a port of its own, to see its tunnel in squid's log.
    tokenServer = await startFcm({ cert: tls.cert, key: tls.key });
    fcm = await startFcm({ cert: tls.cert, key: tls.key });
    account = makeServiceAccount(tokenServer.tokenUri);
    tokenServer.account = fcm.account = account;
    fcm.tokensIssued = tokenServer.tokensIssued;
    squid = await startSquid({ auth: 'basic', users: { [SQUID_USER]: SQUID_PW } });
    ({ srv, admin } = await pushServer({ tls, apns, apnsKey, users: ['alice', 'bob', 'carl'], env: { ATRIUM_PUSH_FCM_URL: fcm.url } }));
    const r = await srv.api('PATCH', '/api/v1/settings', {
      token: admin,
      body: {
        'mobile.push_use_proxy': true, 'proxy.enabled': true, 'proxy.host': '127.0.0.1', 'proxy.port': squid.port,
        'proxy.auth_required': true, 'proxy.auth_method': 'basic', 'proxy.username': SQUID_USER, 'proxy.password': SQUID_PW,
        'mobile.fcm_service_account': account.text,
      },
    });
    assert.equal(r.status, 200, r.text);
    await registerPhone(srv, 'bob', bobToken);
    const t = await clientLogin(srv, 'carl', PW, { id: 'carl-phone', platform: 'android' });
    assert.equal((await srv.api('PUT', '/client/v1/device', { token: t, body: { push_token: androidToken } })).status, 200);
  });

  after(async () => {
    await srv?.stop();
    await squid?.stop();
    await apns?.close();
    await fcm?.close();
    await tokenServer?.close();
    await tls?.remove();
  });

  test('every provider request, the OAuth2 token fetch too, goes through the tunnel, with Basic auth', async () => {
    await sendOne(srv, 'alice', 'bob', 'via squid');
    await until(() => apns.received.find((x) => x.token === bobToken), 15000, 'the push via squid');
    await sendOne(srv, 'alice', 'carl', 'via squid to android');
    await until(() => fcm.received.find((x) => x.token === androidToken), 15000, 'the FCM message via squid');
    // squid logs a tunnel when it closes: the sender keeps its connections, so end them.
    await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'mobile.push_use_proxy': false } });
    for (const st of [apns, fcm, tokenServer]) st.dropConnections();
    const log = await squid.waitAccessLog(new RegExp(`TCP_TUNNEL/200 .*CONNECT 127\\.0\\.0\\.1:${tokenServer.port} ${SQUID_USER}`), 10000);
    assert.match(log, new RegExp(`TCP_TUNNEL/200 .*CONNECT 127\\.0\\.0\\.1:${tokenServer.port} ${SQUID_USER}`), log);
    await squid.waitAccessLog(new RegExp(`CONNECT 127\\.0\\.0\\.1:${apns.port} ${SQUID_USER}`), 10000);
    assert.match(squid.accessLog(), new RegExp(`TCP_TUNNEL/200 .*CONNECT 127\\.0\\.0\\.1:${apns.port} ${SQUID_USER}`));
    assert.ok(!squid.accessLog().includes(SQUID_PW));
    assert.ok(!srv.output().includes(SQUID_PW), 'the proxy password is in the log');
  });

  test('the proxy switch applies to the next request; the staged test names the proxy hop', async () => {
    const before = squid.accessLog().split('\n').filter((l) => l.includes(`:${apns.port}`)).length;
    const n0 = apns.received.length;
    await sendOne(srv, 'alice', 'bob', 'direct now');
    await until(() => apns.received.length > n0, 10000, 'the direct push');
    apns.dropConnections();
    await sleep(500);
    assert.equal(squid.accessLog().split('\n').filter((l) => l.includes(`:${apns.port}`)).length, before, 'went through squid with the proxy off');
    let r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'mobile.push_use_proxy': true } });
    assert.equal(r.status, 200, r.text);
    r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { provider: 'apns' } });
    assert.equal(r.json.ok, true, r.text);
    assert.deepEqual(r.json.stages.map((x) => x.stage), ['config', 'proxy', 'connect', 'tls', 'alpn', 'token', 'answer']);
    // Wrong proxy password: the CONNECT hop fails with 407 and says so.
    await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'proxy.password': 'wrong-one' } });
    r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { provider: 'apns' } });
    assert.equal(r.json.ok, false, r.text);
    assert.equal(r.json.stages.find((x) => !x.ok).stage, 'connect');
    assert.match(r.json.message, /407/);
    await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'proxy.password': SQUID_PW } });
  });

  test('squid answers 503 to CONNECT while APNs is down; the notification arrives once it is back', async () => {
    const port = apns.port;
    await apns.close();
    const t0 = Date.now();
    await sendOne(srv, 'alice', 'bob', 'during the outage');
    const st = await until(async () => {
      const j = (await srv.api('GET', '/api/v1/push/status', { token: admin })).json;
      return /CONNECT answered 503/.test(j.last_error) ? j : null;
    }, 15000, 'the 503 in the status');
    assert.match(st.last_error, /apns/);
    await squid.waitAccessLog(new RegExp(`/503 .*CONNECT 127\\.0\\.0\\.1:${port}`), 5000);
    assert.match(squid.accessLog(), new RegExp(`/503 .*CONNECT 127\\.0\\.0\\.1:${port}`));
    apns = await startApns({ cert: tls.cert, key: tls.key, keyId: KEY_ID, teamId: TEAM_ID, topic: TOPIC, publicKey: apnsKey.publicKey, port });
    const got = await until(() => apns.received.find((x) => x.token === bobToken), 60000, 'the push after the outage');
    assert.ok(got.at > t0);
    const j = (await srv.api('GET', '/api/v1/push/status', { token: admin })).json;
    assert.ok(j.retried >= 1, JSON.stringify(j));
    assert.equal(j.outbox.pending, 0, JSON.stringify(j));
  });
});

describe('push notifications: HTTP/1.1 in front of APNs', { timeout: 60000 }, () => {
  let tls, apns, apnsKey, srv, admin;
  before(async () => {
    tls = await makeTlsFiles();
    apnsKey = makeApnsKey();
    apns = await startApns({ cert: tls.cert, key: tls.key, keyId: KEY_ID, teamId: TEAM_ID, topic: TOPIC, publicKey: apnsKey.publicKey, h1only: true });
    ({ srv, admin } = await pushServer({ tls, apns, apnsKey, users: ['alice', 'bob'] }));
    await registerPhone(srv, 'bob', hexToken());
  });
  after(async () => {
    await srv?.stop();
    await apns?.close();
    await tls?.remove();
  });

  test('a silent fallback to HTTP/1.1 is an error with a sentence, and the notification is kept', async () => {
    await sendOne(srv, 'alice', 'bob', 'h1');
    const st = await until(async () => {
      const j = (await srv.api('GET', '/api/v1/push/status', { token: admin })).json;
      return /HTTP\/1\.1/.test(j.last_error) ? j : null;
    }, 10000, 'the HTTP/1.1 error');
    assert.match(st.last_error, /ALPN h2/);
    assert.equal(st.outbox.pending, 1, JSON.stringify(st));
    const r = await srv.api('POST', '/api/v1/push/test', { token: admin, body: { provider: 'apns' } });
    assert.equal(r.json.ok, false, r.text);
    assert.equal(r.json.stages.find((x) => !x.ok).stage, 'alpn');
  });
});

describe('push notifications survive kill -9 in the middle of a burst', { timeout: 240000 }, () => {
  const N = 2000;
  const SENDERS = 20; // connections: two per user, each under 30 chats a second
  let tls, apns, apnsKey, srv, srv2, admin;
  const bobToken = hexToken();
  const senders = Array.from({ length: SENDERS / 2 }, (_, i) => `s${String(i).padStart(2, '0')}`);

  before(async () => {
    tls = await makeTlsFiles();
    apnsKey = makeApnsKey();
    apns = await startApns({ cert: tls.cert, key: tls.key, keyId: KEY_ID, teamId: TEAM_ID, topic: TOPIC, publicKey: apnsKey.publicKey });
    ({ srv, admin } = await pushServer({ tls, apns, apnsKey, users: ['bob', ...senders], keep: true }));
    await registerPhone(srv, 'bob', bobToken);
  });
  after(async () => {
    await srv?.kill();
    await srv2?.stop();
    await apns?.close();
    await tls?.remove();
  });

  test(`${N} notifications: each delivered at least once after a restart`, async () => {
    // Slow answers keep many streams in flight when the kill comes.
    apns.delayMs = 30;
    const clients = [];
    for (const n of senders) {
      const t = await clientLogin(srv, n, PW);
      clients.push(await rtConnect(srv, t), await rtConnect(srv, t));
    }
    const per = N / SENDERS;
    const ids = [];
    // 25 a second per connection: under the real-time core's 30.
    await Promise.all(clients.map(async (c, k) => {
      for (let from = 0; from < per; from += 25) {
        const t0 = Date.now(), to = Math.min(per, from + 25);
        for (let i = from; i < to; i++) c.send({ type: 'chat.send', id: `k${k}-${i}`, to: 'bob@push.example', text: `burst ${k}/${i}` });
        for (let i = from; i < to; i++) {
          const a = await c.waitFor((f) => (f.type === 'ok' || f.type === 'error') && f.id === `k${k}-${i}`, 60000, `answer k${k}-${i}`);
          assert.equal(a.type, 'ok', JSON.stringify(a));
          ids.push(`m${a.message_id}`);
        }
        if (to < per) await sleep(Math.max(0, 1050 - (Date.now() - t0)));
      }
    }));
    for (const c of clients) c.close();
    assert.equal(ids.length, N);
    await until(() => apns.received.length >= 200, 30000, 'the first 200 pushes');
    const atKill = apns.received.length;
    assert.equal(await srv.kill(), 'SIGKILL');
    assert.ok(atKill < N, `all ${atKill} were sent before the kill; nothing was tested`);
    apns.delayMs = 0;
    srv2 = await startServer({
      dataDir: srv.dataDir,
      atlas: `<Domain>push.example</Domain><CABundle>${tls.caFile}</CABundle>`,
      env: { ATRIUM_PUSH_APNS_URL: apns.url },
    });
    const want = new Set(ids);
    await until(() => {
      const seen = new Set(apns.received.map((x) => x.headers['apns-collapse-id']));
      return [...want].every((id) => seen.has(id));
    }, 120000, `all ${N} notifications`);
    const counts = new Map();
    for (const x of apns.received) counts.set(x.headers['apns-collapse-id'], (counts.get(x.headers['apns-collapse-id']) ?? 0) + 1);
    const dupes = [...counts.values()].reduce((a, n) => a + n - 1, 0);
    // A repeat carries the same apns-id as the first: the phone shows one.
    const byCollapse = new Map();
    for (const x of apns.received) {
      const k = x.headers['apns-collapse-id'];
      if (byCollapse.has(k)) assert.equal(byCollapse.get(k), x.headers['apns-id'], `${k} changed its apns-id`);
      byCollapse.set(k, x.headers['apns-id']);
    }
    // At most what was in flight at the kill (the sender keeps up to 1,000 streams).
    assert.ok(dupes <= 1000, `${dupes} duplicates`);
    console.log(`# kill -9 after ${atKill} of ${N} pushes; ${dupes} sent twice`);
  });
});
