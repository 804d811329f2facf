// The REST API as the page uses it: the session cookie authenticates, the
// CSRF token from the login (or GET /api/v1/session) goes with every change.
// Calls resolve to {status, json, text, headers}; status 0 means the server was not
// reached. A 401 anywhere but the login means the session has ended.

const BASE = new URL('../api/v1', document.baseURI).pathname;
const TIMEOUT_MS = 30000;

let csrf = null;
let unauthorized = () => {};

export function setCsrf(token) { csrf = token || null; }
export function onUnauthorized(fn) { unauthorized = fn; }

/** `raw`: bytes or text (a File, an import's CSV) sent as they are, typed by `contentType`. */
export async function call(method, path, { body, raw, contentType, headers = {}, timeoutMs = TIMEOUT_MS, expect401 = false } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  // A file as it is (an import's CSV or JSON), with its own type.
  if (raw !== undefined && contentType) h['Content-Type'] = contentType;
  if (csrf && !['GET', 'HEAD'].includes(method)) h['X-CSRF-Token'] = csrf;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      headers: h,
      body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: ac.signal,
    });
  } catch (e) {
    clearTimeout(timer);
    const detail = e.name === 'AbortError' ? `no answer within ${timeoutMs / 1000} s` : e.message;
    return { status: 0, json: { detail }, headers: new Headers() };
  }
  let text = '';
  try { text = await res.text(); } catch { /* connection lost */ } finally { clearTimeout(timer); }
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = { detail: text.slice(0, 200) }; }
  if (res.status === 401 && !expect401) unauthorized(json);
  return { status: res.status, json, text, headers: res.headers };
}

/** The sentence to show for a failed call. */
export function problemText(r) {
  return r?.json?.detail || r?.json?.title || `HTTP ${r?.status}`;
}

export const session = {
  get: () => call('GET', '/session', { expect401: true }),
  login: (login, password) => call('POST', '/session', { body: { login, password }, expect401: true }),
  logout: () => call('DELETE', '/session', { expect401: true }),
};

export const settings = {
  schema: () => call('GET', '/settings/schema'),
  get: () => call('GET', '/settings'),
  patch: (changes, version) => call('PATCH', '/settings', { body: changes, headers: { 'If-Match': `"${version}"` } }),
};

/** filters: {actor, key, action, since, until}, each optional (RFC 3339 times). */
export const audit = (offset, limit, filters = {}) => {
  const q = new URLSearchParams({ offset, limit });
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  return call('GET', `/audit?${q}`);
};
export const domainChange = (domain, dryRun) => call('POST', '/domain/change', { body: { domain, dry_run: dryRun }, timeoutMs: 120000 });
export const proxyTest = (values) => call('POST', '/proxy/test', { body: values, timeoutMs: 90000 });
export const pushTest = (body) => call('POST', '/push/test', { body, timeoutMs: 90000 });
export const federationTest = (domain) => call('POST', '/federation/test', { body: { domain }, timeoutMs: 60000 });
export const reverseProxy = () => call('GET', '/reverse-proxy');
/** The nginx configuration as text (r.text); errors are problem documents (r.json). */
export const reverseProxyNginx = () => call('GET', '/reverse-proxy/nginx', { headers: { Accept: 'text/plain, application/problem+json' } });
export const privacyInfo = () => call('GET', '/privacy');
export const privacyPreview = (lang) => call('GET', `/privacy/preview?lang=${encodeURIComponent(lang)}`);

/** The directory's users (docs/directory.md): one page of a search, one
 * user with devices and sessions, and the changes. */
const userPath = (name) => `/users/${encodeURIComponent(name)}`;
export const users = {
  list: (q, offset, limit) => call('GET', `/users?${new URLSearchParams({ ...(q ? { q } : {}), offset, limit })}`),
  get: (name) => call('GET', userPath(name)),
  create: (doc) => call('POST', '/users', { body: doc }),
  update: (name, changes) => call('PATCH', userPath(name), { body: changes }),
  remove: (name) => call('DELETE', userPath(name)),
  signOut: (name) => call('POST', `${userPath(name)}/sign-out`),
  /** text: the file's contents; csv: true for CSV, else a JSON array. */
  import: (text, csv) => call('POST', '/users/import', {
    raw: text, contentType: csv ? 'text/csv; charset=utf-8' : 'application/json', timeoutMs: 600000,
  }),
  /** An import job's URL (Location or "job") as the server gave it. */
  job: (url) => call('GET', String(url).replace(/^.*\/api\/v1(?=\/)/, '')),
};
