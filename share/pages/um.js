// UM settings page: log in with the client login, then show and change the
// voicemail, fax and SMS notification preferences. Every path is relative to
// the page, so that the page works under whatever path the reverse proxy
// publishes it.
const $ = (id) => document.getElementById(id);
const TOKEN = 'atrium-um-token';
const CHANNELS = ['voicemail', 'fax', 'sms'];

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = null;
  try { json = await res.json(); } catch { /* not JSON */ }
  return { status: res.status, json };
}

function showLogin(message) {
  $('prefs').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
}

function fill(doc) {
  $('who').textContent = doc.login;
  for (const ch of CHANNELS) {
    const set = document.querySelector(`fieldset[data-channel="${ch}"]`);
    const p = doc.notifications[ch];
    set.querySelector('[name=notify]').checked = p.notify;
    set.querySelector('[name=email]').value = p.email;
    const attach = set.querySelector('[name=attach]');
    if (attach) attach.checked = p.attach;
  }
  $('login').hidden = true;
  $('prefs').hidden = false;
}

async function load() {
  if (!sessionStorage.getItem(TOKEN)) { showLogin(''); return; }
  const r = await api('GET', 'api/notifications');
  if (r.status === 200) fill(r.json);
  else { sessionStorage.removeItem(TOKEN); showLogin(r.json?.detail); }
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const r = await api('POST', 'api/login', { login: f.login.value, password: f.password.value });
  if (r.status !== 200) { showLogin(r.json?.detail || `Login failed (${r.status}).`); return; }
  sessionStorage.setItem(TOKEN, r.json.token);
  f.password.value = '';
  await load();
});

$('prefs').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = {};
  for (const ch of CHANNELS) {
    const set = document.querySelector(`fieldset[data-channel="${ch}"]`);
    body[ch] = {
      notify: set.querySelector('[name=notify]').checked,
      email: set.querySelector('[name=email]').value.trim(),
    };
    const attach = set.querySelector('[name=attach]');
    if (attach) body[ch].attach = attach.checked;
  }
  const r = await api('PUT', 'api/notifications', body);
  const status = $('status');
  if (r.status === 200) {
    fill(r.json);
    status.className = 'status';
    status.textContent = 'Saved.';
  } else if (r.status === 401) {
    sessionStorage.removeItem(TOKEN);
    showLogin(r.json?.detail);
  } else {
    status.className = 'error';
    const errs = (r.json?.errors || []).map((e) => `${e.key}: ${e.message}`);
    status.textContent = [r.json?.detail, ...errs].filter(Boolean).join(' ');
  }
});

$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN);
  showLogin('');
});

load();
