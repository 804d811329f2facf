// UI texts in English and German. English setting labels and help come from
// the schema endpoint; German ones from i18n/de.js (keyed by setting key).
//
// Elements are bound to a text key with bindText/bindAttr, so that switching
// the language re-translates the page in place, without losing form input.
import { LANGUAGES, createI18n } from '../common/i18n.js';
import * as de from '../i18n/de.js';

const en = {
  'app.title': 'Atrium administration',
  'app.brand': 'Atrium',
  'app.skip': 'Skip to content',
  'nav.label': 'Main',
  'nav.settings': 'System settings',
  'nav.audit': 'Audit log',
  'nav.status': 'Status',
  'status.heading': 'Status',
  'status.intro': 'What runs and what fails on this server, the clients connected now, retention, federation and push. The page refreshes itself every 15 seconds.',
  'status.refresh': 'Refresh',
  'status.loading': 'Loading…',
  'status.failed': 'Could not be loaded: {detail}',
  'status.never': 'never',
  'status.none': 'none',
  'status.last_error': 'Last error',
  'status.summary': 'Atrium {version}.',
  'status.started': 'Running since {time}.',
  'status.checked': 'Checked {time}.',
  'status.state.ok': 'OK',
  'status.state.off': 'Off',
  'status.state.warning': 'Warning',
  'status.state.failing': 'Failing',
  'status.state.unknown': 'Unknown',
  'status.col.module': 'Module',
  'status.col.state': 'State',
  'status.col.sentence': 'Details',
  'status.col.last_error': 'Last error',
  'status.col.user': 'User',
  'status.col.presence': 'Presence',
  'status.col.client': 'Client',
  'status.col.from': 'From address',
  'status.col.since': 'Connected since',
  'status.modules.heading': 'Modules',
  'status.warnings.heading': 'Configuration warnings',
  'status.warnings.none': 'The settings in force raise no warnings.',
  'status.clients.heading': 'Connected clients',
  'status.clients.count': 'Users connected: {users}; client connections: {connections}.',
  'status.presence.available': 'Available',
  'status.presence.busy': 'Busy',
  'status.presence.dnd': 'Do not disturb',
  'status.presence.away': 'Away',
  'status.presence.offline': 'Offline',
  'status.retention.heading': 'Retention',
  'status.retention.im': 'Chats are deleted after',
  'status.retention.journal': 'Journal entries are deleted after',
  'status.retention.days': '{n} days',
  'status.retention.keep': 'never (kept)',
  'status.retention.last_run': 'Last sweep',
  'status.retention.next_run': 'Next sweep',
  'status.retention.last_deleted': 'Deleted by the last sweep',
  'status.retention.total_deleted': 'Deleted since the start',
  'status.retention.counts': '{messages} messages, {journal} journal entries',
  'status.retention.last_failed': 'The last sweep failed; the server log says why. It is tried again at the next sweep.',
  'status.retention.run': 'Run the sweep now',
  'status.retention.running': 'Sweeping…',
  'status.retention.done': 'Done: {messages} messages and {journal} journal entries deleted.',
  'status.retention.still_running': 'The sweep is still running; Refresh shows when it has ended.',
  'status.federation.heading': 'Federation',
  'status.federation.not_configured': 'SIP federation is not set up.',
  'status.federation.disabled': 'Federation is switched off (Federation enabled, in System settings).',
  'status.federation.running': 'Federation is running on {listen}.',
  'status.federation.not_running': 'Federation is switched on but not running; see the modules above.',
  'status.federation.inbound': 'Remote watchers of our users',
  'status.federation.outbound': 'Our users watching remote addresses',
  'status.federation.subs': '{active} active, {pending} pending',
  'status.federation.peers': 'Partner domains with traffic',
  'status.federation.messages': 'Chat messages',
  'status.federation.message_counts': '{in} received, {out} sent, {failed} failed',
  'status.push.heading': 'Push notifications',
  'status.push.pending': 'Waiting in the outbox',
  'status.push.sent': 'Sent since the start',
  'status.push.failed': 'Failed since the start',
  'lang.label': 'Language',
  'user.signed_in': 'Signed in as {user}',
  'logout': 'Log out',
  'net.error': 'The server cannot be reached ({detail}). Check that atriumd is running.',

  'login.heading': 'Log in',
  'login.intro': 'Administration of this Atrium server.',
  'login.user': 'User name',
  'login.password': 'Password',
  'login.submit': 'Log in',
  'login.busy': 'Logging in…',
  'login.expired': 'Your session has expired. Log in again.',
  'login.logged_out': 'You have logged out.',
  'login.failed': 'Login failed: {detail}',

  'settings.heading': 'System settings',
  'settings.intro': 'All general settings of this server. Changes take effect when you save them.',
  'settings.sections': 'Sections',
  'settings.loading': 'Loading the settings…',
  'settings.load_failed': 'The settings could not be loaded: {detail}',
  'save': 'Save',
  'discard': 'Discard changes',
  'save.busy': 'Saving…',
  'save.none': 'There are no changes to save.',
  'save.ok.one': 'Saved 1 setting.',
  'save.ok.other': 'Saved {n} settings.',
  'save.invalid.one': 'Nothing was saved: 1 setting has an invalid value. The message is shown beside the field.',
  'save.invalid.other': 'Nothing was saved: {n} settings have invalid values. The messages are shown beside the fields.',
  'save.failed': 'Nothing was saved: {detail}',
  'save.stale': 'Nothing was saved: the settings were changed elsewhere after this page loaded them. Reload the settings to see the current values, then make your changes again.',
  'reload': 'Reload settings',
  'discarded': 'Your changes were discarded.',
  'reloaded': 'The settings were reloaded.',
  'unsaved.one': '1 unsaved change',
  'unsaved.other': '{n} unsaved changes',
  'unsaved.none': 'No unsaved changes',
  'field.changed': '(changed)',
  'field.locked': 'Set by the environment variable {env}: read-only here. Remove the variable from the server’s environment to manage this setting on this page.',
  'field.warning': 'Warning:',
  'field.install': 'Fixed at the first start from this server’s host name and port; it does not follow later changes. Set it to the address users reach.',
  'secret.set': '(set)',
  'secret.unset': 'not set',
  'secret.state_set': 'A password is stored. Type a new one to replace it.',
  'secret.state_unset': 'No password is stored.',
  'secret.clear': 'Clear password',
  'secret.undo_clear': 'Keep password',
  'secret.will_clear': 'The stored password will be removed when you save.',
  'list.add': 'Add entry',
  'list.remove': 'Remove entry {n}',
  'list.entry': '{label}, entry {n}',
  'list.empty': 'No entries.',
  'qos.col.name': 'Name',
  'qos.col.dscp': 'DSCP (0–63)',
  'qos.col.max_rate_mbps': 'Max. rate (Mbit/s)',
  'qos.col.url': 'URL',
  'qos.col.include_subdirectories': 'Include subdirectories',
  'qos.col.any_destination': 'Any destination IP',
  'qos.col.actions': 'Actions',
  'qos.cell': '{column}, policy {n}',
  'qos.add': 'Add policy',
  'qos.remove': 'Remove',
  'qos.remove_label': 'Remove policy {n}',
  'qos.empty': 'No QoS policies.',
  'qos.caption': 'QoS policies for web meetings',

  'domain.change': 'Change domain…',
  'domain.federation_on': 'The domain cannot be changed while federation is enabled: login names and IM addresses known to federation partners would change. Switch off “Federation enabled” under Federation and save; then change the domain here.',
  'domain.dirty': 'Save or discard your other changes first: changing the domain reloads the settings.',
  'dialog.title': 'Change the domain',
  'dialog.intro': 'Login names and IM addresses of all users change from name@{old} to name@<new domain>. Windows login of the clients keeps working, but users must set up the login in the mobile app again. Presence subscriptions of federation contacts are created again for the new addresses.',
  'dialog.new_domain': 'New domain',
  'dialog.preview': 'Preview',
  'dialog.preview_busy': 'Computing the preview…',
  'dialog.preview_heading': 'What will change',
  'dialog.users': 'Users renamed',
  'dialog.samples': 'Examples',
  'dialog.no_samples': 'No users.',
  'dialog.mobile': 'Mobile devices that must set up the login again',
  'dialog.subs': 'Federation subscriptions created again',
  'dialog.fqdn': 'Federation FQDN',
  'dialog.confirm': 'To confirm, type the new domain “{domain}”',
  'dialog.apply': 'Change domain now',
  'dialog.apply_busy': 'Changing the domain…',
  'dialog.cancel': 'Cancel',
  'dialog.close': 'Close',
  'dialog.done': 'The domain is now {domain}.',
  'dialog.failed': 'The domain was not changed: {detail}',
  'dialog.preview_failed': 'No preview: {detail}',

  'federation.test': 'Test federation',
  'federation.test_domain': 'Partner domain',
  'federation.test_hint': 'Checks our DNS records and certificate, the partner’s records, a TLS handshake with its server and an OPTIONS ping, with the saved settings.',
  'federation.test_busy': 'Testing federation…',
  'federation.test_ok': 'Federation with this domain should work',
  'federation.test_failed': 'Federation with this domain will not work yet',
  'federation.test_error': 'The federation test could not run: {detail}',
  'proxy.test': 'Test connection',
  'proxy.test_busy': 'Testing the connection…',
  'proxy.test_hint': 'Tests the proxy values currently in this form, also before you save them, by contacting the license server.',
  'proxy.test_ok': 'Connection test succeeded',
  'proxy.test_failed': 'Connection test failed',
  'proxy.test_stage': 'Stage: {stage}',
  'proxy.test_http': 'HTTP status: {status}',
  'proxy.test_elapsed': '{ms} ms',
  'proxy.test_error': 'The connection test could not run: {detail}',

  'rp.heading': 'Reverse proxy',
  'rp.intro': 'Forward these external URLs to atriumd in your reverse proxy. The list follows the saved settings.',
  'rp.feature.mobile.app': 'Mobile app',
  'rp.feature.mobile.webapi': 'Web API for telephony in the mobile app',
  'rp.feature.um': 'UM settings',
  'rp.feature.meeting': 'Web meeting',
  'rp.feature.docs': 'Online documentation',
  'rp.copy': 'Copy',
  'rp.copy_label': 'Copy the URL of {what}',
  'rp.copied': 'Copied to the clipboard: {url}',
  'rp.selected': 'The URL {url} is selected: press Ctrl+C to copy it.',
  'rp.path': 'Path',
  'rp.upstream': 'Forward to',
  'rp.websocket': 'WebSocket',
  'rp.ws_yes': 'yes, at',
  'rp.ws_no': 'no',
  'rp.empty.mobile': 'Nothing to forward yet: the mobile app and the telephony web API are published once their URLs are set above and saved.',
  'rp.empty.um': 'Nothing to forward.',
  'rp.empty.meeting': 'Nothing to forward: web meetings are switched off. Switch on “Web meeting” above and save.',
  'rp.empty.docs': 'Nothing to forward: the online documentation is not served by this server (its URL points elsewhere).',
  'rp.conflict': '{url}: {a} and {b} are published at the same host, port and path. Give one of them another URL.',
  'rp.notes.one': '1 note on the reverse proxy under Server address',
  'rp.notes.other': '{n} notes on the reverse proxy under Server address',
  'rp.nginx': 'Download nginx configuration',
  'rp.nginx_busy': 'Generating the configuration…',
  'rp.nginx_done': 'Downloaded {file}: include it in nginx’s http block, fill in the certificate paths, then run nginx -t.',
  'rp.nginx_failed': 'The nginx configuration could not be generated: {detail}',
  'rp.failed': 'The reverse-proxy list could not be loaded: {detail}',
  'rp.overview': 'Reverse proxy',
  'rp.overview_intro': 'How the reverse proxy reaches atriumd. The URLs to forward are listed under Mobile App, UM Settings, Web meeting and Online documentation.',
  'rp.upstream_atriumd': 'atriumd (upstream)',
  'rp.guessed': '(guessed: atriumd listens on every interface)',
  'rp.trusted': 'Trusted proxies (atlas.xml)',
  'rp.trusted_none': 'none',
  'rp.count_label': 'Published',
  'rp.count.one': '1 URL',
  'rp.count.other': '{n} URLs',

  'privacy.heading': 'Privacy policy',
  'privacy.intro': 'Guests see this privacy policy on the web meeting page, in their browser’s language. {RetentionTime} in the template becomes the retention time: the larger of IMDeleteAfterDays and JournalDeleteAfterDays in atlas.xml.',
  'privacy.retention': 'Retention time',
  'privacy.days.one': '1 day',
  'privacy.days.other': '{n} days',
  'privacy.retention_unknown': 'could not be determined ({why})',
  'privacy.dirs': 'Templates: {install}. Customised copies in {custom} take precedence; {command} copies the templates there for editing.',
  'privacy.lang.en': 'English',
  'privacy.lang.de': 'German',
  'privacy.source.install': 'installed template',
  'privacy.source.custom': 'customised copy',
  'privacy.source.missing': 'missing',
  'privacy.source.unreadable': 'unreadable',
  'privacy.preview': 'Preview privacy policy',
  'privacy.dialog_title': 'Privacy policy preview',
  'privacy.policy_label': 'The policy as guests see it',
  'privacy.loading': 'Loading the privacy policy…',
  'privacy.failed': 'No preview: {detail}',
  'privacy.language': 'Language',
  'privacy.template': 'Template',

  'audit.heading': 'Audit log',
  'audit.intro': 'Every change of a setting, newest first. Passwords are never shown.',
  'audit.caption': 'Setting changes',
  'audit.time': 'Time',
  'audit.actor': 'Changed by',
  'audit.key': 'Setting',
  'audit.old': 'Old value',
  'audit.new': 'New value',
  'audit.empty': 'No changes have been recorded yet.',
  'audit.range': 'Entries {from}–{to} of {total}',
  'audit.prev': 'Previous page',
  'audit.next': 'Next page',
  'audit.refresh': 'Refresh',
  'audit.loading': 'Loading the audit log…',
  'audit.failed': 'The audit log could not be loaded: {detail}',
  'audit.pages': 'Pages',
  'value.blank': '(blank)',
  'value.default': '(default)',
  'value.hidden': '(hidden)',
};

// Names of enum values that are not words.
const choicesEn = {
  'proxy.auth_method': { basic: 'Basic', digest: 'Digest', ntlm: 'NTLM', negotiate: 'Negotiate (Kerberos)' },
};

const schemaKeys = new Map();
const sectionTitles = new Map();

/** Makes the schema's English labels, help and section titles known. */
export function setSchema(schema) {
  schemaKeys.clear();
  sectionTitles.clear();
  for (const s of schema.settings ?? []) schemaKeys.set(s.key, s);
  for (const s of schema.sections ?? []) sectionTitles.set(s.id, s.title);
}

function schemaText(kind, id, value, lang) {
  if (kind === 'section') {
    return (lang === 'de' ? de.sections[id] : undefined) ?? sectionTitles.get(id) ?? id;
  }
  if (kind === 'choice') {
    const d = lang === 'de' ? de.choices[id]?.[value] : undefined;
    return d ?? choicesEn[id]?.[value] ?? value;
  }
  const entry = lang === 'de' ? de.settings[id] : undefined;
  const def = schemaKeys.get(id);
  if (kind === 'label') return entry?.label ?? def?.label ?? id;
  if (kind === 'help') return entry?.help ?? def?.help ?? '';
  return id;
}

/** t(key): a UI key; "@label:key", "@help:key", "@section:id" and
 * "@choice:key:value" name schema texts. */
const i18n = createI18n({
  storageKey: 'atrium.lang',
  lookup(key, lang) {
    if (key.startsWith('@')) {
      const [kind, id, value] = key.slice(1).split(':');
      return schemaText(kind, id, value, lang);
    }
    return (lang === 'de' ? de.ui[key] : undefined) ?? en[key] ?? key;
  },
});

export { LANGUAGES };
export const { t, tn, bindText, bindPlural, bindAttr, retranslate, initLanguage, language,
  setLanguage, onLanguageChange } = i18n;

/** The English UI table, for the test that every text has a German one. */
export const englishUi = en;
