// atriumctl against a real atriumd: every command, its output and its exit
// codes (docs/cli.md), and that secrets and tokens never reach the terminal.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { startServer, ctl, show, freePort, CONTRACT_KEYS, ATRIUMCTL } from './harness.mjs';

const SECRET = 'Cli-Pr0xy-S3cret-Walrus-5521';

let srv;
let token;
let tmp;

before(async () => {
  srv = await startServer();
  token = await srv.login();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atriumctl-it-'));
});
after(async () => {
  if (srv) await srv.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

/** A fresh, empty XDG_CONFIG_HOME so that no saved login leaks between tests. */
async function freshConfig() {
  return fsp.mkdtemp(path.join(tmp, 'cfg-'));
}
/** atriumctl with the test token and an empty config directory. */
async function run(args, opts = {}) {
  const env = { XDG_CONFIG_HOME: await freshConfig(), ...(opts.env ?? {}) };
  return ctl(srv, args, { token, ...opts, env });
}
async function settings() {
  const r = await srv.api('GET', '/api/v1/settings', { token });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

describe('login and the saved session', () => {
  test('login --password-file saves url and token (0600 in 0700), later commands use it', async () => {
    const cfg = await freshConfig();
    const pw = path.join(tmp, 'pw.txt');
    await fsp.writeFile(pw, `${srv.adminPassword}\n`);
    const env = { XDG_CONFIG_HOME: cfg, ATRIUM_TOKEN: '' };
    const r = await ctl(srv, ['login', '--password-file', pw], { env });
    assert.equal(r.code, 0, show(r));

    const file = path.join(cfg, 'atrium', 'atriumctl.json');
    const saved = JSON.parse(await fsp.readFile(file, 'utf8'));
    assert.equal(saved.url, srv.url);
    assert.equal(typeof saved.token, 'string');
    assert.ok(saved.token.length > 0);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.ok(!r.stdout.includes(saved.token) && !r.stderr.includes(saved.token), 'token printed');
    assert.ok(!r.stdout.includes(srv.adminPassword) && !r.stderr.includes(srv.adminPassword));

    // No --token and no ATRIUM_TOKEN: the saved token is used.
    const g = await ctl(srv, ['get', 'proxy.port'], { env });
    assert.equal(g.code, 0, show(g));
    assert.match(g.stdout, /^proxy\.port = \d+ {2}\((default|store|env)\)$/m);

    // --verbose shows requests, never the token.
    const v = await ctl(srv, ['--verbose', 'get', 'proxy.port'], { env });
    assert.equal(v.code, 0, show(v));
    assert.match(v.stderr, /GET \/api\/v1\/settings/);
    assert.ok(!v.stderr.includes(saved.token) && !v.stdout.includes(saved.token));

    // The saved token is for that server only: another URL does not get it.
    const other = await ctl(srv, ['--url', `http://127.0.0.1:${await freePort()}`, 'get'], { env });
    assert.equal(other.code, 4, show(other));

    // logout ends the session and forgets the token.
    const out = await ctl(srv, ['logout'], { env });
    assert.equal(out.code, 0, show(out));
    const after = JSON.parse(await fsp.readFile(file, 'utf8'));
    assert.equal(after.token, undefined);
    assert.equal(after.url, srv.url);
    const dead = await srv.api('GET', '/api/v1/settings', { token: saved.token });
    assert.equal(dead.status, 401);
    const again = await ctl(srv, ['get'], { env });
    assert.equal(again.code, 4, show(again));
  });

  test('login with ATRIUM_PASSWORD works; a wrong password exits 4 and saves nothing', async () => {
    const cfg = await freshConfig();
    const bad = await ctl(srv, ['login'], {
      env: { XDG_CONFIG_HOME: cfg, ATRIUM_PASSWORD: 'wrong-password-123' },
    });
    assert.equal(bad.code, 4, show(bad));
    assert.match(bad.stderr, /^error: /m);
    assert.ok(!fs.existsSync(path.join(cfg, 'atrium', 'atriumctl.json')));

    const good = await ctl(srv, ['login', '--user', 'admin'], {
      env: { XDG_CONFIG_HOME: cfg, ATRIUM_PASSWORD: srv.adminPassword },
    });
    assert.equal(good.code, 0, show(good));
    assert.ok(fs.existsSync(path.join(cfg, 'atrium', 'atriumctl.json')));
  });
  test('logout with ATRIUM_TOKEN ends that session and keeps the saved one', async () => {
    const cfg = await freshConfig();
    const env = { XDG_CONFIG_HOME: cfg, ATRIUM_PASSWORD: srv.adminPassword, ATRIUM_TOKEN: '' };
    assert.equal((await ctl(srv, ['login'], { env })).code, 0);
    const file = path.join(cfg, 'atrium', 'atriumctl.json');
    const saved = JSON.parse(await fsp.readFile(file, 'utf8'));
    const other = await srv.login();
    const r = await ctl(srv, ['logout'], { env: { ...env, ATRIUM_TOKEN: other } });
    assert.equal(r.code, 0, show(r));
    assert.equal((await srv.api('GET', '/api/v1/settings', { token: other })).status, 401);
    assert.equal(JSON.parse(await fsp.readFile(file, 'utf8')).token, saved.token);
    assert.equal((await srv.api('GET', '/api/v1/settings', { token: saved.token })).status, 200);
  });
});

describe('get', () => {
  test('all settings: one line per key with its source', async () => {
    const r = await run(['get']);
    assert.equal(r.code, 0, show(r));
    for (const key of Object.keys(CONTRACT_KEYS)) {
      const re = new RegExp(`^${key.replace(/\./g, '\\.')} = .*  \\((default|install|store|env)\\)$`, 'm');
      assert.match(r.stdout, re, `${key} missing:\n${r.stdout}`);
    }
    // Secrets are only "(set)" / "(not set)"; blank-means-default shows the effective value.
    assert.match(r.stdout, /^ad\.bind_password = \((not )?set\)/m);
    assert.match(r.stdout, /^um\.url = \(blank\) → \S+\/umsettings\/ {2}\(default\)$/m);
  });

  test('one key', async () => {
    const doc = await settings();
    const r = await run(['get', 'proxy.auth_method']);
    assert.equal(r.code, 0, show(r));
    const e = doc.settings['proxy.auth_method'];
    assert.equal(r.stdout, `proxy.auth_method = ${e.value}  (${e.source})\n`);
  });

  test('one section', async () => {
    const r = await run(['get', 'proxy']);
    assert.equal(r.code, 0, show(r));
    const lines = r.stdout.split('\n').filter((l) => l && !l.startsWith(' '));
    const expected = Object.keys(CONTRACT_KEYS).filter((k) => k.startsWith('proxy.'));
    assert.deepEqual(lines.map((l) => l.split(' = ')[0]).sort(), expected.sort());
  });

  test('--json: the server document; for a key, its object', async () => {
    const doc = await settings();
    const all = await run(['get', '--json']);
    assert.equal(all.code, 0, show(all));
    assert.deepEqual(JSON.parse(all.stdout), doc);
    const one = await run(['--json', 'get', 'proxy.port']);
    assert.equal(one.code, 0, show(one));
    assert.deepEqual(JSON.parse(one.stdout), doc.settings['proxy.port']);
    const sec = await run(['get', 'proxy', '--json']);
    assert.deepEqual(Object.keys(JSON.parse(sec.stdout).settings).sort(),
      Object.keys(doc.settings).filter((k) => k.startsWith('proxy.')).sort());
  });

  test('an unknown key or section is an error', async () => {
    const r = await run(['get', 'no.such.key']);
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /no\.such\.key/);
    assert.equal(r.stdout, '');
  });
});

describe('set', () => {
  test('several keys in one atomic change: one version bump', async () => {
    const before = await settings();
    const r = await run(['set', 'proxy.host=proxy.example.com', 'proxy.port=3128',
      'proxy.bypass=10.0.0.0/8, *.example.com', 'proxy.enabled=yes']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^proxy\.host = proxy\.example\.com {2}\(store\)$/m);
    assert.match(r.stdout, /^proxy\.port = 3128 {2}\(store\)$/m);
    const doc = await settings();
    assert.equal(doc.version, before.version + 1);
    assert.equal(doc.settings['proxy.host'].value, 'proxy.example.com');
    assert.equal(doc.settings['proxy.port'].value, 3128);
    assert.equal(doc.settings['proxy.enabled'].value, true);
    assert.deepEqual(doc.settings['proxy.bypass'].value, ['10.0.0.0/8', '*.example.com']);
  });

  test('one bad value: exit 1, the server\'s sentence, nothing changed', async () => {
    const before = await settings();
    const r = await run(['set', 'login.publish_address=true', 'proxy.port=70000']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^error: .+/m);
    assert.match(r.stderr, /^ {2}proxy\.port: .+/m);
    assert.equal(r.stdout, '');
    assert.deepEqual(await settings(), before);
  });

  test('a yes/no value atriumctl cannot read: what the CLI takes, not JSON', async () => {
    const before = await settings();
    const r = await run(['set', 'proxy.enabled=maybe']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^ {2}proxy\.enabled: 'maybe' is not a yes\/no value; atriumctl takes true\/false, yes\/no, on\/off or 1\/0\.$/m);
    assert.doesNotMatch(r.stderr, /JSON|string/);
    assert.deepEqual(await settings(), before);
    for (const v of ['Yes', 'off', '1', 'FALSE']) {
      const ok = await run(['validate', `proxy.enabled=${v}`]);
      assert.equal(ok.code, 0, show(ok));
    }
  });

  test('a value of the wrong kind is sent as typed, so the server explains it', async () => {
    const before = await settings();
    const r = await run(['set', 'proxy.port=abc']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^ {2}proxy\.port: .+/m);
    assert.deepEqual(await settings(), before);
  });

  test('an unknown key: the server names it', async () => {
    const r = await run(['set', 'no.such.key=1']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /no\.such\.key/);
    // The command that lists them, not the API call.
    assert.match(r.stderr, /'atriumctl schema' lists them/);
    assert.doesNotMatch(r.stderr, /GET \/api/);
  });

  test('a URL that is not one is called not a URL', async () => {
    const r = await run(['set', 'um.url=not a url']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /um\.url: Is not an absolute URL; it must start with http:\/\/ or https:\/\/, such as https:\/\/atrium\.example\.com\/\./);
    assert.doesNotMatch(r.stderr, /%20/);
  });

  test('domain.name is changed only by its operation: exit 5', async () => {
    const before = await settings();
    const r = await run(['set', 'domain.name=other.example.com']);
    assert.equal(r.code, 5, show(r));
    assert.match(r.stderr, /^error: /m);
    assert.deepEqual(await settings(), before);
  });

  test('--if-match with a stale version: exit 5; with the current one: 0', async () => {
    const before = await settings();
    const stale = await run(['set', 'login.publish_address=true', '--if-match',
      String(before.version - 1)]);
    assert.equal(stale.code, 5, show(stale));
    assert.deepEqual(await settings(), before);
    const ok = await run(['set', '--if-match', String(before.version), 'login.publish_address=on']);
    assert.equal(ok.code, 0, show(ok));
    assert.equal((await settings()).settings['login.publish_address'].value, true);
  });

  test('a secret from stdin is stored and never echoed', async () => {
    const r = await run(['set', 'proxy.password=-'], { input: `${SECRET}\n` });
    assert.equal(r.code, 0, show(r));
    assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET), show(r));
    assert.match(r.stdout, /^proxy\.password = \(set\)/m);
    const doc = await settings();
    assert.deepEqual(doc.settings['proxy.password'].value, { set: true });
    assert.ok(!JSON.stringify(doc).includes(SECRET));
    const g = await run(['get', 'proxy']);
    assert.ok(!g.stdout.includes(SECRET));
    assert.match(g.stdout, /^proxy\.password = \(set\)/m);
  });

  test('qos.policies takes JSON inline or from @FILE', async () => {
    const policies = [{
      name: 'CLI test', dscp: 46, max_rate_mbps: 10, url: 'https://media.example.com/*',
      include_subdirectories: true, any_destination: false,
    }];
    const file = path.join(tmp, 'qos.json');
    await fsp.writeFile(file, JSON.stringify(policies));
    const r = await run(['set', `qos.policies=@${file}`]);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual((await settings()).settings['qos.policies'].value, policies);

    const bad = await run(['set', 'qos.policies=not json']);
    assert.equal(bad.code, 2, show(bad));
    const badDscp = await run(['set', `qos.policies=${JSON.stringify([{ ...policies[0], dscp: 64 }])}`]);
    assert.equal(badDscp.code, 1, show(badDscp));
    assert.match(badDscp.stderr, /qos\.policies/);
  });

  test('--json prints the server\'s document', async () => {
    const r = await run(['--json', 'set', 'mobile.push_enabled=false']);
    assert.equal(r.code, 0, show(r));
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.settings['mobile.push_enabled'].value, false);
    const bad = await run(['--json', 'set', 'proxy.port=0']);
    assert.equal(bad.code, 1, show(bad));
    assert.equal(JSON.parse(bad.stdout).status, 422);
  });
});

describe('validate', () => {
  test('a good value: "valid" (and its warning), nothing stored', async () => {
    const before = await settings();
    const r = await run(['validate', 'meeting.url=http://meet.example.com/web/']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^valid$/m);
    assert.match(r.stdout, /warning/);
    assert.deepEqual(await settings(), before);
  });

  test('a bad value: exit 1 and the key', async () => {
    const r = await run(['validate', 'mobile.app_url=http://m.example.com/']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^ {2}mobile\.app_url: .+/m);
  });
});

describe('export and import', () => {
  test('export -o writes a 0600 file that import restores', async () => {
    const file = path.join(tmp, 'export.json');
    const e = await run(['export', '-o', file]);
    assert.equal(e.code, 0, show(e));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const exported = JSON.parse(await fsp.readFile(file, 'utf8'));
    assert.ok(exported.settings && typeof exported.settings === 'object');
    assert.ok(!(await fsp.readFile(file, 'utf8')).includes(SECRET));

    // stdout export is the same document.
    const s = await run(['export']);
    assert.equal(s.code, 0, show(s));
    assert.deepEqual(JSON.parse(s.stdout).settings, exported.settings);

    const original = (await settings()).settings['proxy.username'].value;
    const ch = await run(['set', 'proxy.username=someone-else']);
    assert.equal(ch.code, 0, show(ch));
    const i = await run(['import', file]);
    assert.equal(i.code, 0, show(i));
    assert.equal((await settings()).settings['proxy.username'].value, original);

    // From stdin as well.
    const i2 = await run(['import', '-'], { input: await fsp.readFile(file, 'utf8') });
    assert.equal(i2.code, 0, show(i2));
  });

  test('import of a document with one bad value: exit 1, nothing imported', async () => {
    const s = await run(['export']);
    const doc = JSON.parse(s.stdout);
    doc.settings['proxy.username'] = 'would-be-imported';
    doc.settings['proxy.port'] = 99999;
    const file = path.join(tmp, 'bad-import.json');
    await fsp.writeFile(file, JSON.stringify(doc));
    const before = await settings();
    const r = await run(['import', file]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /proxy\.port/);
    assert.deepEqual(await settings(), before);
  });

  test('import of a missing file is a usage error', async () => {
    const r = await run(['import', path.join(tmp, 'does-not-exist.json')]);
    assert.equal(r.code, 2, show(r));
  });
});

describe('audit and schema', () => {
  test('audit shows the changes, newest first', async () => {
    const set = await run(['set', 'proxy.username=audit-visible']);
    assert.equal(set.code, 0, show(set));
    const r = await run(['audit', '--limit', '5']);
    assert.equal(r.code, 0, show(r));
    const lines = r.stdout.split('\n');
    assert.match(lines[0], /^TIME +ACTOR +ACTION +KEY +CHANGE$/);
    assert.match(lines[1], /proxy\.username .*→ "?audit-visible"?$/);
    assert.match(lines[1], /admin/);
    assert.ok(!r.stdout.includes(SECRET));

    const j = await run(['audit', '--json', '--limit', '2', '--offset', '0']);
    assert.equal(j.code, 0, show(j));
    const page = JSON.parse(j.stdout);
    assert.ok(Array.isArray(page.entries) && page.entries.length <= 2);
  });

  test('schema lists every key with type and help', async () => {
    const r = await run(['schema']);
    assert.equal(r.code, 0, show(r));
    for (const [key, type] of Object.entries(CONTRACT_KEYS)) {
      assert.match(r.stdout, new RegExp(`^ {2}${key.replace(/\./g, '\\.')} {2}${type}\\b`, 'm'));
    }
    const p = await run(['schema', 'proxy.auth_method']);
    assert.match(p.stdout, /basic\|digest\|ntlm\|negotiate/);
  });
});

describe('exit codes', () => {
  test('unreachable server: 3', async () => {
    const port = await freePort();
    const r = await ctl({ url: `http://127.0.0.1:${port}` }, ['get'], {
      token, env: { XDG_CONFIG_HOME: await freshConfig() },
    });
    assert.equal(r.code, 3, show(r));
    assert.match(r.stderr, /^error: cannot reach/m);
  });

  test('users delete of no such user: exit 1, pointing at users list', async () => {
    const r = await run(['users', 'delete', 'nosuch']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /'atriumctl users list' lists them/);
    assert.doesNotMatch(r.stderr, /GET \/api\/v1\/users/);
    // The API itself still names its own call.
    const a = await srv.api('DELETE', '/api/v1/users/nosuch', { token });
    assert.equal(a.status, 404);
    assert.match(a.json.detail, /GET \/api\/v1\/users lists them/);
  });

  test('no token: 4; a bad token: 4', async () => {
    const none = await run(['get'], { token: '' });
    assert.equal(none.code, 4, show(none));
    assert.match(none.stderr, /login/);
    const bad = await run(['get'], { token: 'not-a-valid-token' });
    assert.equal(bad.code, 4, show(bad));
    assert.match(bad.stderr, /^error: /m);
  });

  test('bad usage: 2 and the usage', async () => {
    for (const args of [[], ['frobnicate'], ['set'], ['set', 'novalue'], ['get', 'a', 'b'],
      ['audit', '--limit', 'ten'], ['set', 'a=1', '--if-match', 'x'], ['--no-such-option']]) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, /usage: atriumctl/, args.join(' '));
    }
  });

  test('every command shares the option, login and error handling', async () => {
    // One implementation (src/ctl/session.c, ctl_next_option): the same words
    // and exit codes whichever command meets the problem.
    for (const args of [['users', 'list', '--limit'], ['reverse-proxy', 'nginx', '--listen'],
      ['discover', '--port'], ['audit', '--limit']]) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, new RegExp(`^error: ${args[args.length - 1]} needs a value$`, 'm'));
      assert.match(r.stderr, new RegExp(`^usage: atriumctl \\[OPTIONS\\] ${args[0]} `, 'm'));
    }
    for (const args of [['users', 'list'], ['proxy', 'test'], ['privacy', 'show'],
      ['federation', 'contacts'], ['get']]) {
      const r = await run(args, { token: '' });
      assert.equal(r.code, 4, `${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, /^error: not logged in to http:\/\/127\.0\.0\.1:\d+: run 'atriumctl login'/m);
    }
    // Arguments are checked before the login, as for set.
    const bad = await run(['proxy', 'test', 'novalue'], { token: '' });
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /'novalue' is not KEY=VALUE/);
    // A 404 (no such user) is a refusal, exit 1, with the server's sentence; --json adds the document.
    const missing = await run(['--json', 'users', 'show', 'nobody-here']);
    assert.equal(missing.code, 1, show(missing));
    assert.equal(JSON.parse(missing.stdout).status, 404);
    assert.match(missing.stderr, /^error: Not found: /m);
  });

  test('docs/cli.md has a section for every command', async () => {
    const h = await run(['--help']);
    const names = [...h.stdout.matchAll(/^ {2}([a-z][a-z-]*)(?: |$)/gm)].map((m) => m[1]);
    assert.ok(names.length >= 17, h.stdout);
    const doc = await fsp.readFile(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    for (const name of names) {
      assert.match(doc, new RegExp(`^### \`${name}[ \`]`, 'm'), `docs/cli.md: no section for ${name}`);
    }
  });

  test('--help and --version: 0', async () => {
    const h = await run(['--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /Exit codes:/);
    const c = await run(['set', '--help']);
    assert.equal(c.code, 0);
    assert.match(c.stdout, /usage: atriumctl \[OPTIONS\] set/);
    const v = await run(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^atriumctl \d+\.\d+/);
  });
});

const hasScript = spawnSync('script', ['--version']).status === 0;
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

describe('terminal', () => {
  test('login asks for the password on the terminal without echo', { skip: !hasScript }, async () => {
    const cfg = await freshConfig();
    // script(1) gives atriumctl a pseudo-terminal; the password is typed once the prompt is up.
    const p = spawn('script', ['-qec', `${ATRIUMCTL} login`, '/dev/null'], {
      env: { ...process.env, ATRIUM_URL: srv.url, XDG_CONFIG_HOME: cfg, ATRIUM_PASSWORD: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let typed = false;
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => {
      out += d;
      if (!typed && out.includes('Password:')) {
        typed = true;
        setTimeout(() => p.stdin.write(`${srv.adminPassword}\r`), 200);
      }
    });
    const t = setTimeout(() => p.kill('SIGKILL'), 15000);
    const code = await new Promise((r) => p.on('close', r));
    clearTimeout(t);
    assert.equal(code, 0, out);
    assert.ok(!out.includes(srv.adminPassword), `password echoed: ${out}`);
    assert.ok(fs.existsSync(path.join(cfg, 'atrium', 'atriumctl.json')));
  });
});

/** A stand-in server for what atriumd never does (redirects, HTML errors, TLS). */
async function stub(handler, tls) {
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}
const settingsDoc = { version: 1, settings: { 'proxy.port': { value: 8080, source: 'default' } } };
function answerSettings(req, res) {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(settingsDoc));
}

describe('transport', () => {
  test('redirects are not followed (the token stays here): exit 6', async () => {
    let followed = false;
    const s = await stub((req, res) => {
      if (req.url.startsWith('/elsewhere')) { followed = true; answerSettings(req, res); return; }
      res.writeHead(302, { location: '/elsewhere' });
      res.end();
    });
    try {
      const env = { XDG_CONFIG_HOME: await freshConfig() };
      const r = await ctl(s, ['get'], { token: 'stub-token', env });
      assert.equal(r.code, 6, show(r));
      assert.ok(!followed);
      assert.match(r.stderr, /302/);
    } finally { await s.close(); }
  });

  test('a 5xx without a problem document: exit 6 and a sentence', async () => {
    const s = await stub((req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    });
    try {
      const env = { XDG_CONFIG_HOME: await freshConfig() };
      const r = await ctl(s, ['get'], { token: 'stub-token', env });
      assert.equal(r.code, 6, show(r));
      assert.match(r.stderr, /^error: the server answered 502/m);
    } finally { await s.close(); }
  });

  test('the bearer token is sent, and only in the Authorization header', async () => {
    let auth;
    const s = await stub((req, res) => {
      auth = req.headers.authorization;
      answerSettings(req, res);
    });
    try {
      const env = { XDG_CONFIG_HOME: await freshConfig() };
      const r = await ctl(s, ['get', 'proxy.port'], { token: 'stub-token-123', env });
      assert.equal(r.code, 0, show(r));
      assert.equal(auth, 'Bearer stub-token-123');
      assert.equal(r.stdout, 'proxy.port = 8080  (default)\n');
    } finally { await s.close(); }
  });

  test('TLS: an unknown CA is refused (exit 3); --cacert trusts it', { skip: !hasOpenssl }, async () => {
    const dir = await fsp.mkdtemp(path.join(tmp, 'tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const g = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
    assert.equal(g.status, 0, g.stderr);
    const s = await stub(answerSettings, { cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
    try {
      const env = { XDG_CONFIG_HOME: await freshConfig() };
      const refused = await ctl(s, ['get'], { token: 'stub-token', env });
      assert.equal(refused.code, 3, show(refused));
      assert.match(refused.stderr, /^error: cannot reach/m);
      const trusted = await ctl(s, ['--cacert', cert, 'get'], { token: 'stub-token', env });
      assert.equal(trusted.code, 0, show(trusted));
      assert.match(trusted.stdout, /^proxy\.port = 8080/m);
    } finally { await s.close(); }
  });
});
