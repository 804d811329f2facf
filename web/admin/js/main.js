// Start-up: language, session, the views (login, System settings, Users,
// Status, audit log) and the routes between them (#/settings, #/users,
// #/status, #/audit).
import * as api from './api.js';
import { createAuditPage } from './audit.js';
import { h } from './dom.js';
import { LANGUAGES, bindAttr, bindText, initLanguage, language, retranslate, setLanguage } from './i18n.js';
import { createLoginView } from './login.js';
import { createSettingsPage } from './settings-page.js';
import { createStatusPage } from './status-page.js';
import { createUsersPage } from './users-page.js';

initLanguage();

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');

// ---- the top bar ----------------------------------------------------------------

const navSettings = bindText(h('a', { href: '#/settings', id: 'nav-settings' }), 'nav.settings');
const navUsers = bindText(h('a', { href: '#/users', id: 'nav-users' }), 'nav.users');
const navStatus = bindText(h('a', { href: '#/status', id: 'nav-status' }), 'nav.status');
const navAudit = bindText(h('a', { href: '#/audit', id: 'nav-audit' }), 'nav.audit');
const nav = h('nav', { class: 'mainnav', id: 'mainnav', hidden: true },
  h('ul', {}, h('li', {}, navSettings), h('li', {}, navUsers), h('li', {}, navStatus), h('li', {}, navAudit)));
const langSelect = h('select', { id: 'lang-select' },
  ...LANGUAGES.map((l) => h('option', { value: l.code, lang: l.code }, l.name)));
langSelect.value = language();
langSelect.addEventListener('change', () => setLanguage(langSelect.value));
const who = h('span', { class: 'who', id: 'who' });
const logoutBtn = bindText(h('button', { type: 'button', class: 'secondary small', id: 'logout-button' }), 'logout');
const userBox = h('div', { class: 'userbox', hidden: true }, who, logoutBtn);
topbar.append(
  bindText(h('a', { class: 'skip', href: '#main' }), 'app.skip'),
  h('span', { class: 'brand' }, h('img', { src: 'favicon.svg', alt: '', width: 24, height: 24 }),
    bindText(h('span'), 'app.brand')),
  nav,
  h('div', { class: 'tools' },
    h('div', { class: 'lang' }, bindText(h('label', { for: 'lang-select' }), 'lang.label'), langSelect),
    userBox));
bindAttr(nav, 'aria-label', 'nav.label');

// ---- views ------------------------------------------------------------------------

const settingsPage = createSettingsPage();
const usersPage = createUsersPage();
const statusPage = createStatusPage();
const auditPage = createAuditPage();
const login = createLoginView({ onLoggedIn: startApp });
main.append(login.element, settingsPage.element, usersPage.element, statusPage.element, auditPage.element);

let signedIn = false;
let expiryTimer = null;

function showLogin(noticeKey) {
  signedIn = false;
  clearTimeout(expiryTimer);
  settingsPage.element.hidden = true;
  auditPage.element.hidden = true;
  usersPage.element.hidden = true;
  statusPage.element.hidden = true;
  statusPage.hide();
  nav.hidden = true;
  userBox.hidden = true;
  login.show(noticeKey);
}

function watchExpiry(expires) {
  clearTimeout(expiryTimer);
  const at = Date.parse(expires ?? '');
  if (Number.isNaN(at)) return;
  // Ask the server at the expiry time; a 401 brings the login page back.
  const wait = Math.min(Math.max(at - Date.now() + 1000, 1000), 2 ** 31 - 1);
  expiryTimer = setTimeout(async () => {
    const r = await api.session.get();
    if (r.status === 200) { api.setCsrf(r.json.csrf); watchExpiry(r.json.expires_at ?? r.json.expires); }
    else if (r.status === 401) showLogin('login.expired');
  }, wait);
}

async function startApp({ user, expires }) {
  signedIn = true;
  bindText(who, 'user.signed_in', { user });
  watchExpiry(expires);
  login.hide();
  nav.hidden = false;
  userBox.hidden = false;
  if (!settingsPage.loaded()) await settingsPage.load();
  route(true);
}

const views = [
  { hash: '#/settings', page: settingsPage, nav: navSettings },
  { hash: '#/users', page: usersPage, nav: navUsers },
  { hash: '#/status', page: statusPage, nav: navStatus },
  { hash: '#/audit', page: auditPage, nav: navAudit },
];

function route(focus) {
  if (!signedIn) return;
  // Anything that is not another route is the settings (the start page).
  const current = views.find((v) => v.hash === location.hash) ?? views[0];
  for (const v of views) {
    v.page.element.hidden = v !== current;
    if (v === current) v.nav.setAttribute('aria-current', 'page');
    else v.nav.removeAttribute('aria-current');
  }
  if (current.page !== statusPage) statusPage.hide();
  if (current.page.show) current.page.show();
  if (focus) current.page.focus();
}

window.addEventListener('hashchange', () => {
  // In-page anchors (#main, #sec-proxy) are not routes.
  if (location.hash === '' || location.hash.startsWith('#/')) route(true);
});

logoutBtn.addEventListener('click', async () => {
  await api.session.logout();
  api.setCsrf(null);
  showLogin('login.logged_out');
});

api.onUnauthorized(() => { if (signedIn) showLogin('login.expired'); });

window.addEventListener('beforeunload', (ev) => {
  if (signedIn && settingsPage.hasChanges()) {
    ev.preventDefault();
    ev.returnValue = '';
  }
});

retranslate(document);

const r = await api.session.get();
if (r.status === 200 && r.json?.csrf) {
  api.setCsrf(r.json.csrf);
  await startApp({ user: r.json.login ?? r.json.user, expires: r.json.expires_at ?? r.json.expires });
} else {
  showLogin(null);
}
document.body.classList.add('ready');
