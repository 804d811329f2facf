// qos.policies as an editable table: one row per policy, one input per field,
// rows added and removed in place. Errors from a 422 ("field": "[1].dscp")
// land in the cell they name. On a phone the rows become cards (admin.css).
import { h } from './dom.js';
import { bindAttr, bindText } from './i18n.js';

const COLUMNS = [
  { name: 'name', type: 'text' },
  { name: 'dscp', type: 'number', min: 0, max: 63 },
  { name: 'max_rate_mbps', type: 'number', min: 1, max: 100000 },
  { name: 'url', type: 'text' },
  { name: 'include_subdirectories', type: 'checkbox' },
  { name: 'any_destination', type: 'checkbox' },
];

const NEW_POLICY = {
  name: '', dscp: 34, max_rate_mbps: 50, url: '', include_subdirectories: true, any_destination: true,
};

const num = (s) => (/^-?\d+$/.test(s.trim()) ? Number(s.trim()) : s.trim());

export function createQosTable(id, changed) {
  const body = h('tbody');
  const headRow = h('tr');
  for (const col of COLUMNS) {
    headRow.append(bindText(h('th', { scope: 'col', class: `col-${col.name}` }), `qos.col.${col.name}`));
  }
  headRow.append(bindText(h('th', { scope: 'col', class: 'col-actions' }), 'qos.col.actions'));
  const table = h('table', { class: 'qos', id: `${id}-table` },
    bindText(h('caption', { class: 'visually-hidden' }), 'qos.caption'),
    h('thead', {}, headRow), body);
  const empty = bindText(h('p', { class: 'list-empty' }), 'qos.empty');
  const addBtn = bindText(h('button', { type: 'button', class: 'secondary small', id: `${id}-add` }), 'qos.add');
  const element = h('div', { class: 'qos-wrap' }, table, empty, addBtn);
  const rows = [];
  let uniq = 0;
  let isLocked = false;

  const renumber = () => {
    rows.forEach((r, i) => {
      for (const col of COLUMNS) bindText(r.cells[col.name].which, 'qos.cell', { column: '', n: i + 1 });
      bindAttr(r.remove, 'aria-label', 'qos.remove_label', { n: i + 1 });
      r.tr.dataset.index = String(i);
    });
    empty.hidden = rows.length > 0;
    table.hidden = rows.length === 0;
  };

  const addRow = (policy, focus) => {
    const tr = h('tr');
    const r = { tr, cells: {} };
    const rowId = `${id}-r${uniq++}`;
    for (const col of COLUMNS) {
      const inputId = `${rowId}-${col.name}`;
      const input = h('input', {
        type: col.type, id: inputId, name: col.name, 'data-col': col.name,
        min: col.min, max: col.max, step: col.type === 'number' ? 1 : undefined,
        autocomplete: 'off', spellcheck: col.type === 'text' ? 'false' : undefined,
        class: col.type === 'number' ? 'num' : undefined,
      });
      if (col.type === 'checkbox') input.checked = !!policy[col.name];
      else input.value = policy[col.name] ?? '';
      // The visible column name on a phone; the policy number for screen readers.
      const which = h('span', { class: 'visually-hidden' });
      const label = h('label', { for: inputId, class: 'cell-label' },
        bindText(h('span', { class: 'col-name' }), `qos.col.${col.name}`), which);
      const err = h('p', { class: 'error', id: `${inputId}-error`, hidden: true });
      input.readOnly = isLocked;
      if (col.type === 'checkbox') input.disabled = isLocked;
      input.addEventListener(col.type === 'checkbox' ? 'change' : 'input', changed);
      tr.append(h('td', { class: `col-${col.name}` }, label, input, err));
      r.cells[col.name] = { input, err, which };
    }
    const remove = bindText(h('button', { type: 'button', class: 'secondary small' }), 'qos.remove');
    remove.disabled = isLocked;
    remove.addEventListener('click', () => {
      const i = rows.indexOf(r);
      rows.splice(i, 1);
      tr.remove();
      renumber();
      changed();
      (rows[i]?.cells.name.input ?? rows[i - 1]?.cells.name.input ?? addBtn).focus();
    });
    r.remove = remove;
    tr.append(h('td', { class: 'col-actions' }, remove));
    rows.push(r);
    body.append(tr);
    renumber();
    if (focus) r.cells.name.input.focus();
  };

  addBtn.addEventListener('click', () => { addRow(NEW_POLICY, true); changed(); });

  const read = () => rows.map((r) => {
    const p = {};
    for (const col of COLUMNS) {
      const { input } = r.cells[col.name];
      p[col.name] = col.type === 'checkbox' ? input.checked : col.type === 'number' ? num(input.value) : input.value.trim();
    }
    return p;
  });

  return {
    element,
    read,
    write(entry, locked) {
      isLocked = locked;
      for (const r of rows) r.tr.remove();
      rows.length = 0;
      for (const p of Array.isArray(entry?.value) ? entry.value : []) addRow(p, false);
      addBtn.disabled = locked;
      renumber();
    },
    dirty: (base) => JSON.stringify(read()) !== JSON.stringify(base ?? []),
    placeErrors(errors) {
      const rest = [];
      for (const e of errors) {
        const m = /^\[(\d+)\](?:\.(\w+))?$/.exec(e.field ?? '');
        const r = m ? rows[Number(m[1])] : undefined;
        const cell = r?.cells[m?.[2] ?? 'name'];
        if (!cell) { rest.push(e); continue; }
        cell.err.textContent = e.message;
        cell.err.hidden = false;
        cell.input.setAttribute('aria-invalid', 'true');
        cell.input.setAttribute('aria-describedby', cell.err.id);
      }
      return rest;
    },
    clearErrors() {
      for (const r of rows) {
        for (const cell of Object.values(r.cells)) {
          cell.err.hidden = true;
          cell.input.removeAttribute('aria-invalid');
          cell.input.removeAttribute('aria-describedby');
        }
      }
    },
    focus() {
      for (const r of rows) {
        for (const cell of Object.values(r.cells)) {
          if (cell.input.getAttribute('aria-invalid') === 'true') { cell.input.focus(); return; }
        }
      }
      (rows[0]?.cells.name.input ?? addBtn).focus();
    },
  };
}

