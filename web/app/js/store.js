// What the client knows: the user's contacts with their presence, and the
// conversations with their messages, marks and unread counts. Views listen
// for changes; the model itself has no DOM.
//
// message_id is a string of decimal digits that grows in commit order, so
// messages sort by it; messages still waiting for their "ok" come after all
// committed ones, in the order they were sent.

export const STATES = ['available', 'away', 'busy', 'dnd', 'offline'];

/** Compares two message ids (decimal strings of any length). */
export function cmpId(a, b) {
  const x = String(a).replace(/^0+(?=\d)/, ''), y = String(b).replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

const sameAddress = (a, b) => String(a).toLowerCase() === String(b).toLowerCase();

export function createStore() {
  let me = null;
  let localSeq = 0;
  const contacts = new Map(); // lower-case address → contact
  const convs = new Map(); // lower-case peer address → conversation
  const listeners = new Set();

  const key = (address) => String(address).toLowerCase();
  function emit(what, peer) { for (const fn of listeners) fn(what, peer); }

  function person(address) {
    let c = contacts.get(key(address));
    if (!c) {
      c = { address, display_name: null, state: 'offline', note: null, since: null, local: null, kept: false };
      contacts.set(key(address), c);
    }
    return c;
  }

  function conv(peer) {
    let c = convs.get(key(peer));
    if (!c) {
      c = { peer, msgs: new Map(), byId: new Map(), loaded: false, hasMore: false, typingUntil: 0, readSent: null };
      convs.set(key(peer), c);
    }
    return c;
  }

  function peerOf(m) { return sameAddress(m.from, me) ? m.to : m.from; }

  /** Adds or updates a committed message; returns [msg, isNew]. */
  function put(c, src, { live = false } = {}) {
    const id = String(src.message_id);
    const out = sameAddress(src.from, me);
    let m = c.byId.get(id);
    const isNew = !m;
    if (!m) {
      m = { key: `m${id}`, message_id: id, from: src.from, to: src.to, text: String(src.text ?? ''), time: src.time, out, state: out ? 'sent' : null, read: false, error: null };
      c.msgs.set(m.key, m);
      c.byId.set(id, m);
    }
    if (out) {
      if (src.read) m.state = 'read';
      else if (src.delivered && m.state !== 'read') m.state = 'delivered';
    } else if (src.read) {
      m.read = true;
    }
    if (live && !out) c.typingUntil = 0;
    return [m, isNew];
  }

  function ordered(c) {
    const done = [], waiting = [];
    for (const m of c.msgs.values()) (m.message_id ? done : waiting).push(m);
    done.sort((a, b) => cmpId(a.message_id, b.message_id));
    waiting.sort((a, b) => a.seq - b.seq);
    return done.concat(waiting);
  }

  function unread(c) {
    let n = 0;
    for (const m of c.msgs.values()) if (!m.out && m.message_id && !m.read) n++;
    return n;
  }

  return {
    onChange(fn) { listeners.add(fn); },
    me: () => me,
    setMe(address) { me = address; },
    isMe: (address) => !!me && sameAddress(address, me),
    reset() { me = null; contacts.clear(); convs.clear(); emit('contacts'); },

    // ---- contacts and presence ----

    /** Replaces the kept list with GET /client/v1/contacts. */
    setContacts(list) {
      for (const c of contacts.values()) c.kept = false;
      for (const x of list) {
        const c = person(x.address);
        c.address = x.address;
        c.kept = true;
        c.display_name = x.display_name || null;
        c.local = x.local ?? null;
        if (x.state) c.state = x.state;
        c.note = x.note ?? null;
      }
      emit('contacts');
    },
    keep(x) {
      const c = person(x.address);
      c.kept = true;
      if (x.display_name) c.display_name = x.display_name;
      if (x.state) c.state = x.state;
      if (x.note !== undefined) c.note = x.note;
      if (x.local !== undefined) c.local = x.local;
      emit('contacts');
    },
    forget(address) {
      const c = contacts.get(key(address));
      if (c) c.kept = false;
      emit('contacts');
    },
    presence(f) {
      const c = person(f.address);
      c.state = STATES.includes(f.state) ? f.state : 'offline';
      c.note = f.note ?? null;
      c.since = f.since ?? null;
      emit('presence', f.address);
    },
    contact: (address) => contacts.get(key(address)) ?? null,
    nameOf(address) {
      const c = contacts.get(key(address));
      return c?.display_name || address;
    },
    /** Kept contacts, by name. */
    kept() {
      return [...contacts.values()].filter((c) => c.kept)
        .sort((a, b) => (a.display_name || a.address).localeCompare(b.display_name || b.address) || a.address.localeCompare(b.address));
    },
    /** Peers with a conversation who are not kept contacts. */
    others() {
      return [...convs.values()].filter((c) => c.msgs.size && !contacts.get(key(c.peer))?.kept && !sameAddress(c.peer, me))
        .map((c) => person(c.peer));
    },
    /** Addresses whose presence the client needs: contacts and chat peers. */
    watched() {
      const s = new Map();
      for (const c of contacts.values()) if (c.kept) s.set(key(c.address), c.address);
      for (const c of convs.values()) if (c.msgs.size) s.set(key(c.peer), c.peer);
      return [...s.values()];
    },

    // ---- conversations ----

    conversation: (peer) => conv(peer),
    hasConversation: (peer) => convs.has(key(peer)),
    messages: (peer) => ordered(conv(peer)),
    unread: (peer) => (convs.has(key(peer)) ? unread(conv(peer)) : 0),
    totalUnread() {
      let n = 0;
      for (const c of convs.values()) n += unread(c);
      return n;
    },
    /** The newest committed message from the peer, or null. */
    newestIncoming(peer) {
      const c = conv(peer);
      let best = null;
      for (const m of c.msgs.values()) {
        if (!m.out && m.message_id && (!best || cmpId(m.message_id, best.message_id) > 0)) best = m;
      }
      return best;
    },

    /** A "chat" frame: a message to this user, or from this user on another device. */
    chat(f) {
      const peer = peerOf(f);
      const c = conv(peer);
      const [m, isNew] = put(c, f, { live: true });
      emit('conv', peer);
      return { peer, msg: m, isNew };
    },

    /** History from GET /client/v1/messages (newest first). */
    history(peer, list, { limit, before }) {
      const c = conv(peer);
      for (const x of list) put(c, x);
      // A refresh of the newest page (after a reconnect) leaves the paging as it was.
      if (before) c.hasMore = list.length >= limit;
      else if (!c.loaded) c.hasMore = list.length >= limit;
      if (!before) c.loaded = true;
      emit('conv', peer);
    },
    oldestId(peer) {
      const c = conv(peer);
      let o = null;
      for (const id of c.byId.keys()) if (!o || cmpId(id, o) < 0) o = id;
      return o;
    },

    /** A message sent by this client, before the server's "ok". */
    addPending(peer, text) {
      const c = conv(peer);
      const m = { key: `l${++localSeq}`, seq: localSeq, message_id: null, from: me, to: peer, text, time: new Date().toISOString(), out: true, state: 'pending', error: null };
      c.msgs.set(m.key, m);
      emit('conv', peer);
      return m;
    },
    confirm(peer, m, { message_id, time }) {
      const c = conv(peer);
      const id = String(message_id);
      const known = c.byId.get(id);
      if (known && known !== m) {
        // History brought the message before its "ok": keep that copy.
        c.msgs.delete(m.key);
      } else {
        m.message_id = id;
        if (time) m.time = time;
        if (m.state === 'pending' || m.state === 'failed') m.state = 'sent';
        m.error = null;
        c.byId.set(id, m);
      }
      emit('conv', peer);
    },
    fail(peer, m, error) {
      m.state = 'failed';
      m.error = error;
      emit('conv', peer);
    },
    retrying(peer, m) {
      m.state = 'pending';
      m.error = null;
      emit('conv', peer);
    },

    /** chat.delivered from the peer: the message and all earlier ones to them. */
    delivered(f) {
      if (!convs.has(key(f.by))) return;
      const c = conv(f.by);
      let changed = false;
      for (const m of c.msgs.values()) {
        if (m.out && m.message_id && cmpId(m.message_id, f.message_id) <= 0 && m.state === 'sent') {
          m.state = 'delivered';
          changed = true;
        }
      }
      if (changed) emit('conv', c.peer);
    },
    /** chat.read: by the peer (our messages), or by this user elsewhere. */
    read(f) {
      if (me && sameAddress(f.by, me)) {
        for (const c of convs.values()) {
          const m = c.byId.get(String(f.message_id));
          if (m) { this.markReadUpTo(c.peer, f.message_id); return; }
        }
        return;
      }
      if (!convs.has(key(f.by))) return;
      const c = conv(f.by);
      let changed = false;
      for (const m of c.msgs.values()) {
        if (m.out && m.message_id && cmpId(m.message_id, f.message_id) <= 0 && m.state !== 'read') {
          m.state = 'read';
          changed = true;
        }
      }
      if (changed) emit('conv', c.peer);
    },
    /** Marks incoming messages up to id as read by this user. */
    markReadUpTo(peer, id) {
      const c = conv(peer);
      let changed = false;
      for (const m of c.msgs.values()) {
        if (!m.out && m.message_id && !m.read && cmpId(m.message_id, id) <= 0) { m.read = true; changed = true; }
      }
      if (!c.readSent || cmpId(id, c.readSent) > 0) c.readSent = String(id);
      if (changed) emit('conv', peer);
    },

    typing(from, ms) {
      conv(from).typingUntil = Date.now() + ms;
      emit('typing', from);
    },
    isTyping: (peer) => convs.has(key(peer)) && conv(peer).typingUntil > Date.now(),
  };
}
