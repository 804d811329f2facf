// A real OpenLDAP slapd (Debian's /usr/sbin/slapd) for the AD publishing
// tests: a temporary directory, slapd.conf with an mdb database for
// dc=example,dc=com, core.schema plus a small schema with the Active
// Directory types of a serviceConnectionPoint (OIDs from [MS-ADA1]/[MS-ADA3]),
// listening on a loopback port. Every wait is bounded.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, sleep } from '../harness.mjs';

export const SLAPD = process.env.SLAPD || '/usr/sbin/slapd';
export const SUFFIX = 'dc=example,dc=com';
export const ROOT_DN = 'cn=admin,dc=example,dc=com';
export const ROOT_PW = 'Slapd-Root-Pw-8123';

const SCHEMA = `# The Active Directory types of a service connection point, as far as
# Atrium writes them. OIDs as in AD's schema.
attributetype ( 1.2.840.113556.1.4.48 NAME 'keywords'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.4.510 NAME 'serviceBindingInformation'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.4.657 NAME 'serviceDNSName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.509 NAME 'serviceClassName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.126 NAME 'serviceConnectionPoint' SUP top STRUCTURAL
  MUST cn MAY ( keywords $ serviceBindingInformation $ serviceDNSName $ serviceClassName $
  description ) )
`;

export function slapdAvailable() {
  return fs.existsSync(SLAPD) && spawnSync('ldapsearch', ['-VV'], { encoding: 'utf8' }).status === 0;
}

/** Runs an ldap-utils command; resolves {code, out}. */
export function ldapTool(cmd, args, input) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out }); });
    // A tool that fails at once (the directory is not up yet) closes its
    // stdin before we write: that is its answer, not the test's error.
    p.stdin.on('error', () => {});
    p.stdin.end(input ?? '');
  });
}

/** Parses ldapsearch -LLL output (no line folding with -o ldif-wrap=no) into
 * [{dn, attr: [values]}]. */
export function parseLdif(text) {
  const entries = [];
  for (const block of text.split(/\n\n+/)) {
    const e = {};
    for (const line of block.split('\n')) {
      const m = line.match(/^([A-Za-z0-9;-]+)(::?) ?(.*)$/);
      if (!m) continue;
      const v = m[2] === '::' ? Buffer.from(m[3], 'base64').toString('utf8') : m[3];
      const k = m[1];
      if (k === 'dn') e.dn = v; else (e[k] ??= []).push(v);
    }
    if (e.dn) entries.push(e);
  }
  return entries;
}

/**
 * Prepares (and unless opts.start === false, starts) a slapd. Returns
 * {uri, port, start(), stop(), search(base, filter), dir, cleanup()}.
 */
export async function startSlapd(opts = {}) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-slapd-'));
  const port = opts.port ?? await freePort();
  await fsp.mkdir(path.join(dir, 'db'));
  await fsp.writeFile(path.join(dir, 'ad-scp.schema'), SCHEMA);
  await fsp.writeFile(path.join(dir, 'slapd.conf'), [
    'include /etc/ldap/schema/core.schema',
    `include ${dir}/ad-scp.schema`,
    `pidfile ${dir}/slapd.pid`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'database mdb',
    `suffix "${SUFFIX}"`,
    `rootdn "${ROOT_DN}"`,
    `rootpw ${ROOT_PW}`,
    `directory ${dir}/db`,
    'maxsize 10485760',
    '',
  ].join('\n'));
  const uri = `ldap://127.0.0.1:${port}`;
  let proc = null;
  let log = '';
  let seeded = false;

  const s = {
    uri, port, dir,
    log: () => log,
    async start() {
      // -d: stay in the foreground (and log to stderr) so that we own the process.
      proc = spawn(SLAPD, ['-f', path.join(dir, 'slapd.conf'), '-h', `${uri}/`, '-d', '0'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout.on('data', (d) => { log += d; });
      proc.stderr.on('data', (d) => { log += d; });
      const deadline = Date.now() + 10000;
      for (;;) {
        const r = await ldapTool('ldapsearch', ['-x', '-H', uri, '-b', '', '-s', 'base', '-LLL', '1.1']);
        if (r.code === 0) break;
        if (proc.exitCode !== null || Date.now() > deadline) {
          throw new Error(`slapd did not start: ${log}\n${r.out}`);
        }
        await sleep(100);
      }
      if (!seeded) {
        const r = await ldapTool('ldapadd', ['-x', '-H', uri, '-D', ROOT_DN, '-w', ROOT_PW], [
          `dn: ${SUFFIX}`, 'objectClass: dcObject', 'objectClass: organization', 'dc: example', 'o: Example', '',
          `dn: ou=Atrium,${SUFFIX}`, 'objectClass: organizationalUnit', 'ou: Atrium', '',
        ].join('\n'));
        if (r.code !== 0) throw new Error(`cannot seed slapd: ${r.out}`);
        seeded = true;
      }
    },
    async stop() {
      if (!proc || proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([done, sleep(5000)]);
      if (proc.exitCode === null) { proc.kill('SIGKILL'); await Promise.race([done, sleep(5000)]); }
    },
    /** Entries under base matching filter, as the root DN sees them. */
    async search(base, filter = '(objectClass=*)') {
      const r = await ldapTool('ldapsearch', ['-x', '-H', uri, '-D', ROOT_DN, '-w', ROOT_PW, '-LLL',
        '-o', 'ldif-wrap=no', '-b', base, filter]);
      if (r.code === 32) return []; // no such object
      if (r.code !== 0) throw new Error(`ldapsearch failed (${r.code}): ${r.out}`);
      return parseLdif(r.out);
    },
    async cleanup() {
      await s.stop();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
  if (opts.start !== false) await s.start();
  return s;
}
