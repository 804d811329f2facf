// Seeds a throw-away Prosody 0.12 data directory for rtload by writing the
// files of mod_storage_internal directly (one Lua table per file, the
// format util.datamanager reads), which takes well under a second for
// 20,000 accounts where `prosodyctl adduser` would start Lua once per user.
//
// Usage: node seed.mjs DATA_DIR HOST USERS WATCHERS CREDS_FILE
//   accounts u00000..u<USERS-1>@HOST with authentication = "internal_plain"
//   (accounts/<user>.dat: { password = "..." });
//   fan-out rosters: u00000 has subscription "from" for u00001..u<WATCHERS>
//   and each of those has "to" for u00000, so u00000's presence reaches
//   them (mod_presence broadcasts to "from"/"both" contacts);
//   CREDS_FILE gets "<address> <password>" per user, in index order.
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

const [dataDir, host, usersArg, watchersArg, credsFile] = process.argv.slice(2);
const fail = (msg) => {
  process.stderr.write(`seed.mjs: ${msg}\n`);
  process.exit(2);
};
if (!dataDir || !host || !usersArg || watchersArg === undefined || !credsFile)
  fail('usage: node seed.mjs DATA_DIR HOST USERS WATCHERS CREDS_FILE');
const users = Number(usersArg);
const watchers = Number(watchersArg);
if (!Number.isInteger(users) || users < 1 || users > 1000000)
  fail(`USERS must be a whole number from 1 to 1000000, got "${usersArg}"`);
if (!Number.isInteger(watchers) || watchers < 0 || watchers > users - 1)
  fail(`WATCHERS must be a whole number from 0 to USERS-1 (${users - 1}), got "${watchersArg}"`);
if (!/^[a-z0-9.-]+$/.test(host)) fail(`HOST must be a DNS name in lower case, got "${host}"`);

// util.datamanager encodes every non-alphanumeric byte of the host as %xx.
const encHost = host.replace(/[^A-Za-z0-9]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'));
const accounts = join(dataDir, encHost, 'accounts');
const rosters = join(dataDir, encHost, 'roster');
mkdirSync(accounts, { recursive: true });
mkdirSync(rosters, { recursive: true });

const name = (i) => 'u' + String(i).padStart(5, '0');
const luaStr = (s) => '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"';
const rosterItem = (jid, sub) =>
  `\t[${luaStr(jid)}] = {\n\t\t["subscription"] = ${luaStr(sub)};\n\t\t["groups"] = {};\n\t};\n`;
const rosterHead = '\t[false] = {\n\t\t["version"] = 1;\n\t\t["pending"] = {};\n\t};\n';

const creds = [];
for (let i = 0; i < users; i++) {
  const password = randomBytes(12).toString('hex');
  writeFileSync(join(accounts, name(i) + '.dat'), `return {\n\t["password"] = ${luaStr(password)};\n};\n`);
  creds.push(`${name(i)}@${host} ${password}`);
}
if (watchers > 0) {
  const fan = `${name(0)}@${host}`;
  const items = [rosterHead];
  for (let i = 1; i <= watchers; i++) {
    items.push(rosterItem(`${name(i)}@${host}`, 'from'));
    writeFileSync(join(rosters, name(i) + '.dat'), `return {\n${rosterHead}${rosterItem(fan, 'to')}};\n`);
  }
  writeFileSync(join(rosters, name(0) + '.dat'), `return {\n${items.join('')}};\n`);
}
writeFileSync(credsFile, creds.join('\n') + '\n', { mode: 0o600 });
process.stdout.write(`seeded ${users} accounts and ${watchers} fan-out subscriptions on ${host}\n`);
