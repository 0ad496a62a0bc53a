import { useEffect, useState } from 'preact/hooks';
import { type ActivityList, type ActivitySummary, ApiError, call } from '../api';
import { stateLabel, STATE_LABELS, when } from '../format';
import { ErrorNotice, Field } from '../ui';
import { Link } from './router';

const PAGE = 50;

export interface PageProps {
  token: string;
  onUnauthorized: () => void;
}

/** Calls the API, signing out when the token is refused. */
export function useCall({ token, onUnauthorized }: PageProps) {
  return async <T,>(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    body?: unknown,
  ): Promise<T> => {
    try {
      return await call<T>(token, method, path, { body });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) onUnauthorized();
      throw e;
    }
  };
}

export function Activities(props: PageProps) {
  const api = useCall(props);
  const params = new URLSearchParams(window.location.search);
  const [name, setName] = useState(params.get('name') ?? '');
  const [state, setState] = useState(params.get('state') ?? '');
  const [query, setQuery] = useState({ name, state });
  const [items, setItems] = useState<ActivitySummary[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const load = async (offset: number) => {
    const q = new URLSearchParams();
    if (query.name.trim()) q.set('name', query.name.trim());
    if (query.state) q.set('state', query.state);
    q.set('offset', String(offset));
    q.set('limit', String(PAGE));
    try {
      const list = await api<ActivityList>('GET', `/api/v1/admin/activities?${q}`);
      setItems((prev) => (offset === 0 ? list.items : [...(prev ?? []), ...list.items]));
      setMore(list.items.length === PAGE);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };

  useEffect(() => {
    const q = new URLSearchParams();
    if (query.name.trim()) q.set('name', query.name.trim());
    if (query.state) q.set('state', query.state);
    const search = q.toString();
    window.history.replaceState(null, '', `/console${search ? `?${search}` : ''}`);
    void load(0);
  }, [query]);

  return (
    <>
      <div class="row">
        <h1>Activities</h1>
        <span class="spacer" />
      </div>
      <form
        class="panel"
        role="search"
        aria-label="Activities"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ name, state });
        }}
      >
        <div class="row">
          <Field label="Name contains" class="grow">
            {(id) => (
              <input id={id} type="search" value={name} onInput={(e) => setName(e.currentTarget.value)} />
            )}
          </Field>
          <Field label="State">
            {(id) => (
              <select
                id={id}
                value={state}
                onChange={(e) => {
                  setState(e.currentTarget.value);
                  setQuery({ name, state: e.currentTarget.value });
                }}
              >
                <option value="">Any state</option>
                {Object.entries(STATE_LABELS).map(([value, label]) => (
                  <option value={value}>{label}</option>
                ))}
              </select>
            )}
          </Field>
          <div class="field">
            <button type="submit">Search</button>
          </div>
          <div class="field">
            <Link class="button secondary" href="/console/new">
              New activity
            </Link>
          </div>
        </div>
      </form>
      <ErrorNotice error={error} />
      {items === null ? (
        <p aria-live="polite">Loading…</p>
      ) : items.length === 0 ? (
        <p aria-live="polite">No activities match.</p>
      ) : (
        <>
          <p class="visually-hidden" aria-live="polite">
            {items.length} activities shown
          </p>
          <div class="table-wrap" role="region" aria-label="Activities" tabIndex={0}>
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">State</th>
                  <th scope="col">Runs</th>
                  <th scope="col" class="num">
                    Stock
                  </th>
                  <th scope="col" class="num">
                    Draws each
                  </th>
                  <th scope="col">Id</th>
                </tr>
              </thead>
              <tbody>
                {items.map((a) => (
                  <tr key={a.activity_id}>
                    <td>
                      <Link href={`/console/activities/${a.activity_id}`}>{a.name}</Link>
                    </td>
                    <td>
                      <span class={`badge ${a.state}`}>{stateLabel(a.state)}</span>
                    </td>
                    <td>
                      {when(a.begin_time)} – {when(a.end_time)}
                    </td>
                    <td class="num">{a.stock.toLocaleString()}</td>
                    <td class="num">{a.take_limit}</td>
                    <td>
                      <code>{a.activity_id}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {more && (
            <button type="button" class="secondary" onClick={() => void load(items.length)}>
              Show more
            </button>
          )}
        </>
      )}
    </>
  );
}

export function isApiError(e: unknown, code?: string): e is ApiError {
  return e instanceof ApiError && (code === undefined || e.code === code);
}
