// Profile pictures: the user's own (upload, remove) and everyone's small
// round picture beside their name, or their initials when they have none
// or the server does not let us see it.
//
// The picture URLs need the client token, which an <img> cannot send, and
// the page's Content-Security-Policy (default-src 'self') allows neither
// blob: nor data: images: so a picture is fetched with the token and drawn
// onto a canvas. Fetches revalidate (the server's ETag answers 304 for an
// unchanged picture) and are shared per user while the page runs.
import * as api from './api.js';
import { h } from './dom.js';

const SIDE = 64; // canvas pixels; shown at 32 CSS pixels, sharp on HiDPI screens
const cache = new Map(); // local name → Promise<ImageBitmap|null>
const avatars = new Set(); // live avatars, redrawn when a picture changes
let domain = null;

/** The domain of the signed-in user: only its users have pictures here. */
export function setDomain(address) {
  const at = String(address ?? '').lastIndexOf('@');
  domain = at >= 0 ? address.slice(at + 1).toLowerCase() : null;
}

/** Forgets every picture (logout). */
export function reset() { cache.clear(); avatars.clear(); domain = null; }

function localName(address) {
  const a = String(address ?? '');
  const at = a.lastIndexOf('@');
  if (at < 0) return a.toLowerCase() || null;
  if (domain && a.slice(at + 1).toLowerCase() !== domain) return null;
  return a.slice(0, at).toLowerCase();
}

export function initials(name) {
  const parts = String(name ?? '').replace(/@.*/, '').trim().split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] ?? '?') + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

async function fetchPicture(name) {
  const r = await api.fetchPicture(name);
  if (!r || r.status !== 200) return null;
  try { return await createImageBitmap(await r.blob()); } catch { return null; }
}

function picture(name) {
  if (!cache.has(name)) cache.set(name, fetchPicture(name).catch(() => null));
  return cache.get(name);
}

/** Fetches `address`'s picture again and redraws every avatar of it. */
export function refresh(address) {
  const name = localName(address);
  if (!name) return;
  cache.delete(name);
  for (const a of avatars) if (a.name === name) a.load();
}

/** A round picture of `address`, its initials until (and unless) the
 * picture comes. {element, setName(displayName)}. Decorative: the name is
 * always written beside it. */
export function createAvatar(address, displayName, { extraClass = '' } = {}) {
  const element = h('span', { class: `avatar ${extraClass}`.trim(), 'aria-hidden': 'true', 'data-picture': 'none' });
  const text = h('span', { class: 'initials' }, initials(displayName || address));
  element.append(text);
  const a = {
    element,
    name: localName(address),
    setName(n) { text.textContent = initials(n || address); },
    async load() {
      const bmp = this.name ? await picture(this.name) : null;
      if (!bmp) {
        element.replaceChildren(text);
        element.dataset.picture = 'none';
        return;
      }
      const c = h('canvas', { width: SIDE, height: SIDE, class: 'picture' });
      c.getContext('2d').drawImage(bmp, 0, 0, SIDE, SIDE);
      element.replaceChildren(c);
      element.dataset.picture = 'shown';
    },
    drop() { avatars.delete(a); },
  };
  avatars.add(a);
  a.load();
  return a;
}
