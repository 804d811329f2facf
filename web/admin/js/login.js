// The login page. The session cookie is HttpOnly; the CSRF token from the
// reply goes with every change the page makes.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText } from './i18n.js';

export function createLoginView({ onLoggedIn }) {
  const heading = bindText(h('h1', { id: 'login-heading', tabindex: '-1' }), 'login.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'login.intro');
  const notice = h('p', { class: 'notice', id: 'login-notice', role: 'status' });
  const user = h('input', { type: 'text', id: 'login-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'off', spellcheck: 'false' });
  const password = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', id: 'login-error', role: 'alert', hidden: true });
  const submit = bindText(h('button', { type: 'submit', class: 'primary', id: 'login-submit' }), 'login.submit');
  const form = h('form', { class: 'login-form', novalidate: true, 'aria-labelledby': 'login-heading' },
    h('div', { class: 'field' }, bindText(h('label', { for: 'login-user' }), 'login.user'), user),
    h('div', { class: 'field' }, bindText(h('label', { for: 'login-password' }), 'login.password'), password),
    error, h('div', { class: 'buttons' }, submit));
  const element = h('section', { class: 'view login-view', id: 'view-login', hidden: true },
    h('div', { class: 'login-card' }, heading, intro, notice, form));
  let busy = false;

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
    if (!user.value.trim()) { user.focus(); return; }
    if (!password.value) { password.focus(); return; }
    busy = true;
    submit.disabled = true;
    bindText(submit, 'login.busy');
    error.hidden = true;
    const r = await api.session.login(user.value.trim(), password.value);
    busy = false;
    submit.disabled = false;
    bindText(submit, 'login.submit');
    if (r.status === 200 && r.json?.csrf) {
      password.value = '';
      api.setCsrf(r.json.csrf);
      await onLoggedIn({ user: r.json.login ?? user.value.trim(), expires: r.json.expires_at ?? r.json.expires });
      return;
    }
    const detail = r.status === 0 ? api.problemText(r) : api.problemText(r);
    bindText(error, 'login.failed', { detail });
    error.hidden = false;
    password.select();
    password.focus();
  });

  return {
    element,
    show(noticeKey) {
      if (noticeKey) bindText(notice, noticeKey);
      else notice.textContent = '';
      notice.hidden = !noticeKey;
      error.hidden = true;
      element.hidden = false;
      (user.value ? password : user).focus();
    },
    hide() { element.hidden = true; },
  };
}
