// The client REST API (/client/v1/...) as the web client uses it. The client
// token from the login goes as a bearer token with every call; it is kept in
// sessionStorage, so it lives as long as this tab and no other site or tab
// can read it.
//
// The API is found relative to the page, so that the client works behind a
// reverse proxy at any path prefix: the page is <prefix>/app/, the API is
// <prefix>/client/v1/. Calls resolve to {status, json, headers}; status 0
// means the server was not reached.

const TIMEOUT_MS = 30000;
const STORAGE_KEY = 'atrium.app.session';

let unauthorized = () => {};
let current = null;

/** Called with the problem document when the server refuses the token. */
export function onUnauthorized(fn) { unauthorized = fn; }

/** The URL of a client API path, resolved against the page's address. */
export function apiUrl(path) {
  return new URL(`../client/v1${path}`, document.baseURI);
}

/** ws(s)://…/client/v1/ws?ticket=…, on the page's own host and prefix. */
export function wsUrl(ticket) {
  const u = apiUrl('/ws');
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.hash = '';
  u.search = `?ticket=${encodeURIComponent(ticket)}`;
  return u.href;
}

// ---- the stored login ---------------------------------------------------------------

/** {token, login, expires (RFC 3339)} or null. */
export function storedSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
    if (s && typeof s.token === 'string' && s.token) return s;
  } catch { /* storage disabled or damaged */ }
  return null;
}

export function storeSession(s) {
  try {
    if (s) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch { /* storage disabled: the login lasts until the page is reloaded */ }
  current = s;
}

function token() {
  if (!current) current = storedSession();
  return current?.token ?? null;
}

// ---- calls ----------------------------------------------------------------------------

export async function call(method, path, { body, auth = true, timeoutMs = TIMEOUT_MS } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const tok = auth ? token() : null;
  if (tok) headers.Authorization = `Bearer ${tok}`;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let res;
  try {
    res = await fetch(apiUrl(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: ac.signal,
    });
  } catch (e) {
    clearTimeout(timer);
    return { status: 0, json: { detail: e.name === 'AbortError' ? null : e.message, timeout: e.name === 'AbortError' }, headers: new Headers() };
  }
  let text = '';
  try { text = await res.text(); } catch { /* connection lost */ } finally { clearTimeout(timer); }
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = { detail: text.slice(0, 200) }; }
  if (res.status === 401 && auth && tok) unauthorized(json);
  return { status: res.status, json, headers: res.headers };
}

/** The server's sentence for a failed call (shown as it comes), or null
 * when the server was not reached or said nothing. */
export function problemText(r) {
  return r?.json?.detail || r?.json?.title || (r?.status ? `HTTP ${r.status}` : null);
}

const enc = encodeURIComponent;

export const login = (name, password) =>
  call('POST', '/login', { body: { login: name, password }, auth: false });
// The browser answers the server's "WWW-Authenticate: Negotiate" by itself
// where Kerberos is set up for this site (integrated Windows login).
export const loginAuto = () => call('POST', '/login/auto', { auth: false });
// The user document (display name); not part of the real-time contract.
export const me = () => call('GET', '/me');
// Revokes this browser's token on the server, not only here.
export const logout = () => call('DELETE', '/login');
export const wsTicket = () => call('POST', '/ws-ticket', { timeoutMs: 15000 });
export const contacts = () => call('GET', '/contacts');
export const searchDirectory = (q, limit = 20) => call('GET', `/contacts?q=${enc(q)}&limit=${limit}`);
export const addContact = (address) => call('PUT', `/contacts/${enc(address)}`);
export const removeContact = (address) => call('DELETE', `/contacts/${enc(address)}`);
export function messages(peer, { before, limit = 50 } = {}) {
  let q = `/messages?with=${enc(peer)}&limit=${limit}`;
  if (before) q += `&before=${enc(before)}`;
  return call('GET', q);
}
/** GET /users/{name}/picture as a Response (null when the server was not
 * reached): revalidated against the browser's copy by its ETag. */
export async function fetchPicture(name) {
  const tok = token();
  try {
    return await fetch(apiUrl(`/users/${enc(name)}/picture`), {
      headers: tok ? { Authorization: `Bearer ${tok}` } : {},
      credentials: 'same-origin',
      cache: 'no-cache',
    });
  } catch { return null; }
}
/** PUT /me/picture with the file's bytes (JPEG or PNG). */
export async function uploadPicture(file) {
  const headers = { Accept: 'application/json', 'Content-Type': file.type || 'application/octet-stream' };
  const tok = token();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  try {
    const res = await fetch(apiUrl('/me/picture'), { method: 'PUT', headers, body: file, credentials: 'same-origin', cache: 'no-store' });
    let json = null;
    try { json = await res.json(); } catch { /* no body */ }
    if (res.status === 401 && tok) unauthorized(json);
    return { status: res.status, json, headers: res.headers };
  } catch (e) {
    return { status: 0, json: { detail: e.message }, headers: new Headers() };
  }
}
export const removePicture = () => call('DELETE', '/me/picture');
export function journal({ before, limit = 50 } = {}) {
  let q = `/journal?limit=${limit}`;
  if (before !== undefined && before !== null) q += `&before=${enc(before)}`;
  return call('GET', q);
}
