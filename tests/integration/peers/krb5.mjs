// A real MIT krb5-kdc in a temporary realm for the automatic-login tests:
// krb5.conf and kdc.conf in a temporary directory (KRB5_CONFIG,
// KRB5_KDC_PROFILE), a database made with kdb5_util, principals and a
// service keytab made with kadmin.local, krb5kdc in the foreground on a free
// loopback port, kinit with a password for the clients. Host names are not
// canonicalised (rdns = false, dns_canonicalize_hostname = false), so the
// service principal is HTTP/localhost. Every wait is bounded.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, sleep } from '../harness.mjs';

export const REALM = 'ATRIUM.TEST';
const KDC = process.env.KRB5KDC || '/usr/sbin/krb5kdc';

export function krb5Available() {
  return ['/usr/sbin/krb5kdc', '/usr/sbin/kdb5_util', '/usr/sbin/kadmin.local', '/usr/bin/kinit']
    .every((f) => fs.existsSync(f));
}

function run(cmd, args, env, input) {
  const r = spawnSync(cmd, args, { env, input, encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, 500);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

/**
 * Starts a KDC. Returns {env, keytab, dir, addUser(name, pw), kinit(name, pw),
 * stop()}. `env` (KRB5_CONFIG and friends) is for every Kerberos program of
 * the test, atriumd included.
 */
export async function startKdc() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-krb5-'));
  const port = await freePort();
  const conf = path.join(dir, 'krb5.conf');
  await fsp.writeFile(conf, `[libdefaults]
  default_realm = ${REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
[realms]
  ${REALM} = {
    kdc = 127.0.0.1:${port}
  }
[domain_realm]
  localhost = ${REALM}
`);
  await fsp.writeFile(path.join(dir, 'kdc.conf'), `[kdcdefaults]
  kdc_listen = 127.0.0.1:${port}
  kdc_tcp_listen = 127.0.0.1:${port}
[realms]
  ${REALM} = {
    database_name = ${dir}/principal
    key_stash_file = ${dir}/stash
    acl_file = ${dir}/kadm5.acl
    max_life = 1h
  }
[logging]
  kdc = FILE:${dir}/kdc.log
`);
  await fsp.writeFile(path.join(dir, 'kadm5.acl'), '');
  await fsp.mkdir(path.join(dir, 'rcache'));
  const env = {
    ...process.env,
    KRB5_CONFIG: conf,
    KRB5_KDC_PROFILE: path.join(dir, 'kdc.conf'),
    KRB5RCACHEDIR: path.join(dir, 'rcache'),
    KRB5_TRACE: '',
  };
  delete env.KRB5_TRACE;
  run('/usr/sbin/kdb5_util', ['create', '-s', '-r', REALM, '-P', 'Master-Key-Pw-3391'], env);
  const keytab = path.join(dir, 'http.keytab');
  run('/usr/sbin/kadmin.local', ['-r', REALM, '-q', 'addprinc -randkey HTTP/localhost'], env);
  run('/usr/sbin/kadmin.local', ['-r', REALM, '-q', `ktadd -k ${keytab} HTTP/localhost`], env);
  const proc = spawn(KDC, ['-n', '-r', REALM], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 10000;
  while (!(await portOpen(port))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`krb5kdc did not start: ${log}`);
    await sleep(100);
  }
  let n = 0;
  return {
    env, keytab, dir, port,
    addUser(name, pw) {
      run('/usr/sbin/kadmin.local', ['-r', REALM, '-q', `addprinc -pw ${pw} ${name}`], env);
    },
    /** kinit with a password into a credential cache of its own; returns that env. */
    kinit(name, pw) {
      const cc = `FILE:${dir}/cc-${name}-${n++}`;
      const e = { ...env, KRB5CCNAME: cc };
      run('/usr/bin/kinit', [`${name}@${REALM}`], e, `${pw}\n`);
      return e;
    },
    async stop() {
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([done, sleep(5000)]);
        if (proc.exitCode === null) proc.kill('SIGKILL');
      }
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** curl --negotiate POST url with the client's Kerberos env; resolves {status, json, text}. */
export function curlNegotiate(url, env, extra = []) {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '--negotiate', '-u', ':', '-X', 'POST', '-w', '\n%{http_code}', ...extra, url],
      { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const t = setTimeout(() => p.kill('SIGKILL'), 15000);
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', () => {
      clearTimeout(t);
      const i = out.lastIndexOf('\n');
      const text = out.slice(0, i);
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      resolve({ status: Number(out.slice(i + 1)), text, json, stderr: err });
    });
  });
}
