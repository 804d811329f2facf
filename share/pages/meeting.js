// Web meeting guest registration: the guest gives a name and accepts the
// privacy policy; the page then opens the meeting's WebSocket (relative to
// the page, so it follows the published URL) and waits there. The meeting
// itself is not part of this server yet: the socket only confirms the
// registration.
const $ = (id) => document.getElementById(id);

$('register').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const status = $('status');
  if (!f.consent.checked) {
    status.className = 'error';
    status.textContent = f.dataset.needConsent;
    return;
  }
  const url = new URL('ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url);
  const hello = { type: 'register', name: f.name.value.trim(), email: f.email.value.trim() };
  ws.addEventListener('open', () => ws.send(JSON.stringify(hello)));
  ws.addEventListener('message', (m) => {
    let msg = {};
    try { msg = JSON.parse(m.data); } catch { /* ignore */ }
    status.className = 'status';
    status.textContent = `${f.dataset.registered} ${msg.name || hello.name}`;
  });
  ws.addEventListener('error', () => {
    status.className = 'error';
    status.textContent = f.dataset.failed;
  });
});
