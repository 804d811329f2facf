// The user's profile: their picture (upload a JPEG or PNG, or remove it),
// as others see it beside the name. The server crops and scales it; what it
// refuses comes back as a sentence, shown here as it comes.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText, t } from './i18n.js';
import { createAvatar, refresh } from './pictures.js';

const MAX_BYTES = 512 * 1024;

export function createProfileView({ announce }) {
  const heading = bindText(h('h2', { id: 'profile-heading', tabindex: '-1' }), 'profile.heading');
  const holder = h('div', { class: 'profile-picture', id: 'profile-picture' });
  const name = h('p', { class: 'profile-name', id: 'profile-name' });
  const file = h('input', { type: 'file', id: 'picture-file', accept: 'image/jpeg,image/png' });
  const fileLabel = h('label', { for: 'picture-file', class: 'button-like' }, bindText(h('span'), 'profile.upload'));
  const remove = bindText(h('button', { type: 'button', class: 'secondary', id: 'picture-remove', hidden: true }), 'profile.remove');
  const status = h('p', { class: 'status', id: 'profile-status', role: 'status' });
  const element = h('section', { class: 'view profile-view', id: 'view-profile', 'aria-labelledby': 'profile-heading', hidden: true },
    h('div', { class: 'journal-scroll' }, heading,
      h('div', { class: 'profile-card' }, holder, name),
      bindText(h('p', { class: 'hint', id: 'picture-hint' }), 'profile.hint'),
      h('p', { class: 'profile-actions' }, file, fileLabel, ' ', remove), status));
  file.setAttribute('aria-describedby', 'picture-hint');

  let me = null;
  let avatar = null;

  function draw() {
    avatar?.drop();
    holder.replaceChildren();
    if (!me) return;
    avatar = createAvatar(me.login, me.display_name, { extraClass: 'large' });
    holder.append(avatar.element);
    name.textContent = me.display_name ? `${me.display_name} (${me.login})` : me.login;
    remove.hidden = !me.picture;
  }

  async function load() {
    const r = await api.me();
    if (r.status === 200) { me = r.json; draw(); }
  }

  function say(key, vars, error = false) {
    bindText(status, key, vars);
    status.className = error ? 'status error' : 'status';
    announce?.(t(key, vars));
  }

  file.addEventListener('change', async () => {
    const f = file.files?.[0];
    file.value = '';
    if (!f) return;
    // The server says the same; saying it here saves sending 5 MB for nothing.
    if (f.size > MAX_BYTES) { say('profile.too_big', { kib: Math.ceil(f.size / 1024) }, true); return; }
    say('profile.uploading');
    const r = await api.uploadPicture(f);
    if (r.status !== 200) { say('profile.failed', { detail: api.problemText(r) ?? t('net.unreachable') }, true); return; }
    me = r.json;
    refresh(me.login);
    draw();
    say('profile.saved');
  });

  remove.addEventListener('click', async () => {
    const r = await api.removePicture();
    if (r.status !== 200) { say('profile.failed', { detail: api.problemText(r) ?? t('net.unreachable') }, true); return; }
    me = r.json;
    refresh(me.login);
    draw();
    say('profile.removed');
  });

  return {
    element,
    show({ focus } = {}) { element.hidden = false; load(); if (focus) heading.focus(); },
    hide() { element.hidden = true; },
    reset() { avatar?.drop(); avatar = null; me = null; holder.replaceChildren(); name.textContent = ''; status.textContent = ''; },
  };
}
