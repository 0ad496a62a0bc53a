// The players' page: the prizes with their odds and counts, the draw, its result, the
// player's remaining draws and past wins, and the shipping address a physical prize needs.

import { useEffect, useRef, useState } from 'preact/hooks';
import {
  ApiError,
  call,
  type DrawResponse,
  type MyActivity,
  newKey,
  type Order,
  type OrderList,
  type PublicActivity,
} from '../api';
import { count, kindLabel, when } from '../format';
import { formatPercent, oneIn, rateToUnits, UNITS } from '../rates';
import { Notice } from '../ui';
import { AddressForm } from './AddressForm';

interface Props {
  id: string;
  token: string;
  onSignOut: (reason?: string) => void;
}

type Message = { kind: 'info' | 'ok' | 'warn' | 'bad'; text: string };

interface Outcome {
  n: number;
  result: 'win' | 'lose';
  name?: string;
  kind?: string;
  content?: string;
  fallback: boolean;
  /** The prize is shipped: the winner still has to say where to. */
  needsAddress: boolean;
}

const GRANT_LABELS: Record<string, string> = {
  init: 'Being delivered',
  complete: 'Delivered',
  failed: 'Delivery failed: please contact the organiser',
  awaiting_address: 'Waiting for your shipping address',
};

const reducedMotion = () => window.matchMedia?.('(prefers-reduced-motion: reduce)').matches ?? false;
const sleep = (ms: number) => new Promise((r) => window.setTimeout(r, ms));

/** Why a draw cannot happen now, from what the page knows; null when it can. */
function blocked(a: PublicActivity, mine: MyActivity | null, now: Date): Message | null {
  const begin = new Date(a.begin_time);
  const end = new Date(a.end_time);
  if (now < begin && ['approved', 'doing'].includes(a.state)) {
    return { kind: 'info', text: `The draw has not started yet. It opens ${when(a.begin_time)}.` };
  }
  if (now > end || a.state === 'closed') {
    return { kind: 'info', text: `This draw has ended${now > end ? ` (${when(a.end_time)})` : ''}.` };
  }
  if (a.state !== 'doing') return { kind: 'info', text: 'This draw is not open right now.' };
  if (a.stock_left === 0) return { kind: 'warn', text: 'This draw is sold out: every draw has been taken.' };
  if (mine && mine.takes_left === 0) {
    return { kind: 'info', text: `You have used all your draws (${mine.take_limit} of ${mine.take_limit}). Thank you for playing!` };
  }
  return null;
}

/** A refused draw for people. */
function drawError(e: unknown, a: PublicActivity | null): Message {
  if (!(e instanceof ApiError)) return { kind: 'bad', text: 'Something went wrong. Try again.' };
  switch (e.code) {
    case 'sold_out':
      return { kind: 'warn', text: 'Sold out: every draw has been taken.' };
    case 'quota_exhausted':
      return { kind: 'info', text: 'You have used all your draws for this activity.' };
    case 'not_started':
      return { kind: 'info', text: `The draw has not started yet${a ? `; it opens ${when(a.begin_time)}` : ''}.` };
    case 'ended':
      return { kind: 'info', text: 'This draw has ended.' };
    case 'not_open':
      return { kind: 'info', text: 'This draw is not open right now.' };
    case 'rate_limited':
      return { kind: 'warn', text: 'Too many tries at once. Wait a moment, then try again.' };
    case 'not_found':
      return { kind: 'bad', text: 'There is no such prize draw.' };
    default:
      // outcome_unknown, unavailable, network, timeout: the same key is replayed next time.
      return { kind: 'bad', text: 'The draw could not be completed just now. Try again: you will not lose a draw.' };
  }
}

export function Game({ id, token, onSignOut }: Props) {
  const [activity, setActivity] = useState<PublicActivity | null>(null);
  const [mine, setMine] = useState<MyActivity | null>(null);
  const [orders, setOrders] = useState<Order[]>([]);
  const [loadError, setLoadError] = useState<Message | null>(null);
  const [drawing, setDrawing] = useState(false);
  const [lit, setLit] = useState<number | null>(null);
  const [won, setWon] = useState<number | null>(null);
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const [message, setMessage] = useState<Message | null>(null);
  const [shipped, setShipped] = useState<string[]>([]);
  const pendingKey = useRef<string | null>(null);

  const api = async <T,>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, headers?: Record<string, string>) => {
    try {
      return await call<T>(token, method, path, { body, headers });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) onSignOut('Your sign-in has expired or was refused. Sign in again.');
      if (e instanceof ApiError && e.status === 403) onSignOut('This page needs a player token.');
      throw e;
    }
  };

  const load = async () => {
    const path = encodeURIComponent(id);
    try {
      const [a, m, o] = await Promise.all([
        api<PublicActivity>('GET', `/api/v1/activities/${path}`),
        api<MyActivity>('GET', `/api/v1/me/activities/${path}`),
        api<OrderList>('GET', '/api/v1/me/orders?limit=200'),
      ]);
      setActivity(a);
      setMine(m);
      setOrders(o.items.filter((x) => x.activity_id === a.activity_id));
      setLoadError(null);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
        setLoadError({ kind: 'bad', text: 'There is no such prize draw. Check the link you were given.' });
      } else {
        setLoadError({ kind: 'bad', text: 'The prize draw could not be loaded. Reload the page to try again.' });
      }
    }
  };

  useEffect(() => {
    void load();
  }, [id]);

  useEffect(() => {
    if (activity) document.title = `${activity.name} · Prize draw`;
  }, [activity?.name]);

  const draw = async () => {
    if (!activity || drawing) return;
    setDrawing(true);
    setMessage(null);
    setWon(null);
    // One key per intended draw: a retry after an unknown outcome replays it, never draws twice.
    const key = pendingKey.current ?? newKey();
    pendingKey.current = key;
    const spin = !reducedMotion();
    let spinner: number | undefined;
    if (spin) {
      let i = 0;
      spinner = window.setInterval(() => setLit(i++ % cards), 90);
    }
    const started = Date.now();
    let response: DrawResponse | null = null;
    let failure: unknown = null;
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        response = await api<DrawResponse>('POST', `/api/v1/activities/${encodeURIComponent(id)}/draw`, undefined, {
          'Idempotency-Key': key,
        });
        failure = null;
        break;
      } catch (e) {
        failure = e;
        if (e instanceof ApiError && e.code === 'outcome_unknown') {
          await sleep((e.retryAfter ?? 1) * 1000);
          continue;
        }
        break;
      }
    }
    if (spin) await sleep(Math.max(0, 900 - (Date.now() - started)));
    window.clearInterval(spinner);
    setLit(null);
    if (response) {
      pendingKey.current = null;
      const index = response.award ? activity.awards.findIndex((x) => x.award_id === response.award?.award_id) : -1;
      setWon(index >= 0 ? index : activity.mode === 'single' ? activity.awards.length : null);
      setOutcomes((list) => [
        {
          n: list.length + 1,
          result: response.result,
          name: response.award?.name,
          kind: response.award?.type,
          content: response.award?.type === 'description' ? response.award.content : undefined,
          fallback: response.fallback,
          needsAddress: response.grant_state === 'awaiting_address',
        },
        ...list,
      ]);
    } else {
      const m = drawError(failure, activity);
      const retryable = failure instanceof ApiError && ['outcome_unknown', 'unavailable', 'network', 'timeout', 'internal', 'rate_limited'].includes(failure.code);
      if (!retryable) pendingKey.current = null;
      setMessage(m);
    }
    setDrawing(false);
    await load();
  };

  if (loadError) {
    return (
      <main id="main">
        <h1>Prize draw</h1>
        <Notice kind={loadError.kind} live>
          {loadError.text}
        </Notice>
      </main>
    );
  }
  if (!activity) {
    return (
      <main id="main">
        <h1>Prize draw</h1>
        <p aria-live="polite">Loading…</p>
      </main>
    );
  }

  const a = activity;
  const sum = a.awards.reduce((t, x) => t + rateToUnits(x.rate), 0);
  const inStock = a.awards.filter((x) => x.left > 0).reduce((t, x) => t + rateToUnits(x.rate), 0);
  // What a player's odds are right now: in entirety mode the rates of the prizes in stock
  // are scaled to sum to 1.
  const odds = (rate: string, left: number) => {
    const u = rateToUnits(rate);
    if (a.mode !== 'entirety') return u;
    return left > 0 && inStock > 0 ? Math.round((u * UNITS) / inStock) : 0;
  };
  const cards = a.awards.length + (a.mode === 'single' ? 1 : 0);
  const stop = blocked(a, mine, new Date());
  const latest = outcomes[0];
  const awaiting = orders.filter((o) => o.grant_state === 'awaiting_address');

  return (
    <main id="main">
      <h1>{a.name}</h1>
      {a.description && <p>{a.description}</p>}
      <p class="muted">
        Open {when(a.begin_time)} – {when(a.end_time)}
      </p>

      <section aria-labelledby="prizes-h">
        <h2 id="prizes-h">Prizes and odds</h2>
        <p class="muted">
          {a.mode === 'single'
            ? 'Each draw has the chance shown for each prize.'
            : 'Every draw wins one of the prizes still in stock, with the chance shown.'}
        </p>
        <ul class="prizes">
          {a.awards.map((x, i) => {
            const u = odds(x.rate, x.left);
            const one = oneIn(u);
            return (
              <li key={x.award_id} class={`prize${lit === i ? ' lit' : ''}${won === i ? ' won' : ''}`}>
                <div class="name">{x.name}</div>
                <div class="muted">{kindLabel(x.type)}</div>
                <div class="odds">
                  {formatPercent(u)}
                  <span class="visually-hidden"> chance</span>
                </div>
                {one && <div class="muted">{one}</div>}
                <div>
                  {count(x.count)} in all · {count(x.left)} left
                </div>
              </li>
            );
          })}
          {a.mode === 'single' && (
            <li class={`prize none${lit === a.awards.length ? ' lit' : ''}${won === a.awards.length ? ' won' : ''}`}>
              <div class="name">No prize</div>
              <div class="muted">Better luck next time</div>
              <div class="odds">
                {formatPercent(Math.max(0, UNITS - sum))}
                <span class="visually-hidden"> chance</span>
              </div>
            </li>
          )}
        </ul>
      </section>

      <section aria-labelledby="draw-h">
        <h2 id="draw-h">Your draw</h2>
        {mine && (
          <p data-testid="takes-left">
            Draws left: <strong>{mine.takes_left}</strong> of {mine.take_limit}
          </p>
        )}
        <div class="draw-area">
          <button type="button" class="draw-button" disabled={drawing || stop !== null} onClick={() => void draw()}>
            {drawing ? 'Drawing…' : 'Draw'}
          </button>
          <div class="result" aria-live="polite" aria-atomic="true" data-testid="result">
            {drawing && <span>Drawing…</span>}
            {!drawing && latest && (
              <div class="reveal" key={latest.n}>
                {latest.result === 'win' ? (
                  <>
                    <strong>You won: {latest.name}!</strong>
                    {latest.fallback && <span> (the prize drawn had run out; this one stands in)</span>}
                    {latest.content && <div>{latest.content}</div>}
                    {latest.needsAddress && <div>Tell us where to send it: the form is below.</div>}
                  </>
                ) : (
                  <strong>No prize this time.</strong>
                )}
              </div>
            )}
          </div>
        </div>
        {message && (
          <Notice kind={message.kind} live>
            {message.text}
          </Notice>
        )}
        {stop && !message && (
          <Notice kind={stop.kind} live>
            <span data-testid="blocked">{stop.text}</span>
          </Notice>
        )}
        {outcomes.length > 0 && (
          <>
            <h3>This visit</h3>
            <ol reversed data-testid="outcomes">
              {outcomes.map((o) => (
                <li key={o.n}>{o.result === 'win' ? `Won ${o.name}${o.fallback ? ' (stand-in prize)' : ''}` : 'No prize'}</li>
              ))}
            </ol>
          </>
        )}
      </section>

      {(awaiting.length > 0 || shipped.length > 0) && (
        <section aria-labelledby="ship-h">
          <h2 id="ship-h">{awaiting.length > 0 ? 'Where should we send your prize?' : 'Shipping'}</h2>
          {shipped.map((text) => (
            <Notice kind="ok" live key={text}>
              {text}
            </Notice>
          ))}
          {awaiting.map((o) => (
            <AddressForm
              key={o.order_id}
              order={o}
              call={(path, body) => api('PUT', path, body)}
              onSaved={(text) => {
                setShipped((list) => [...list, text]);
                void load();
              }}
            />
          ))}
        </section>
      )}

      <section aria-labelledby="wins-h">
        <h2 id="wins-h">Your prizes</h2>
        {orders.length === 0 ? (
          <p>You have not won a prize in this draw yet.</p>
        ) : (
          <ul class="wins" data-testid="wins">
            {orders.map((o) => (
              <li key={o.order_id}>
                <strong>{o.award.name}</strong> <span class="muted">({kindLabel(o.award.type)})</span>
                <div class="muted">Won {when(o.created_at)}</div>
                <div data-grant={o.grant_state}>{GRANT_LABELS[o.grant_state] ?? o.grant_state}</div>
                {o.delivery && o.grant_state === 'complete' && <div class="muted">{o.delivery}</div>}
              </li>
            ))}
          </ul>
        )}
      </section>
      <p>
        <button type="button" class="secondary" onClick={() => onSignOut()}>
          Sign out
        </button>
      </p>
    </main>
  );
}
