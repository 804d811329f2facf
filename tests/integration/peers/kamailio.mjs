// kamailio as a partner domain's SIP server for the federation tests: TLS
// (mutual, the test CA) for the federation side, UDP for its own users, and
// the presence module (with presence_xml) as the domain's presence server:
// its users PUBLISH, watchers from other domains SUBSCRIBE and get NOTIFYs.
// State in a throwaway SQLite file; everything in one temporary directory.
import { execFileSync, spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';

const SCHEMA = '/usr/share/kamailio/db_sqlite';

/**
 * opts: {dir, address, udpPort, tlsPort, domain, cert, key, ca} (paths).
 * Resolves {output(), waitOutput(re, ms), stop()}.
 */
export async function startKamailio(opts) {
  await fsp.mkdir(opts.dir, { recursive: true });
  const db = path.join(opts.dir, 'presence.db');
  for (const f of ['standard-create.sql', 'presence-create.sql'])
    execFileSync('sqlite3', [db], { input: await fsp.readFile(path.join(SCHEMA, f)) });
  const tlsCfg = path.join(opts.dir, 'tls.cfg');
  const side = (name) => [`[${name}:default]`, 'method = TLSv1.2+', 'verify_certificate = yes',
    'require_certificate = yes', `private_key = ${opts.key}`, `certificate = ${opts.cert}`,
    `ca_list = ${opts.ca}`, ''].join('\n');
  await fsp.writeFile(tlsCfg, side('server') + '\n' + side('client'));
  const cfg = path.join(opts.dir, 'kamailio.cfg');
  await fsp.writeFile(cfg, `#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:${opts.address}:${opts.udpPort}
listen=tls:${opts.address}:${opts.tlsPort}
alias="${opts.domain}"
enable_tls=yes
tcp_accept_no_cl=yes
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tls.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "db_sqlite.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
modparam("tls", "config", "${tlsCfg}")
modparam("presence|presence_xml", "db_url", "sqlite://${db}")
modparam("presence", "subs_db_mode", 0)
modparam("presence_xml", "force_active", 1)
modparam("presence_xml", "integrated_xcap_server", 0)

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  xlog("L_INFO", "kamailio: $rm $ru from $fu via $proto:$si:$sp\\n");
  if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
  if (is_method("PUBLISH|SUBSCRIBE")) {
    if (!t_newtran()) { sl_reply_error(); exit; }
    if (is_method("PUBLISH")) { handle_publish(); } else { handle_subscribe(); }
    t_release();
    exit;
  }
  sl_send_reply("404", "Not Here");
}
`);
  const proc = spawn('kamailio', ['-DD', '-E', '-f', cfg, '-Y', opts.dir, '-P', path.join(opts.dir, 'kamailio.pid')],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const k = {
    output: () => out,
    async waitOutput(re, ms = 5000) {
      const until = Date.now() + ms;
      while (!re.test(out) && Date.now() < until && proc.exitCode === null) await new Promise((r) => setTimeout(r, 20));
      if (!re.test(out)) throw new Error(`kamailio did not log ${re} within ${ms} ms:\n${out.slice(-3000)}`);
      return out;
    },
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await new Promise((r) => { const t = setTimeout(() => { proc.kill('SIGKILL'); r(); }, 5000); proc.once('exit', () => { clearTimeout(t); r(); }); });
    },
  };
  // Ready once its TLS socket accepts.
  const until = Date.now() + 10000;
  const net = await import('node:net');
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`kamailio exited:\n${out}`);
    const ok = await new Promise((res) => {
      const s = net.connect(opts.tlsPort, opts.address, () => { s.destroy(); res(true); });
      s.on('error', () => res(false));
    });
    if (ok) break;
    if (Date.now() > until) { await k.stop(); throw new Error(`kamailio did not listen:\n${out}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return k;
}
