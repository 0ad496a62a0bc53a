// One activity: its review actions (only those its state allows, as the API lists them),
// live statistics refreshed in place, and a simulation of its strategy.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { ActivityDetail, Simulation } from '../api';
import { count, kindLabel, stateLabel, when } from '../format';
import { formatPercent, rateToUnits, UNITS } from '../rates';
import { ErrorNotice, Notice } from '../ui';
import { type PageProps, useCall } from './Activities';
import { type ChartRow, RateChart } from './Chart';
import { Link } from './router';

const REFRESH_MS = 2000;

const ACTION_LABELS: Record<string, string> = {
  submit: 'Submit for review',
  approve: 'Approve',
  refuse: 'Refuse',
  revoke: 'Back to editing',
  start: 'Start',
  close: 'Close',
  open: 'Reopen',
};

const DANGER = new Set(['refuse', 'close']);

export function ActivityPage(props: PageProps & { id: string }) {
  const api = useCall(props);
  const [detail, setDetail] = useState<ActivityDetail | null>(null);
  const [updated, setUpdated] = useState<Date | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [announce, setAnnounce] = useState('');
  const [busy, setBusy] = useState(false);
  const [sim, setSim] = useState<{ rows: ChartRow[]; draws: number } | null>(null);
  const [simError, setSimError] = useState<unknown>(null);
  const inFlight = useRef(false);

  const load = async () => {
    if (inFlight.current) return;
    inFlight.current = true;
    try {
      const d = await api<ActivityDetail>('GET', `/api/v1/admin/activities/${encodeURIComponent(props.id)}`);
      setDetail(d);
      setUpdated(new Date());
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      inFlight.current = false;
    }
  };

  useEffect(() => {
    void load();
    // Live statistics: poll while the tab is visible.
    const timer = window.setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [props.id]);

  const act = async (action: string) => {
    setBusy(true);
    setActionError(null);
    try {
      const r = await api<{ state: string }>(
        'POST',
        `/api/v1/admin/activities/${encodeURIComponent(props.id)}/actions/${action}`,
      );
      setAnnounce(`The activity is now ${stateLabel(r.state).toLowerCase()}.`);
      await load();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };

  const simulate = async () => {
    if (!detail) return;
    setSimError(null);
    try {
      const s = await api<Simulation>('POST', '/api/v1/admin/strategies/simulate', {
        activity_id: detail.activity_id,
        draws: 100_000,
      });
      const rows: ChartRow[] = detail.strategy.awards.map((a) => {
        const r = s.awards.find((x) => x.award_id === a.award_id);
        return { label: a.name, configured: rateToUnits(a.rate), simulated: r?.observed ?? 0, wins: r?.wins ?? 0 };
      });
      if (detail.strategy.mode === 'single') {
        const sum = detail.strategy.awards.reduce((t, a) => t + rateToUnits(a.rate), 0);
        rows.push({
          label: 'No prize',
          configured: UNITS - sum,
          simulated: s.draws ? s.nothing / s.draws : 0,
          wins: s.nothing,
        });
      }
      setSim({ rows, draws: s.draws });
    } catch (e) {
      setSimError(e);
    }
  };

  if (!detail) {
    return (
      <>
        <h1>Activity {props.id}</h1>
        {error ? <ErrorNotice error={error} /> : <p aria-live="polite">Loading…</p>}
        <p>
          <Link href="/console">Back to the activities</Link>
        </p>
      </>
    );
  }

  const d = detail;
  const fallback = d.strategy.awards.find((a) => a.award_id === d.strategy.fallback_award_id);
  return (
    <>
      <p>
        <Link href="/console">← Activities</Link>
      </p>
      <h1>{d.name}</h1>
      <p>
        <span class={`badge ${d.state}`} data-testid="state">
          {stateLabel(d.state)}
        </span>{' '}
        <span class="muted">
          Activity <code>{d.activity_id}</code>, created by {d.creator}
        </span>
      </p>
      {d.description && <p>{d.description}</p>}

      <section aria-labelledby="actions-h">
        <h2 id="actions-h">Review</h2>
        {d.actions.length === 0 ? (
          <p>No action is possible in this state.</p>
        ) : (
          <div class="row">
            {d.actions.map((a) => (
              <button
                type="button"
                key={a}
                class={DANGER.has(a) ? 'danger' : ''}
                disabled={busy}
                onClick={() => void act(a)}
              >
                {ACTION_LABELS[a] ?? a}
              </button>
            ))}
          </div>
        )}
        <p class="visually-hidden" role="status">
          {announce}
        </p>
        <ErrorNotice error={actionError} />
      </section>

      <section aria-labelledby="stats-h">
        <h2 id="stats-h">Live statistics</h2>
        <p class="muted">
          Refreshed every {REFRESH_MS / 1000} seconds
          {updated && <> · last at {updated.toLocaleTimeString()}</>}
        </p>
        {error ? <ErrorNotice error={error} /> : null}
        <dl class="stats" data-testid="stats">
          <div>
            <dt>Draws</dt>
            <dd data-stat="draws">{count(d.draws)}</dd>
          </div>
          <div>
            <dt>Stock left</dt>
            <dd data-stat="stock_left">
              {count(d.stock_left)} <span class="muted">/ {count(d.stock)}</span>
            </dd>
          </div>
          <div>
            <dt>Prizes won</dt>
            <dd data-stat="wins">{count(d.wins)}</dd>
          </div>
          <div>
            <dt>Orders granted</dt>
            <dd data-stat="granted">{count(d.orders.granted)}</dd>
          </div>
          <div>
            <dt>Orders pending</dt>
            <dd data-stat="pending">{count(d.orders.pending)}</dd>
          </div>
          <div>
            <dt>Awaiting an address</dt>
            <dd data-stat="awaiting_address">{count(d.orders.awaiting_address)}</dd>
          </div>
          {d.orders.failed > 0 && (
            <div>
              <dt>Delivery failed</dt>
              <dd data-stat="failed">{count(d.orders.failed)}</dd>
            </div>
          )}
        </dl>
        <div class="table-wrap" role="region" aria-label="Prizes" tabIndex={0}>
          <table>
            <caption class="visually-hidden">Prizes: odds, stock and wins</caption>
            <thead>
              <tr>
                <th scope="col">Prize</th>
                <th scope="col">Type</th>
                <th scope="col" class="num">
                  Rate
                </th>
                <th scope="col" class="num">
                  Count
                </th>
                <th scope="col" class="num">
                  Won
                </th>
                <th scope="col" class="num">
                  Left
                </th>
              </tr>
            </thead>
            <tbody>
              {d.strategy.awards.map((a) => (
                <tr key={a.award_id} data-award={a.name}>
                  <th scope="row">
                    {a.name}
                    {a.award_id === d.strategy.fallback_award_id && <span class="muted"> (fallback)</span>}
                  </th>
                  <td>{kindLabel(a.type)}</td>
                  <td class="num">{formatPercent(rateToUnits(a.rate))}</td>
                  <td class="num">{count(a.count)}</td>
                  <td class="num" data-stat="won">
                    {count(a.won)}
                  </td>
                  <td class="num">{count(a.left)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>

      <section aria-labelledby="setup-h">
        <h2 id="setup-h">Set-up</h2>
        <ul>
          <li>
            Runs from {when(d.begin_time)} to {when(d.end_time)}
          </li>
          <li>
            {count(d.stock)} draws in all, {d.take_limit} per player
          </li>
          <li>
            Mode: {d.strategy.mode === 'single' ? 'single (own odds per prize)' : 'entirety (every draw wins)'}
            {fallback && <>; fallback prize: {fallback.name}</>}
          </li>
          <li>
            Players' page: <a href={`/play/${d.activity_id}`}>/play/{d.activity_id}</a>{' '}
            <span class="muted">(hand players a link ending in #token=THEIR_TOKEN)</span>
          </li>
        </ul>
        {(d.state === 'approved' || d.state === 'doing') && new Date(d.begin_time) > new Date() && (
          <Notice>The draw opens to players at {when(d.begin_time)}.</Notice>
        )}
      </section>

      <section aria-labelledby="sim-h">
        <h2 id="sim-h">Odds check</h2>
        <p>Runs 100,000 dry draws of this strategy; no stock is used.</p>
        <button type="button" class="secondary" onClick={() => void simulate()}>
          Simulate draws
        </button>
        <ErrorNotice error={simError} />
        {sim && <RateChart title="Simulated versus configured" rows={sim.rows} draws={sim.draws} />}
      </section>
    </>
  );
}
