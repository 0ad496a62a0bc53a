// Rule trees: decision trees that pick an activity from a player's facts (POST /api/v1/draw).

import { useEffect, useState } from 'preact/hooks';
import type { Tree, TreeLine, TreeList, TreeNode, TreeSummary } from '../api';
import { ErrorNotice, Field, Notice } from '../ui';
import { type PageProps, useCall } from './Activities';

const OPS: Record<string, string> = {
  eq: 'equals',
  gt: 'greater than',
  lt: 'less than',
  ge: 'at least',
  le: 'at most',
  enum: 'one of (comma-separated)',
};

interface NodeDraft {
  key: number;
  id: string;
  kind: 'stem' | 'fruit';
  text: string;
}

interface LineDraft {
  key: number;
  from: string;
  to: string;
  op: string;
  value: string;
}

let nextKey = 0;

function exampleNodes(): NodeDraft[] {
  return [
    { key: ++nextKey, id: '1', kind: 'stem', text: 'gender' },
    { key: ++nextKey, id: '2', kind: 'fruit', text: '' },
    { key: ++nextKey, id: '3', kind: 'fruit', text: '' },
  ];
}

function exampleLines(): LineDraft[] {
  return [
    { key: ++nextKey, from: '1', to: '2', op: 'eq', value: 'man' },
    { key: ++nextKey, from: '1', to: '3', op: 'eq', value: 'woman' },
  ];
}

function int(text: string): number | null {
  return /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}

export function RuleTrees(props: PageProps) {
  const api = useCall(props);
  const [items, setItems] = useState<TreeSummary[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [open, setOpen] = useState<Tree | null>(null);
  const [openError, setOpenError] = useState<unknown>(null);

  const [name, setName] = useState('');
  const [root, setRoot] = useState('1');
  const [nodes, setNodes] = useState<NodeDraft[]>(exampleNodes);
  const [lines, setLines] = useState<LineDraft[]>(exampleLines);
  const [formError, setFormError] = useState<string | null>(null);
  const [saveError, setSaveError] = useState<unknown>(null);
  const [created, setCreated] = useState<string | null>(null);

  const load = async () => {
    try {
      const list = await api<TreeList>('GET', '/api/v1/admin/rule-trees?limit=200');
      setItems(list.items);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };

  useEffect(() => {
    void load();
  }, []);

  const view = async (id: string) => {
    setOpenError(null);
    try {
      setOpen(await api<Tree>('GET', `/api/v1/admin/rule-trees/${encodeURIComponent(id)}`));
    } catch (e) {
      setOpenError(e);
    }
  };

  const create = async (e: Event) => {
    e.preventDefault();
    setCreated(null);
    setSaveError(null);
    const rootId = int(root);
    if (!name.trim()) return setFormError('Name the tree.');
    if (rootId === null) return setFormError('The root must be a node id (a whole number).');
    const outNodes: TreeNode[] = [];
    for (const n of nodes) {
      const id = int(n.id);
      if (id === null) return setFormError(`Node ids are whole numbers; "${n.id}" is not.`);
      if (!n.text.trim()) {
        return setFormError(`Node ${id} needs ${n.kind === 'stem' ? 'a fact to test' : 'a result (activity id)'}.`);
      }
      outNodes.push(n.kind === 'stem' ? { id, kind: 'stem', rule_key: n.text.trim() } : { id, kind: 'fruit', value: n.text.trim() });
    }
    const outLines: TreeLine[] = [];
    for (const l of lines) {
      const from = int(l.from);
      const to = int(l.to);
      if (from === null || to === null) return setFormError('Lines lead from a node id to a node id.');
      outLines.push({ from, to, op: l.op, value: l.value.trim() });
    }
    setFormError(null);
    try {
      const r = await api<{ tree_id: string }>('POST', '/api/v1/admin/rule-trees', {
        name: name.trim(),
        root: rootId,
        nodes: outNodes,
        lines: outLines,
      });
      setCreated(r.tree_id);
      setName('');
      await load();
    } catch (err) {
      setSaveError(err);
    }
  };

  return (
    <>
      <h1>Rule trees</h1>
      <p>
        A rule tree picks the activity a player draws in from the facts sent with{' '}
        <code>POST /api/v1/draw</code>: stems test a fact, lines lead on when it matches, fruits name an
        activity id.
      </p>
      <ErrorNotice error={error} />
      {items === null ? (
        <p aria-live="polite">Loading…</p>
      ) : items.length === 0 ? (
        <p>No rule trees yet.</p>
      ) : (
        <div class="table-wrap" role="region" aria-label="Rule trees" tabIndex={0}>
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Id</th>
                <th scope="col" class="num">
                  Nodes
                </th>
                <th scope="col" class="num">
                  Lines
                </th>
                <th scope="col">
                  <span class="visually-hidden">View</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((t) => (
                <tr key={t.tree_id}>
                  <td>{t.name}</td>
                  <td>
                    <code>{t.tree_id}</code>
                  </td>
                  <td class="num">{t.nodes}</td>
                  <td class="num">{t.lines}</td>
                  <td>
                    <button type="button" class="secondary" onClick={() => void view(t.tree_id)} aria-label={`View ${t.name}`}>
                      View
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ErrorNotice error={openError} />
      {open && (
        <section class="panel" aria-labelledby="tree-h">
          <h2 id="tree-h">
            {open.name} <span class="muted">({open.tree_id})</span>
          </h2>
          <p>Root: node {open.root}</p>
          <ul>
            {open.nodes.map((n) => (
              <li key={n.id}>
                Node {n.id}: {n.kind === 'stem' ? <>tests <code>{n.rule_key}</code></> : <>gives activity <code>{n.value}</code></>}
                <ul>
                  {open.lines
                    .filter((l) => l.from === n.id)
                    .map((l) => (
                      <li>
                        if {OPS[l.op] ?? l.op} <code>{l.value}</code> → node {l.to}
                      </li>
                    ))}
                </ul>
              </li>
            ))}
          </ul>
        </section>
      )}

      <h2>New rule tree</h2>
      <form class="panel" onSubmit={create} noValidate>
        <div class="grid-2">
          <Field label="Tree name">
            {(id) => <input id={id} value={name} onInput={(e) => setName(e.currentTarget.value)} />}
          </Field>
          <Field label="Root node id">
            {(id) => <input id={id} inputMode="numeric" value={root} onInput={(e) => setRoot(e.currentTarget.value)} />}
          </Field>
        </div>
        <fieldset>
          <legend>Nodes</legend>
          {nodes.map((n, i) => (
            <div class="row" key={n.key} role="group" aria-label={`Node ${i + 1}`}>
              <Field label="Id">
                {(id) => (
                  <input
                    id={id}
                    inputMode="numeric"
                    size={5}
                    value={n.id}
                    onInput={(e) => {
                      const v = e.currentTarget.value;
                      setNodes((ns) => ns.map((x) => (x.key === n.key ? { ...x, id: v } : x)));
                    }}
                  />
                )}
              </Field>
              <Field label="Kind">
                {(id) => (
                  <select
                    id={id}
                    value={n.kind}
                    onChange={(e) => {
                      const v = e.currentTarget.value as NodeDraft['kind'];
                      setNodes((ns) => ns.map((x) => (x.key === n.key ? { ...x, kind: v } : x)));
                    }}
                  >
                    <option value="stem">Stem (tests a fact)</option>
                    <option value="fruit">Fruit (gives an activity)</option>
                  </select>
                )}
              </Field>
              <Field label={n.kind === 'stem' ? 'Fact' : 'Activity id'}>
                {(id) => (
                  <input
                    id={id}
                    value={n.text}
                    onInput={(e) => {
                      const v = e.currentTarget.value;
                      setNodes((ns) => ns.map((x) => (x.key === n.key ? { ...x, text: v } : x)));
                    }}
                  />
                )}
              </Field>
              <div class="field">
                <button
                  type="button"
                  class="danger"
                  aria-label={`Remove node ${i + 1}`}
                  onClick={() => setNodes((ns) => ns.filter((x) => x.key !== n.key))}
                >
                  Remove
                </button>
              </div>
            </div>
          ))}
          <button
            type="button"
            class="secondary"
            onClick={() => setNodes((ns) => [...ns, { key: ++nextKey, id: String(ns.length + 1), kind: 'fruit', text: '' }])}
          >
            Add a node
          </button>
        </fieldset>
        <fieldset>
          <legend>Lines</legend>
          {lines.map((l, i) => (
            <div class="row" key={l.key} role="group" aria-label={`Line ${i + 1}`}>
              <Field label="From node">
                {(id) => (
                  <input
                    id={id}
                    inputMode="numeric"
                    size={5}
                    value={l.from}
                    onInput={(e) => {
                      const v = e.currentTarget.value;
                      setLines((ls) => ls.map((x) => (x.key === l.key ? { ...x, from: v } : x)));
                    }}
                  />
                )}
              </Field>
              <Field label="Test">
                {(id) => (
                  <select
                    id={id}
                    value={l.op}
                    onChange={(e) => {
                      const v = e.currentTarget.value;
                      setLines((ls) => ls.map((x) => (x.key === l.key ? { ...x, op: v } : x)));
                    }}
                  >
                    {Object.entries(OPS).map(([value, label]) => (
                      <option value={value}>{label}</option>
                    ))}
                  </select>
                )}
              </Field>
              <Field label="Value">
                {(id) => (
                  <input
                    id={id}
                    value={l.value}
                    onInput={(e) => {
                      const v = e.currentTarget.value;
                      setLines((ls) => ls.map((x) => (x.key === l.key ? { ...x, value: v } : x)));
                    }}
                  />
                )}
              </Field>
              <Field label="To node">
                {(id) => (
                  <input
                    id={id}
                    inputMode="numeric"
                    size={5}
                    value={l.to}
                    onInput={(e) => {
                      const v = e.currentTarget.value;
                      setLines((ls) => ls.map((x) => (x.key === l.key ? { ...x, to: v } : x)));
                    }}
                  />
                )}
              </Field>
              <div class="field">
                <button
                  type="button"
                  class="danger"
                  aria-label={`Remove line ${i + 1}`}
                  onClick={() => setLines((ls) => ls.filter((x) => x.key !== l.key))}
                >
                  Remove
                </button>
              </div>
            </div>
          ))}
          <button
            type="button"
            class="secondary"
            onClick={() => setLines((ls) => [...ls, { key: ++nextKey, from: root, to: '', op: 'eq', value: '' }])}
          >
            Add a line
          </button>
        </fieldset>
        {formError && (
          <Notice kind="bad" live>
            {formError}
          </Notice>
        )}
        <ErrorNotice error={saveError} />
        {created && (
          <Notice kind="ok" live>
            Rule tree <code>{created}</code> created.
          </Notice>
        )}
        <button type="submit">Create rule tree</button>
      </form>
    </>
  );
}
