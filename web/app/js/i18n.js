// UI texts in English and German (i18n/de.js). Sentences from the server
// (problem details, error frames) are shown as they come.
//
// Elements are bound to a text key with bindText/bindAttr, so that switching
// the language re-translates the page in place, without losing what was typed.
import { LANGUAGES, createI18n } from '../common/i18n.js';
import * as de from '../i18n/de.js';

const en = {
  'app.title': 'Atrium',
  'app.brand': 'Atrium',
  'app.skip': 'Skip to content',
  'nav.label': 'Views',
  'nav.chats': 'Chats',
  'nav.journal': 'Journal',
  'lang.label': 'Language',
  'user.signed_in': 'Signed in as {user}',
  'logout': 'Log out',
  'net.unreachable': 'The server cannot be reached.',
  'net.timeout': 'The server did not answer in time.',

  'login.heading': 'Log in',
  'login.intro': 'Chat and presence on this Atrium server.',
  'login.user': 'Login name',
  'login.user_hint': 'name@domain, or just your name.',
  'login.password': 'Password',
  'login.submit': 'Log in',
  'login.busy': 'Logging in…',
  'login.or': 'or',
  'login.auto': 'Log in automatically',
  'login.auto_hint': 'With your Windows (Kerberos) login, where this server is set up for it.',
  'login.auto_busy': 'Logging in automatically…',
  'login.failed': 'Login failed: {detail}',
  'login.auto_failed': 'Automatic login failed: {detail}',
  'login.missing_user': 'Enter your login name.',
  'login.missing_password': 'Enter your password.',
  'login.logged_out': 'You have logged out.',
  'login.expired': 'Your login has ended. Log in again.',
  'login.domain_changed': 'The server’s address changed. Log in again with your new login name.',
  'login.signed_out': 'You were signed out.',
  'login.disabled': 'Your account was disabled. Ask your administrator.',
  'login.deleted': 'Your account was deleted.',

  'conn.connecting': 'Connecting…',
  'conn.open': 'Connected',
  'conn.waiting': 'Not connected. Trying again in a moment…',
  'conn.waiting_detail': 'Not connected ({detail}). Trying again in a moment…',
  'conn.shutdown': 'The server is restarting. Reconnecting in a moment…',
  'conn.idle': 'The connection was idle. Reconnecting…',
  'conn.domain_changed': 'The server’s address changed. Reconnecting…',
  'conn.retry': 'Try now',

  'state.available': 'Available',
  'state.away': 'Away',
  'state.busy': 'Busy',
  'state.dnd': 'Do not disturb',
  'state.offline': 'Offline',
  'me.label': 'Your presence',
  'me.state': 'Your status',
  'me.note': 'Status note',
  'me.note_save': 'Set note',
  'me.auto_away': 'Away (no input for 10 minutes)',
  'me.note_too_long': 'The note is too long: at most 256 bytes.',
  'me.failed': 'Your presence was not changed: {detail}',
  'me.saved': 'Your presence is now: {state}.',

  'watchers.heading': 'Requests from other organisations',
  'watchers.hint': 'They want to see your presence. Until you allow it, they see nothing.',
  'watchers.allow': 'Allow',
  'watchers.decline': 'Decline',
  'watchers.allowed': '{address} may now see your presence.',
  'watchers.declined': '{address} will not see your presence.',
  'watchers.failed': 'Your answer to {address} was not saved: {detail}',

  'contacts.heading': 'Contacts',
  'contacts.loading': 'Loading your contacts…',
  'contacts.empty': 'You have no contacts yet. Find people below to add them.',
  'contacts.failed': 'Your contacts could not be loaded: {detail}',
  'contacts.list': 'Your contacts',
  'contacts.others': 'Other conversations',
  'contacts.remove_label': 'Remove {name} from your contacts',
  'contacts.removed': '{name} was removed from your contacts.',
  'contacts.undo': 'Undo',
  'contacts.remove_failed': '{name} was not removed: {detail}',
  'contacts.add_this': 'Add to contacts',
  'contacts.add_label': 'Add {name} to your contacts',
  'contacts.added': '{name} was added to your contacts.',
  'contacts.add_failed': '{name} was not added: {detail}',
  'contacts.unread.one': '1 unread message',
  'contacts.unread.other': '{n} unread messages',
  'contacts.federated': 'other server',

  'search.heading': 'Add a contact',
  'search.label': 'Find people',
  'search.hint': 'Name, display name or Windows account; or a full address on another server.',
  'search.submit': 'Search',
  'search.busy': 'Searching…',
  'search.none': 'Nobody found for “{q}”.',
  'search.results.one': '1 person found.',
  'search.results.other': '{n} people found.',
  'search.failed': 'The search failed: {detail}',
  'search.add': 'Add',
  'search.in_list': 'In your contacts',
  'search.add_address': 'Add {address}',
  'search.you': 'This is you',

  'welcome.heading': 'Welcome',
  'welcome.text': 'Choose a contact to chat with.',

  'chat.back': 'Contacts',
  'chat.back_label': 'Back to your contacts',
  'chat.messages': 'Messages with {name}',
  'chat.loading': 'Loading the conversation…',
  'chat.load_failed': 'The conversation could not be loaded: {detail}',
  'chat.earlier': 'Load earlier messages',
  'chat.earlier_busy': 'Loading…',
  'chat.beginning': 'This is the beginning of your conversation.',
  'chat.empty': 'No messages yet. Say hello!',
  'chat.composer': 'Message to {name}',
  'chat.composer_hint': 'Enter sends, Shift+Enter starts a new line.',
  'chat.send': 'Send',
  'chat.you': 'You',
  'chat.typing': '{name} is typing…',
  'chat.too_long': 'The message is too long: at most 16 KiB.',
  'chat.not_connected': 'Not connected: the message was not sent. Try again when the connection is back.',
  'chat.lost': 'Not confirmed: the connection was lost before the server answered.',
  'chat.no_answer': 'Not confirmed: the server did not answer in time.',
  'chat.retry': 'Send again',
  'chat.retry_label': 'Send this message again',
  'mark.pending': 'Sending',
  'mark.sent': 'Sent',
  'mark.delivered': 'Delivered',
  'mark.read': 'Read',
  'mark.failed': 'Not sent',
  'announce.message': 'New message from {name}: {text}',

  'journal.heading': 'Journal',
  'journal.intro': 'Your chats, calls and meetings, newest first.',
  'journal.loading': 'Loading the journal…',
  'journal.failed': 'The journal could not be loaded: {detail}',
  'journal.empty': 'The journal is empty.',
  'journal.more': 'Load older entries',
  'journal.more_busy': 'Loading…',
  'journal.end': 'No older entries.',
  'journal.chat': 'Chat',
  'journal.call': 'Call',
  'journal.meeting': 'Meeting',
  'journal.in': 'incoming',
  'journal.out': 'outgoing',
  'journal.missed': 'missed',
  'journal.not_answered': 'not answered',
  'journal.messages.one': '1 message',
  'journal.messages.other': '{n} messages',
  'journal.duration': 'Duration {d}',

  'time.yesterday': 'Yesterday',

  'nav.meetings': 'Meetings',
  'meetings.heading': 'Web meetings',
  'meetings.intro': 'Create a meeting and send its link; guests wait in the lobby until you admit them.',
  'meetings.title': 'Title',
  'meetings.start': 'Start (optional)',
  'meetings.invitees': 'Invite users',
  'meetings.invitees_hint': 'Names or IM addresses, separated by commas; each gets the link as a chat from you.',
  'meetings.create': 'Create meeting',
  'meetings.created': 'The meeting "{title}" is ready.',
  'meetings.link': 'Send this link to the participants:',
  'meetings.open': 'Open as host',
  'meetings.yours': 'Your meetings',
  'meetings.ended': 'ended',
  'meetings.failed': 'The meeting could not be created or opened: {detail}',

  'nav.profile': 'Profile',
  'profile.heading': 'Your profile',
  'profile.upload': 'Upload a picture…',
  'profile.remove': 'Remove picture',
  'profile.hint': 'A JPEG or PNG of at most 512 KiB, at least 32 × 32 pixels. The middle square is shown to others beside your name.',
  'profile.uploading': 'Uploading the picture…',
  'profile.saved': 'Your picture is saved.',
  'profile.removed': 'Your picture is removed; others see your initials.',
  'profile.too_big': 'The file is {kib} KiB; a picture may have at most 512 KiB.',
  'profile.failed': 'The picture was not saved: {detail}',
};

const i18n = createI18n({
  storageKey: 'atrium.app.lang',
  lookup: (key, lang) => (lang === 'de' ? de.ui[key] : undefined) ?? en[key] ?? key,
});

export { LANGUAGES };
export const { t, tn, bindText, bindPlural, bindAttr, unbindText, retranslate, setTitle,
  initLanguage, language, setLanguage, onLanguageChange } = i18n;

// ---- dates and times ------------------------------------------------------------

function locale() { return language() === 'de' ? 'de-DE' : 'en-GB'; }

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "14:03" today, "Yesterday 14:03", else "1 Dec 2026, 14:03". */
export function formatTime(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return '';
  const clock = d.toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit' });
  const now = new Date();
  if (sameDay(d, now)) return clock;
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return `${t('time.yesterday')} ${clock}`;
  const date = d.toLocaleDateString(locale(), { day: 'numeric', month: 'short', year: 'numeric' });
  return `${date}, ${clock}`;
}

/** The full date and time, for a title. */
export function formatFull(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(locale(), { dateStyle: 'full', timeStyle: 'medium' });
}

/** Seconds as "0:42", "12:05" or "1:02:05". */
export function formatDuration(s) {
  const n = Math.max(0, Math.round(Number(s) || 0));
  const hh = Math.floor(n / 3600), mm = Math.floor((n % 3600) / 60), ss = n % 60;
  const p2 = (x) => String(x).padStart(2, '0');
  return hh ? `${hh}:${p2(mm)}:${p2(ss)}` : `${mm}:${p2(ss)}`;
}

/** The English UI table, for the test that every text has a German one. */
export const englishUi = en;
