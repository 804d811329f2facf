// A throwaway PostgreSQL server for integration tests, as
// scripts/with-postgres.sh makes one: initdb in a new directory under /tmp
// (as the user postgres when the tests run as root: initdb refuses root),
// a Unix socket in that directory only (listen_addresses = ''), trust for
// local connections, fsync off. stop() removes everything; so does the
// process's exit, whatever ends it.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const PG_BIN = process.env.PG_BIN || '/usr/lib/postgresql/15/bin';

export function havePostgres() {
  return ['initdb', 'pg_ctl', 'postgres', 'psql'].every((b) => fs.existsSync(path.join(PG_BIN, b)));
}

const asRoot = process.getuid?.() === 0;

function run(cmd, args, opts = {}, netns = null) {
  let full = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  if (netns) full = ['ip', ['netns', 'exec', netns, full[0], ...full[1]]];
  return spawnSync(full[0], full[1], { encoding: 'utf8', timeout: 60000, ...opts });
}

/** Starts a server; resolves {dir, conninfo(db), psql(sql, db), createDb(name),
 * restart({mode}), stop()}. With {netns, address} the server runs in that
 * network namespace and also listens on TCP at address, which conninfo
 * names; psql still uses the Unix socket (a path, not bound to a namespace). */
export async function startPostgres({ netns = null, address = null } = {}) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'atrium-pg-'));
  fs.chmodSync(base, 0o700);
  if (asRoot) spawnSync('chown', ['postgres:', base]);
  const data = path.join(base, 'data');
  const log = path.join(base, 'server.log');
  let r = run(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
    '--no-locale', '--no-sync'], { cwd: base });
  if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr}`);
  fs.appendFileSync(path.join(data, 'postgresql.conf'), [
    `listen_addresses = '${address ?? ''}'`, `unix_socket_directories = '${base}'`, 'port = 5432', 'fsync = off',
    // A crash (pg_ctl -m immediate) must keep what was committed: the
    // tests restart the server under load. fsync stays off (the OS keeps
    // the written WAL across a server crash).
    'synchronous_commit = on', 'full_page_writes = off', 'shared_buffers = 16MB',
    'max_connections = 100', '',
  ].join('\n'));
  if (address) fs.appendFileSync(path.join(data, 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\n');
  const pgctl = (args) => run(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '30', ...args], { cwd: base }, netns);
  r = pgctl(['start']);
  if (r.status !== 0) throw new Error(`the PostgreSQL server did not start: ${r.stderr}${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    pgctl(['-m', 'immediate', 'stop']);
    fs.rmSync(base, { recursive: true, force: true });
  };
  process.on('exit', stopNow);
  const psql = (sql, db = 'postgres') => {
    const p = spawnSync(path.join(PG_BIN, 'psql'), ['-h', base, '-U', 'postgres', '-d', db, '-XAtqc', sql],
      { encoding: 'utf8', timeout: 20000 });
    if (p.status !== 0) throw new Error(`psql ${sql}: ${p.stderr}`);
    return p.stdout.trim();
  };
  let seq = 0;
  return {
    dir: base,
    conninfo: (db) => `host=${address ?? base} port=5432 dbname=${db} user=postgres`,
    psql,
    /** psql without waiting (spawn), for commands timed from the outside. */
    psqlAsync: (sql, db) => new Promise((resolve, reject) => {
      const p = spawn(path.join(PG_BIN, 'psql'), ['-h', base, '-U', 'postgres', '-d', db, '-XAtqc', sql]);
      let err = '';
      p.stderr.on('data', (d) => { err += d; });
      p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(err))));
    }),
    createDb(name = `atrium_${process.pid}_${++seq}`) {
      psql(`CREATE DATABASE ${name}`);
      return name;
    },
    /** pg_ctl restart (-m immediate by default: a crash as far as clients see). */
    restart({ mode = 'immediate' } = {}) {
      const x = pgctl(['-m', mode, 'restart']);
      if (x.status !== 0) throw new Error(`pg_ctl restart: ${x.stderr}`);
    },
    stopServer({ mode = 'immediate' } = {}) { return pgctl(['-m', mode, 'stop']).status; },
    startServer() { return pgctl(['start']).status; },
    stop: stopNow,
  };
}

let shared = null;
/** One server per test process, made at the first call (the harness's
 * ATRIUM_TEST_STORE=postgresql). */
export async function sharedPostgres() {
  if (!shared) shared = await startPostgres();
  return shared;
}
