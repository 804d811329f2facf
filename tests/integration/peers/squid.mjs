// squid (the Debian package) as a real proxy on loopback for the proxy tests:
// a generated squid.conf in a temporary directory, optional Basic or Digest
// authentication with password files made here, and CONNECT refused to the
// ports in denyConnectPorts. Every wait is bounded.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { freePort, sleep } from '../harness.mjs';

export const SQUID = process.env.SQUID || '/usr/sbin/squid';
const HELPERS = '/usr/lib/squid';

/** true when squid and its auth helpers are installed (scripts/deps.sh test). */
export function squidAvailable() {
  return fs.existsSync(SQUID) && fs.existsSync(path.join(HELPERS, 'basic_ncsa_auth'))
    && fs.existsSync(path.join(HELPERS, 'digest_file_auth'));
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function waitExit(proc, ms) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    proc.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

/**
 * Starts squid. opts: {auth: null | 'basic' | 'digest', users: {name: password},
 * denyConnectPorts: [port], dnsServer: address, startTimeoutMs}. Resolves {port, dir, stop(),
 * accessLog(), output()}.
 */
export async function startSquid(opts = {}) {
  const port = await freePort();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-squid-'));
  // squid started as root drops to cache_effective_user; that user writes
  // the logs and the pid file, and its helpers read the password files.
  const asRoot = process.getuid && process.getuid() === 0;
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `pid_filename ${dir}/squid.pid`,
    `access_log stdio:${dir}/access.log`,
    `cache_log ${dir}/cache.log`,
    'cache_store_log none',
    'cache deny all',
    'cache_mem 4 MB',
    `coredump_dir ${dir}`,
    'netdb_filename none',
    'pinger_enable off',
    'logfile_rotate 0',
    'shutdown_lifetime 1 seconds',
    'visible_hostname atrium-test-squid',
    // Names come from /etc/hosts; everything else goes to opts.dnsServer (a
    // local NXDOMAIN server) and never to a DNS server outside the machine.
    'hosts_file /etc/hosts',
    `dns_nameservers ${opts.dnsServer ?? '127.0.0.1'}`,
    'dns_timeout 2 seconds',
    'connect_timeout 5 seconds',
    'acl CONNECT method CONNECT',
  ];
  if (asRoot) lines.push('cache_effective_user proxy');
  const users = opts.users ?? {};
  if (opts.auth === 'basic') {
    const file = path.join(dir, 'htpasswd');
    let text = '';
    for (const [name, pw] of Object.entries(users)) {
      const hash = execFileSync('openssl', ['passwd', '-apr1', '-stdin'], { input: pw + '\n' })
        .toString().trim();
      text += `${name}:${hash}\n`;
    }
    await fsp.writeFile(file, text, { mode: 0o644 });
    lines.push(`auth_param basic program ${HELPERS}/basic_ncsa_auth ${file}`,
      'auth_param basic children 2 startup=1', 'auth_param basic realm atrium-test');
  } else if (opts.auth === 'digest') {
    const file = path.join(dir, 'digest-passwd');
    let text = '';
    for (const [name, pw] of Object.entries(users)) text += `${name}:${pw}\n`;
    await fsp.writeFile(file, text, { mode: 0o644 });
    lines.push(`auth_param digest program ${HELPERS}/digest_file_auth ${file}`,
      'auth_param digest children 2 startup=1', 'auth_param digest realm atrium-test');
  }
  for (const [i, p] of (opts.denyConnectPorts ?? []).entries()) {
    lines.push(`acl denied_port_${i} port ${p}`, `http_access deny CONNECT denied_port_${i}`);
  }
  lines.push(...(opts.extra ?? []));
  if (opts.auth) {
    lines.push('acl authenticated proxy_auth REQUIRED', 'http_access allow authenticated');
  } else {
    lines.push('http_access allow all');
  }
  lines.push('http_access deny all');
  const conf = path.join(dir, 'squid.conf');
  await fsp.writeFile(conf, lines.join('\n') + '\n', { mode: 0o644 });
  await fsp.chmod(dir, 0o755);
  if (asRoot) execFileSync('chown', ['proxy:proxy', dir]);

  let out = '';
  // A service name of its own: squid names its shared memory after it, and
  // two instances with one name collide.
  const proc = spawn(SQUID, ['-N', '-n', `atriumtest${port}`, '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  let spawnError = null;
  proc.on('error', (e) => { spawnError = e; });

  const readLog = (name) => {
    try { return fs.readFileSync(path.join(dir, name), 'utf8'); } catch { return ''; }
  };
  const squid = {
    port,
    dir,
    output: () => out + readLog('cache.log'),
    accessLog: () => readLog('access.log'),
    /** squid writes a tunnel's access-log line when the tunnel closes, after
     * the client has its answer: wait (bounded) for a line matching re. */
    async waitAccessLog(re, ms = 5000) {
      const until = Date.now() + ms;
      let log = readLog('access.log');
      while (!re.test(log) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
        log = readLog('access.log');
      }
      return log;
    },
    /** Waits until the access log has not changed for quietMs (at most ms),
     * so that a snapshot of it is not overtaken by a line still on its way. */
    async settleAccessLog(quietMs = 400, ms = 5000) {
      const until = Date.now() + ms;
      let last = readLog('access.log'), since = Date.now();
      while (Date.now() < until && Date.now() - since < quietMs) {
        await new Promise((r) => setTimeout(r, 50));
        const now = readLog('access.log');
        if (now !== last) { last = now; since = Date.now(); }
      }
      return last;
    },
    async stop() {
      if (!(await waitExit(proc, 0))) {
        proc.kill('SIGTERM');
        if (!(await waitExit(proc, 5000))) {
          proc.kill('SIGKILL');
          await waitExit(proc, 5000);
        }
      }
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 15000);
  for (;;) {
    if (spawnError) throw new Error(`cannot start ${SQUID}: ${spawnError.message}`);
    if (proc.exitCode !== null || proc.signalCode !== null) {
      const log = squid.output();
      await squid.stop();
      throw new Error(`squid exited (${proc.exitCode ?? proc.signalCode}) at start:\n${log}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      const log = squid.output();
      await squid.stop();
      throw new Error(`squid did not listen on ${port} in time:\n${log}`);
    }
    await sleep(100);
  }
  return squid;
}
