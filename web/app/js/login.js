// The login page: login name and password, or the automatic (Kerberos)
// login. A refused login keeps the form and shows the server's sentence.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText, t } from './i18n.js';

export function createLoginView({ onLoggedIn }) {
  const heading = bindText(h('h1', { id: 'login-heading', tabindex: '-1' }), 'login.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'login.intro');
  const notice = h('p', { class: 'notice', id: 'login-notice', role: 'status' });
  const user = h('input', { type: 'text', id: 'login-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'off', spellcheck: 'false', 'aria-describedby': 'login-user-hint' });
  const password = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', id: 'login-error', role: 'alert', hidden: true });
  const submit = bindText(h('button', { type: 'submit', class: 'primary', id: 'login-submit' }), 'login.submit');
  const auto = bindText(h('button', { type: 'button', class: 'secondary', id: 'login-auto', 'aria-describedby': 'login-auto-hint' }), 'login.auto');
  const form = h('form', { class: 'login-form', novalidate: true, 'aria-labelledby': 'login-heading' },
    h('div', { class: 'field' }, bindText(h('label', { for: 'login-user' }), 'login.user'), user,
      bindText(h('p', { class: 'hint', id: 'login-user-hint' }), 'login.user_hint')),
    h('div', { class: 'field' }, bindText(h('label', { for: 'login-password' }), 'login.password'), password),
    error, h('div', { class: 'buttons' }, submit));
  const autoBox = h('div', { class: 'login-auto' },
    bindText(h('p', { class: 'or' }), 'login.or'),
    auto, bindText(h('p', { class: 'hint', id: 'login-auto-hint' }), 'login.auto_hint'));
  const element = h('section', { class: 'view login-view', id: 'view-login', hidden: true, 'aria-labelledby': 'login-heading' },
    h('div', { class: 'login-card' }, heading, intro, notice, form, autoBox));
  let busy = false;

  function showError(key, r) {
    // The server's sentence as it comes; a translated one when it was not reached.
    const netKey = r.json?.timeout ? 'net.timeout' : 'net.unreachable';
    const detail = r.status ? api.problemText(r) : () => t(netKey);
    bindText(error, key, { detail });
    error.hidden = false;
  }

  function setBusy(on, which) {
    busy = on;
    submit.disabled = on;
    auto.disabled = on;
    bindText(submit, on && which === 'password' ? 'login.busy' : 'login.submit');
    bindText(auto, on && which === 'auto' ? 'login.auto_busy' : 'login.auto');
  }

  async function done(r) {
    password.value = '';
    const s = { token: r.json.token, login: r.json.login, expires: r.json.expires_at };
    api.storeSession(s);
    await onLoggedIn(s);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
    error.hidden = true;
    if (!user.value.trim()) { bindText(error, 'login.missing_user'); error.hidden = false; user.focus(); return; }
    if (!password.value) { bindText(error, 'login.missing_password'); error.hidden = false; password.focus(); return; }
    setBusy(true, 'password');
    const r = await api.login(user.value.trim(), password.value);
    setBusy(false);
    if (r.status === 200 && r.json?.token) { await done(r); return; }
    // A login name from before a domain change: the server names the new one.
    if (typeof r.json?.login === 'string' && r.json.login) user.value = r.json.login;
    showError('login.failed', r);
    password.select();
    password.focus();
  });

  auto.addEventListener('click', async () => {
    if (busy) return;
    error.hidden = true;
    setBusy(true, 'auto');
    const r = await api.loginAuto();
    setBusy(false);
    if (r.status === 200 && r.json?.token) { await done(r); return; }
    showError('login.auto_failed', r);
    auto.focus();
  });

  return {
    element,
    show(noticeKey) {
      if (noticeKey) bindText(notice, noticeKey);
      else notice.textContent = '';
      notice.hidden = !noticeKey;
      error.hidden = true;
      setBusy(false);
      element.hidden = false;
      (user.value ? password : user).focus();
    },
    hide() { element.hidden = true; },
  };
}
