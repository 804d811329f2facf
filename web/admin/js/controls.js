// One form control per setting, chosen by the schema type. Every control has
// the same face towards the settings page:
//   row            the element to insert
//   setEntry(e)    shows the document's entry {value, effective, source, warnings}
//                  and makes it the unchanged state
//   value()        the value to send in a PATCH
//   dirty()        differs from the document
//   showErrors([{message, field}]), clearErrors(), focus()
import { h, slug, describe } from './dom.js';
import { bindAttr, bindText, t } from './i18n.js';
import { createQosTable } from './qos-table.js';

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** The parts every field has: label, help, lock reason, warnings, error. */
function frame(def, inputId, { group = false } = {}) {
  const row = h(group ? 'fieldset' : 'div', {
    class: `field field-${def.type}${group ? ' field-group' : ''}`,
    id: `field-${slug(def.key)}`,
    'data-key': def.key,
  });
  const labelText = bindText(h('span', { class: 'label-text' }), `@label:${def.key}`);
  const mark = bindText(h('span', { class: 'changed-mark', hidden: true }), 'field.changed');
  const label = group
    ? h('legend', { class: 'field-label', id: `${inputId}-label` }, labelText, ' ', mark)
    : h('label', { class: 'field-label', for: inputId, id: `${inputId}-label` }, labelText, ' ', mark);
  const help = bindText(h('p', { class: 'help', id: `${inputId}-help` }), `@help:${def.key}`);
  const lock = h('p', { class: 'lock', id: `${inputId}-lock`, hidden: true });
  const warnings = h('ul', { class: 'warnings', id: `${inputId}-warnings`, hidden: true });
  const error = h('p', { class: 'error', id: `${inputId}-error`, hidden: true });
  // Shown while the value is stored: stages null, which removes it on Save.
  const reset = h('button', { type: 'button', class: 'secondary small reset-default', id: `${inputId}-reset`, hidden: true });
  return { row, label, mark, help, lock, warnings, error, reset };
}

function showWarnings(list, el) {
  el.replaceChildren();
  for (const w of list ?? []) {
    const prefix = bindText(h('strong'), 'field.warning');
    el.append(h('li', { 'data-code': w.code ?? '' }, prefix, ' ', w.message ?? ''));
  }
  el.hidden = el.childElementCount === 0;
}

function showLock(def, entry, el) {
  const locked = entry?.source === 'env';
  // An install default does not follow the server: the admin should know.
  const install = entry?.source === 'install';
  el.hidden = !locked && !install;
  el.dataset.source = entry?.source ?? '';
  if (locked) {
    el.replaceChildren(bindText(h('span'), 'field.locked', { env: def.env ?? 'ATRIUM_…' }));
  } else if (install) {
    el.replaceChildren(bindText(h('span'), 'field.install'));
  }
  return locked;
}

/** Shared behaviour; kind supplies read/write of the actual widget. */
function makeControl(def, parts, kind, onChange) {
  let baseline;
  let entryNow;
  let source = 'default';
  let locked = false;
  let resetting = false; // null staged: the stored value goes on Save
  const resettable = () => !locked && !def.operation_only && def.type !== 'secret' && source === 'store';
  const paintReset = () => {
    parts.reset.hidden = !resettable();
    bindText(parts.reset, resetting ? 'field.reset_undo' : 'field.reset');
    bindAttr(parts.reset, 'aria-label', resetting ? 'field.reset_undo_label' : 'field.reset_label',
      { label: () => t(`@label:${def.key}`) });
  };
  const c = {
    key: def.key,
    def,
    row: parts.row,
    get locked() { return locked; },
    get resetting() { return resetting; },
    value: () => (resetting ? null : kind.read()),
    dirty: () => !locked && !def.operation_only && (resetting || kind.dirty(baseline, source)),
    setEntry(entry) {
      baseline = entry?.value;
      entryNow = entry;
      source = entry?.source ?? 'default';
      resetting = false;
      locked = showLock(def, entry, parts.lock);
      kind.write(entry, locked);
      showWarnings(entry?.warnings, parts.warnings);
      paintReset();
      c.clearErrors();
      c.refresh();
    },
    /** Stages null (or takes it back): the field shows the default meanwhile. */
    toggleReset() {
      if (!resettable()) return;
      resetting = !resetting;
      if (resetting) {
        kind.write({ value: def.default ?? (def.type === 'list' ? [] : null), source: 'default',
          effective: entryNow?.effective }, false);
      } else {
        kind.write(entryNow, false);
      }
      paintReset();
      c.clearErrors();
      c.refresh();
      onChange(c);
    },
    refresh() {
      const d = c.dirty();
      parts.mark.hidden = !d;
      parts.row.classList.toggle('changed', d);
      parts.row.classList.toggle('resetting', resetting);
      kind.describe?.();
    },
    showErrors(errors) {
      const general = kind.placeErrors ? kind.placeErrors(errors) : errors;
      parts.error.replaceChildren(...general.map((e) => h('span', { class: 'error-line' },
        e.field && !kind.placeErrors ? `${e.field}: ` : '', e.message)));
      parts.error.hidden = general.length === 0;
      parts.row.classList.add('invalid');
      kind.invalid?.(general.length > 0);
      kind.describe?.();
    },
    clearErrors() {
      parts.error.replaceChildren();
      parts.error.hidden = true;
      parts.row.classList.remove('invalid');
      kind.clearErrors?.();
      kind.invalid?.(false);
      kind.describe?.();
    },
    focus: () => kind.focus(),
  };
  // An edit after "Reset to default" means the typed value, not the default.
  kind.changed = () => {
    if (resetting) { resetting = false; paintReset(); }
    c.refresh();
    onChange(c);
  };
  parts.reset.addEventListener('click', () => c.toggleReset());
  // Right of the value it resets (beside the label where the value is a group).
  (kind.resetAnchor ?? parts.label).after(parts.reset);
  return c;
}

function simpleInput(def, parts, input) {
  const describedBy = () => describe(input, [parts.error, parts.warnings, parts.lock, parts.help]);
  return {
    describe: describedBy,
    invalid: (on) => (on ? input.setAttribute('aria-invalid', 'true') : input.removeAttribute('aria-invalid')),
    focus: () => input.focus(),
  };
}

function boolControl(def, onChange) {
  const id = `set-${slug(def.key)}`;
  const parts = frame(def, id);
  const input = h('input', { type: 'checkbox', id, name: def.key });
  parts.row.append(h('div', { class: 'check' }, input, parts.label), parts.error, parts.warnings,
    parts.lock, parts.help);
  const kind = {
    ...simpleInput(def, parts, input),
    read: () => input.checked,
    write: (entry, locked) => { input.checked = !!entry?.value; input.disabled = locked; },
    dirty: (base) => input.checked !== !!base,
  };
  input.addEventListener('change', () => kind.changed());
  return makeControl(def, parts, kind, onChange);
}

function numberControl(def, onChange) {
  const id = `set-${slug(def.key)}`;
  const parts = frame(def, id);
  const input = h('input', {
    type: 'number', id, name: def.key, inputmode: 'numeric', step: 1,
    min: def.min ?? (def.type === 'port' ? 1 : undefined),
    max: def.max ?? (def.type === 'port' ? 65535 : undefined),
    class: 'num',
  });
  parts.row.append(parts.label, input, parts.error, parts.warnings, parts.lock, parts.help);
  // A cleared field means "back to the default": null, which the API takes.
  const read = () => {
    const s = input.value.trim();
    if (s === '') return null;
    return /^-?\d+$/.test(s) ? Number(s) : s;
  };
  const kind = {
    ...simpleInput(def, parts, input),
    read,
    resetAnchor: input,
    write: (entry, locked) => { input.value = entry?.value ?? ''; input.readOnly = locked; },
    dirty: (base, source) => {
      const v = read();
      if (v === null) return source === 'store'; // cleared: a stored value goes
      return String(v) !== String(base ?? '');
    },
  };
  input.addEventListener('input', () => kind.changed());
  return makeControl(def, parts, kind, onChange);
}

function textControl(def, onChange) {
  const id = `set-${slug(def.key)}`;
  const parts = frame(def, id);
  const input = h('input', {
    type: 'text', id, name: def.key, autocomplete: 'off', spellcheck: 'false',
    inputmode: def.type === 'url' ? 'url' : undefined,
    autocapitalize: 'off', class: def.type === 'url' ? 'wide' : undefined,
  });
  parts.row.append(parts.label, input, parts.error, parts.warnings, parts.lock, parts.help);
  const kind = {
    ...simpleInput(def, parts, input),
    input,
    resetAnchor: input,
    read: () => input.value.trim(),
    write: (entry, locked) => {
      input.value = entry?.value ?? '';
      input.readOnly = locked || def.operation_only;
      // Blank means default: show what blank gives (the server computes it).
      if (def.blank_means_default && entry?.effective) input.placeholder = entry.effective;
    },
    dirty: (base) => input.value.trim() !== (base ?? ''),
  };
  input.addEventListener('input', () => kind.changed());
  const c = makeControl(def, parts, kind, onChange);
  c.input = input;
  return c;
}

function enumControl(def, onChange) {
  const id = `set-${slug(def.key)}`;
  const parts = frame(def, id);
  const select = h('select', { id, name: def.key });
  for (const choice of def.choices ?? []) {
    select.append(bindText(h('option', { value: choice }), `@choice:${def.key}:${choice}`));
  }
  parts.row.append(parts.label, select, parts.error, parts.warnings, parts.lock, parts.help);
  const kind = {
    ...simpleInput(def, parts, select),
    resetAnchor: select,
    read: () => select.value,
    write: (entry, locked) => { select.value = entry?.value ?? def.default ?? ''; select.disabled = locked; },
    dirty: (base) => select.value !== base,
  };
  select.addEventListener('change', () => kind.changed());
  return makeControl(def, parts, kind, onChange);
}

function secretControl(def, onChange) {
  const id = `set-${slug(def.key)}`;
  const parts = frame(def, id);
  const input = h('input', { type: 'password', id, name: def.key, autocomplete: 'new-password' });
  const state = h('p', { class: 'secret-state', id: `${id}-state`, 'aria-live': 'polite' });
  const clearBtn = h('button', { type: 'button', class: 'secondary small', id: `${id}-clear` });
  let isSet = false;
  let clearing = false;
  let isLocked = false;
  const paint = () => {
    bindAttr(input, 'placeholder', isSet && !clearing ? 'secret.set' : 'secret.unset');
    bindText(state, clearing ? 'secret.will_clear' : isSet ? 'secret.state_set' : 'secret.state_unset');
    state.classList.toggle('pending', clearing);
    bindText(clearBtn, clearing ? 'secret.undo_clear' : 'secret.clear');
    clearBtn.hidden = !isSet || isLocked;
    input.disabled = clearing || isLocked;
  };
  clearBtn.addEventListener('click', () => {
    clearing = !clearing;
    if (clearing) input.value = '';
    paint();
    kind.changed();
  });
  parts.row.append(parts.label, h('div', { class: 'secret-line' }, input, clearBtn), state,
    parts.error, parts.warnings, parts.lock, parts.help);
  const kind = {
    ...simpleInput(def, parts, input),
    describe: () => describe(input, [state, parts.error, parts.lock, parts.help]),
    read: () => (clearing ? null : input.value),
    write: (entry, locked) => {
      isSet = !!entry?.value?.set;
      clearing = false;
      isLocked = locked;
      input.value = '';
      paint();
    },
    dirty: () => clearing || input.value !== '',
  };
  input.addEventListener('input', () => kind.changed());
  return makeControl(def, parts, kind, onChange);
}

/** A list of strings (host patterns): one text field per entry. */
function listControl(def, onChange) {
  const id = `set-${slug(def.key)}`;
  const parts = frame(def, id, { group: true });
  const list = h('ol', { class: 'list-entries', id: `${id}-entries` });
  const empty = bindText(h('p', { class: 'list-empty' }), 'list.empty');
  const addBtn = bindText(h('button', { type: 'button', class: 'secondary small', id: `${id}-add` }), 'list.add');
  let isLocked = false;
  const entries = [];

  const renumber = () => {
    entries.forEach((e, i) => {
      bindText(e.label, 'list.entry', { label: () => t(`@label:${def.key}`), n: i + 1 });
      bindAttr(e.remove, 'aria-label', 'list.remove', { n: i + 1 });
    });
    empty.hidden = entries.length > 0;
  };

  const addEntry = (value, focus) => {
    const n = entries.length;
    const inputId = `${id}-${uniq++}`;
    const input = h('input', { type: 'text', id: inputId, autocomplete: 'off', spellcheck: 'false', value: value ?? '' });
    input.value = value ?? '';
    const label = h('label', { for: inputId, class: 'visually-hidden' });
    const remove = h('button', { type: 'button', class: 'icon-button', title: '' }, '✕');
    const err = h('p', { class: 'error', hidden: true, id: `${inputId}-error` });
    const li = h('li', {}, label, h('div', { class: 'entry-line' }, input, remove), err);
    const e = { li, input, label, remove, err };
    input.readOnly = isLocked;
    remove.disabled = isLocked;
    input.addEventListener('input', () => kind.changed());
    remove.addEventListener('click', () => {
      const i = entries.indexOf(e);
      entries.splice(i, 1);
      li.remove();
      renumber();
      kind.changed();
      (entries[i]?.input ?? entries[i - 1]?.input ?? addBtn).focus();
    });
    entries.splice(n, 0, e);
    list.append(li);
    renumber();
    if (focus) input.focus();
  };
  let uniq = 0;
  addBtn.addEventListener('click', () => { addEntry('', true); kind.changed(); });
  parts.row.append(parts.label, list, empty, addBtn, parts.error, parts.warnings, parts.lock, parts.help);
  parts.row.setAttribute('aria-describedby', `${id}-help`);

  const kind = {
    read: () => entries.map((e) => e.input.value.trim()).filter((v) => v !== ''),
    write: (entry, locked) => {
      isLocked = locked;
      for (const e of entries) e.li.remove();
      entries.length = 0;
      for (const v of Array.isArray(entry?.value) ? entry.value : []) addEntry(v, false);
      addBtn.disabled = locked;
      renumber();
    },
    dirty: (base) => !same(kind.read(), base ?? []),
    placeErrors(errors) {
      const rest = [];
      for (const err of errors) {
        const m = /^\[(\d+)\]$/.exec(err.field ?? '');
        // Indexes count the list as sent: blank entries are not sent.
        const filled = entries.filter((e) => e.input.value.trim() !== '');
        const e = m ? filled[Number(m[1])] : undefined;
        if (!e) { rest.push(err); continue; }
        e.err.textContent = err.message;
        e.err.hidden = false;
        e.input.setAttribute('aria-invalid', 'true');
        e.input.setAttribute('aria-describedby', e.err.id);
      }
      return rest;
    },
    clearErrors() {
      for (const e of entries) {
        e.err.hidden = true;
        e.input.removeAttribute('aria-invalid');
        e.input.removeAttribute('aria-describedby');
      }
    },
    focus() {
      const bad = entries.find((e) => e.input.getAttribute('aria-invalid') === 'true');
      (bad?.input ?? entries[0]?.input ?? addBtn).focus();
    },
  };
  return makeControl(def, parts, kind, onChange);
}

function qosControl(def, onChange) {
  const id = `set-${slug(def.key)}`;
  const parts = frame(def, id, { group: true });
  const kind = createQosTable(id, () => kind.changed());
  parts.row.append(parts.label, kind.element, parts.error, parts.warnings, parts.lock, parts.help);
  return makeControl(def, parts, kind, onChange);
}

/** The control for one schema row. onChange(control) runs on every edit. */
export function createControl(def, onChange) {
  switch (def.type) {
    case 'bool': return boolControl(def, onChange);
    case 'int':
    case 'port': return numberControl(def, onChange);
    case 'enum': return enumControl(def, onChange);
    case 'secret': return secretControl(def, onChange);
    case 'list': return def.items === 'qos_policy' ? qosControl(def, onChange) : listControl(def, onChange);
    default: return textControl(def, onChange);
  }
}
