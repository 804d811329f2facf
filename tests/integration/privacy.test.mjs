// Issue 6: the web meeting's privacy policy. German and English templates,
// the customisation directory's copies winning, {RetentionTime} as the larger
// of the two atlas.xml values, read again when the file changes, a missing or
// broken atlas.xml, other placeholders untouched, the admin preview and
// `atriumctl privacy customize`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, ctl, REPO, sleep } from './harness.mjs';

const UNKNOWN_EN = 'The retention time could not be determined; the operator has been notified.';
const UNKNOWN_DE = 'Die Aufbewahrungsdauer konnte nicht ermittelt werden';

let srv, token, dir, install, custom;

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-privacy-'));
  install = path.join(dir, 'install');
  custom = path.join(dir, 'custom');
  await fsp.mkdir(install);
  for (const f of ['DataPrivacyStatement_EN.html', 'DataPrivacyStatement_DE.html'])
    await fsp.copyFile(path.join(REPO, 'share', 'privacy', f), path.join(install, f));
  srv = await startServer({ atlas: `<PrivacyDirectory install="${install}" custom="${custom}"/>` });
  token = await srv.login();
  const r = await srv.api('PATCH', '/api/v1/settings', { token, body: { 'meeting.enabled': true } });
  assert.equal(r.status, 200, r.text);
});

after(async () => {
  await srv?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

const page = (headers = {}, q = '') => srv.api('GET', `/webmeeting/${q}`, { headers });

/** Rewrites atlas.xml with other retention values (or other text). */
async function setAtlas(fn) {
  const xml = await fsp.readFile(srv.atlasPath, 'utf8');
  // Atomic replace, as editors and config management do; the inode changes.
  const tmp = srv.atlasPath + '.tmp';
  await fsp.writeFile(tmp, fn(xml));
  await fsp.rename(tmp, srv.atlasPath);
}
const days = (im, journal) => (xml) => xml
  .replace(/<IMDeleteAfterDays>\d+<\/IMDeleteAfterDays>/, `<IMDeleteAfterDays>${im}</IMDeleteAfterDays>`)
  .replace(/<JournalDeleteAfterDays>\d+<\/JournalDeleteAfterDays>/, `<JournalDeleteAfterDays>${journal}</JournalDeleteAfterDays>`);

test('language from Accept-Language (q-values) or ?lang=, English by default', async () => {
  let r = await page({ 'accept-language': 'de-DE,de;q=0.9,en;q=0.5' });
  assert.equal(r.status, 200, r.text);
  assert.match(r.text, /<html lang="de">/);
  assert.match(r.text, /Datenschutzerklärung für Web-Meetings/);
  r = await page({ 'accept-language': 'de;q=0.3, en-GB;q=0.8' });
  assert.match(r.text, /Privacy policy for web meetings/);
  r = await page({ 'accept-language': 'fr-FR, it;q=0.5' });
  assert.match(r.text, /<html lang="en">/);
  r = await page({});
  assert.match(r.text, /Privacy policy for web meetings/);
  r = await page({ 'accept-language': 'en' }, '?lang=de');
  assert.match(r.text, /Datenschutzerklärung/);
  r = await page({ 'accept-language': 'de' }, '?lang=EN');
  assert.match(r.text, /Privacy policy/);
  r = await page({ 'accept-language': 'de;q=0, en;q=0.1' });
  assert.match(r.text, /Privacy policy/, 'q=0 means not German');
  // The registration form and its script; no inline script.
  assert.match(r.text, /<form id="register"/);
  assert.match(r.text, /<script type="module" src="meeting\.js"><\/script>/);
  assert.equal((await srv.api('GET', '/webmeeting/meeting.js')).status, 200);
  r = await srv.api('GET', '/webmeeting/privacy?lang=de');
  assert.equal(r.status, 200);
  assert.match(r.text, /Datenschutzerklärung für Web-Meetings/);
});

test('{RetentionTime} is the larger of IMDeleteAfterDays and JournalDeleteAfterDays', async () => {
  let r = await page({}, '?lang=en');
  assert.match(r.text, /deleted after\s+365 days/);
  assert.doesNotMatch(r.text, /\{RetentionTime\}/);
  await setAtlas(days(400, 30));
  r = await page({}, '?lang=de');
  assert.match(r.text, /nach\s+400 Tagen gelöscht/, 'a change shows at the next request');
  await setAtlas(days(7, 8));
  r = await page({}, '?lang=en');
  assert.match(r.text, /deleted after\s+8 days/);
  const p = await srv.api('GET', '/api/v1/privacy', { token });
  assert.equal(p.json.retention_days, 8);
  await setAtlas(days(90, 365));
});

test('a broken or missing atlas.xml: a sentence on the page, one warning, no crash', async () => {
  await setAtlas((xml) => xml.replace('</Atlas>', '<IMDeleteAfterDays>oops'));
  for (let i = 0; i < 5; i++) {
    const r = await page({}, '?lang=en');
    assert.equal(r.status, 200);
    assert.match(r.text, new RegExp(UNKNOWN_EN.replace(/[.;]/g, '.')));
    assert.doesNotMatch(r.text, /\{RetentionTime\}/);
  }
  const de = await page({}, '?lang=de');
  assert.match(de.text, new RegExp(UNKNOWN_DE));
  const warnings = (await srv.settleOutput()).split('\n')
    .filter((l) => /warning: (node=\S+: )?privacy policy:/.test(l));
  assert.equal(warnings.length, 1, `once per change, not per request:\n${warnings.join('\n')}`);
  const info = await srv.api('GET', '/api/v1/privacy', { token });
  assert.equal(info.json.retention_days, null);
  assert.match(info.json.retention_error, /atlas\.xml/);

  await fsp.rm(srv.atlasPath);
  let r = await page({}, '?lang=en');
  assert.equal(r.status, 200);
  assert.match(r.text, /could not be determined/);
  assert.equal((await srv.settleOutput()).split('\n')
    .filter((l) => /warning: (node=\S+: )?privacy policy:/.test(l)).length, 2);

  // Back: the number returns, and the server still serves everything else.
  const xml = '<?xml version="1.0"?><Atlas>'
    + `<Listen address="127.0.0.1" port="${srv.port}"/><DataDirectory>${srv.dataDir}</DataDirectory>`
    + '<IMDeleteAfterDays>12</IMDeleteAfterDays><JournalDeleteAfterDays>11</JournalDeleteAfterDays>'
    + `<PrivacyDirectory install="${install}" custom="${custom}"/></Atlas>\n`;
  await fsp.writeFile(srv.atlasPath, xml);
  r = await page({}, '?lang=en');
  assert.match(r.text, /deleted after\s+12 days/);
  assert.equal((await srv.api('GET', '/healthz')).status, 200);
});

test('neither retention value given: the sentence, not a number', async () => {
  await setAtlas((xml) => xml.replace(/<IMDeleteAfterDays>\d+<\/IMDeleteAfterDays>/, '')
    .replace(/<JournalDeleteAfterDays>\d+<\/JournalDeleteAfterDays>/, ''));
  const r = await page({}, '?lang=en');
  assert.match(r.text, /could not be determined/);
  await setAtlas((xml) => xml.replace('</Atlas>',
    '<IMDeleteAfterDays>90</IMDeleteAfterDays><JournalDeleteAfterDays>365</JournalDeleteAfterDays></Atlas>'));
  assert.match((await page({}, '?lang=en')).text, /deleted after\s+365 days/);
});

test('the customisation directory wins, per language; other placeholders stay', async () => {
  await fsp.mkdir(custom, { recursive: true });
  await fsp.writeFile(path.join(custom, 'DataPrivacyStatement_EN.html'),
    '<section><h2>Our own policy</h2><p>Kept {RetentionTime} days by {Operator}; {RetentionTime}!</p></section>');
  let r = await page({}, '?lang=en');
  assert.match(r.text, /Our own policy/);
  assert.match(r.text, /Kept 365 days by \{Operator\}; 365!/);
  r = await page({}, '?lang=de');
  assert.match(r.text, /Datenschutzerklärung für Web-Meetings/, 'German still from the install directory');
  const prev = await srv.api('GET', '/api/v1/privacy/preview?lang=en', { token });
  assert.equal(prev.status, 200);
  assert.equal(prev.json.source, 'custom');
  assert.equal(prev.json.retention_days, 365);
  assert.match(prev.json.html, /\{Operator\}/);
  const prevDe = await srv.api('GET', '/api/v1/privacy/preview', { token, headers: { 'accept-language': 'de' } });
  assert.equal(prevDe.json.lang, 'de');
  assert.equal(prevDe.json.source, 'install');
  assert.equal((await srv.api('GET', '/api/v1/privacy/preview')).status, 401, 'admin only');

  await fsp.rm(path.join(custom, 'DataPrivacyStatement_EN.html'));
  r = await page({}, '?lang=en');
  assert.match(r.text, /Privacy policy for web meetings/, 'back to the shipped template');
});

test('a missing template: the page says so, the preview is a 404 problem', async () => {
  await fsp.rename(path.join(install, 'DataPrivacyStatement_DE.html'), path.join(dir, 'de.bak'));
  try {
    const r = await page({}, '?lang=de');
    assert.equal(r.status, 200);
    assert.match(r.text, /Die Datenschutzerklärung ist nicht verfügbar/);
    const p = await srv.api('GET', '/api/v1/privacy/preview?lang=de', { token });
    assert.equal(p.status, 404);
    assert.match(p.json.detail, /DataPrivacyStatement_DE\.html/);
  } finally {
    await fsp.rename(path.join(dir, 'de.bak'), path.join(install, 'DataPrivacyStatement_DE.html'));
  }
});

test('atriumctl privacy customize copies the templates; the copies win', async () => {
  await fsp.rm(custom, { recursive: true, force: true });
  let r = await ctl(srv, ['privacy', 'show'], { token });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /en: install/);
  r = await ctl(srv, ['privacy', 'customize'], { token });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /copied .*DataPrivacyStatement_EN\.html/);
  const en = path.join(custom, 'DataPrivacyStatement_EN.html');
  const text = await fsp.readFile(en, 'utf8');
  assert.match(text, /\{RetentionTime\}/);
  await fsp.writeFile(en, text.replace('Privacy policy for web meetings', 'Edited by the operator'));
  assert.match((await page({}, '?lang=en')).text, /Edited by the operator/);

  r = await ctl(srv, ['privacy', 'customize'], { token });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /kept .*DataPrivacyStatement_EN\.html/);
  assert.match(await fsp.readFile(en, 'utf8'), /Edited by the operator/, 'not overwritten');
  r = await ctl(srv, ['privacy', 'customize', '--force'], { token });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(await fsp.readFile(en, 'utf8'), /Edited by the operator/);
  r = await ctl(srv, ['privacy', 'show'], { token });
  assert.match(r.stdout, /en: custom/);
  assert.match(r.stdout, /365 days/);
  r = await ctl(srv, ['privacy', 'preview', '--lang', 'de'], { token });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /nach\s+365 Tagen/);
  r = await ctl(srv, ['privacy', 'preview', '--lang', 'fr'], { token });
  assert.equal(r.code, 2);
});

test('with meeting disabled the public pages are gone, the admin preview stays', async () => {
  await srv.api('PATCH', '/api/v1/settings', { token, body: { 'meeting.enabled': false } });
  assert.equal((await page({})).status, 404);
  assert.equal((await srv.api('GET', '/webmeeting/privacy')).status, 404);
  assert.equal((await srv.api('GET', '/api/v1/privacy/preview', { token })).status, 200);
});
