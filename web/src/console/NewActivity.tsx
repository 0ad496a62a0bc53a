// Creating an activity: a form that checks itself as it is filled in, previews the odds with
// the simulate endpoint, and deploys with POST /api/v1/admin/activities.

import { useMemo, useState } from 'preact/hooks';
import type { Deployed, Simulation } from '../api';
import { count, KIND_LABELS } from '../format';
import { formatPercent, parsePercent, UNITS, unitsToRate } from '../rates';
import { ErrorNotice, Field, Notice } from '../ui';
import { type PageProps, useCall } from './Activities';
import { type ChartRow, RateChart } from './Chart';
import { navigate } from './router';

interface AwardDraft {
  key: number;
  type: string;
  name: string;
  content: string;
  count: string;
  rate: string;
}

interface Draft {
  name: string;
  description: string;
  begin: string;
  end: string;
  stock: string;
  takeLimit: string;
  mode: 'single' | 'entirety';
  fallback: string;
  awards: AwardDraft[];
}

const CONTENT_HINTS: Record<string, string> = {
  description: 'The message the winner sees.',
  redeem_code: 'Code batch prefix: letters, digits, - and _ only.',
  coupon: 'The coupon template to issue.',
  physical: 'The item, e.g. a SKU. Winners give a shipping address.',
};

const MAX_NAME = 128;
const MAX_DESCRIPTION = 4096;
const MAX_AWARDS = 128;
const SIMULATED_DRAWS = 100_000;

let nextKey = 0;
function award(type = 'coupon'): AwardDraft {
  return { key: ++nextKey, type, name: '', content: '', count: '', rate: '' };
}

/** A datetime-local value for `d` in the browser's time zone. */
function localInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function wholeNumber(text: string, min: number): number | string {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return 'Enter a whole number';
  const n = Number(t);
  if (n < min) return `At least ${min}`;
  if (n > 4_294_967_295) return 'Too large';
  return n;
}

interface Checked {
  errors: Record<string, string>;
  warnings: Record<string, string>;
  units: (number | null)[];
  sum: number;
  stock: number | null;
  totalPrizes: number;
}

function check(d: Draft): Checked {
  const errors: Record<string, string> = {};
  const warnings: Record<string, string> = {};
  const name = d.name.trim();
  if (!name) errors.name = 'Give the activity a name';
  else if ([...name].length > MAX_NAME) errors.name = `At most ${MAX_NAME} characters`;
  if ([...d.description].length > MAX_DESCRIPTION) errors.description = `At most ${MAX_DESCRIPTION} characters`;
  const begin = new Date(d.begin);
  const end = new Date(d.end);
  if (Number.isNaN(begin.getTime())) errors.begin = 'Choose when the draw opens';
  if (Number.isNaN(end.getTime())) errors.end = 'Choose when the draw ends';
  else if (!errors.begin && end <= begin) errors.end = 'The end must come after the beginning';
  const stock = wholeNumber(d.stock, 1);
  if (typeof stock === 'string') errors.stock = stock;
  const takes = wholeNumber(d.takeLimit, 1);
  if (typeof takes === 'string') errors.takeLimit = takes;
  if (d.awards.length === 0) errors.awards = 'Add at least one prize';
  if (d.awards.length > MAX_AWARDS) errors.awards = `At most ${MAX_AWARDS} prizes`;

  const units: (number | null)[] = [];
  let sum = 0;
  let totalPrizes = 0;
  const stockN = typeof stock === 'number' ? stock : null;
  for (const a of d.awards) {
    const at = `award.${a.key}`;
    if (!a.name.trim()) errors[`${at}.name`] = 'Name the prize';
    if (a.type === 'redeem_code' && !/^[A-Za-z0-9_-]*$/.test(a.content)) {
      errors[`${at}.content`] = 'Only letters, digits, - and _';
    }
    if (a.type === 'coupon' && !a.content.trim()) errors[`${at}.content`] = 'Name the coupon template';
    const n = wholeNumber(a.count, 0);
    if (typeof n === 'string') errors[`${at}.count`] = n;
    else totalPrizes += n;
    const r = parsePercent(a.rate);
    if ('error' in r) {
      errors[`${at}.rate`] = r.error;
      units.push(null);
    } else {
      units.push(r.units);
      sum += r.units;
      if (r.units === 0) warnings[`${at}.rate`] = 'At 0% this prize is only given as the fallback';
    }
    if (typeof n === 'number' && stockN !== null && !errors[`${at}.rate`] && !('error' in r)) {
      const expected = (stockN * r.units) / UNITS;
      if (n === 0) warnings[`${at}.count`] = 'None to give: it can never be won';
      else if (n > stockN) warnings[`${at}.count`] = `More than the ${count(stockN)} draws the stock allows`;
      else if (d.mode === 'single' && expected > n * 1.05) {
        warnings[`${at}.count`] =
          `About ${count(Math.round(expected))} wins expected over the whole stock: it will likely run out`;
      }
    }
  }
  if (sum > UNITS) errors.rates = `The rates add up to ${formatPercent(sum)}: at most 100%`;
  else if (d.awards.length > 0 && units.every((u) => u === 0)) errors.rates = 'Every rate is 0%: nothing could be won';
  return { errors, warnings, units, sum, stock: stockN, totalPrizes };
}

function fieldsOf(d: Draft): string[] {
  const base = ['name', 'description', 'begin', 'end', 'stock', 'takeLimit'];
  for (const a of d.awards) {
    for (const f of ['name', 'content', 'count', 'rate']) base.push(`award.${a.key}.${f}`);
  }
  return base;
}

export function NewActivity(props: PageProps) {
  const api = useCall(props);
  const [draft, setDraft] = useState<Draft>(() => {
    const now = new Date();
    now.setSeconds(0, 0);
    return {
      name: '',
      description: '',
      begin: localInput(now),
      end: localInput(new Date(now.getTime() + 7 * 24 * 3600 * 1000)),
      stock: '1000',
      takeLimit: '3',
      mode: 'single',
      fallback: '',
      awards: [award('coupon')],
    };
  });
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [showAll, setShowAll] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [preview, setPreview] = useState<{ rows: ChartRow[]; draws: number } | null>(null);
  const [previewError, setPreviewError] = useState<unknown>(null);

  const checked = useMemo(() => check(draft), [draft]);
  const shown = (key: string) => (showAll || touched.has(key) ? checked.errors[key] : undefined);
  const touch = (key: string) =>
    setTouched((t) => {
      if (t.has(key)) return t;
      const next = new Set(t);
      next.add(key);
      return next;
    });
  const set = <K extends keyof Draft>(key: K, value: Draft[K]) => {
    setDraft((d) => ({ ...d, [key]: value }));
    touch(key);
    setPreview(null);
  };
  const setAward = (k: number, field: keyof AwardDraft, value: string) => {
    setDraft((d) => ({ ...d, awards: d.awards.map((a) => (a.key === k ? { ...a, [field]: value } : a)) }));
    touch(`award.${k}.${field}`);
    setPreview(null);
  };

  const strategyAwards = () =>
    draft.awards.map((_a, i) => ({ award_id: String(i + 1), rate: unitsToRate(checked.units[i] ?? 0) }));

  const ratesValid = () =>
    !checked.errors.rates && draft.awards.length > 0 && checked.units.every((u) => u !== null);

  const runPreview = async () => {
    setPreviewError(null);
    if (!ratesValid()) {
      setShowAll(true);
      setPreviewError(new Error('Fix the rates first.'));
      return;
    }
    try {
      const sim = await api<Simulation>('POST', '/api/v1/admin/strategies/simulate', {
        mode: draft.mode,
        awards: strategyAwards(),
        draws: SIMULATED_DRAWS,
      });
      const rows: ChartRow[] = draft.awards.map((a, i) => {
        const r = sim.awards.find((x) => x.award_id === String(i + 1));
        return {
          label: a.name.trim() || `Prize ${i + 1}`,
          configured: checked.units[i] ?? 0,
          simulated: r ? r.observed : 0,
          wins: r ? r.wins : 0,
        };
      });
      if (draft.mode === 'single') {
        rows.push({
          label: 'No prize',
          configured: UNITS - checked.sum,
          simulated: sim.draws ? sim.nothing / sim.draws : 0,
          wins: sim.nothing,
        });
      }
      setPreview({ rows, draws: sim.draws });
    } catch (e) {
      setPreviewError(e);
    }
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setShowAll(true);
    setError(null);
    const bad = fieldsOf(draft).find((f) => checked.errors[f]);
    if (bad || checked.errors.rates || checked.errors.awards) {
      // Take the keyboard to the first field that needs fixing.
      const el = bad ? document.querySelector<HTMLElement>(`[data-field="${bad}"]`) : null;
      (el ?? document.getElementById('rate-summary'))?.focus();
      return;
    }
    const fallbackIndex = draft.awards.findIndex((a) => String(a.key) === draft.fallback);
    setBusy(true);
    try {
      const deployed = await api<Deployed>('POST', '/api/v1/admin/activities', {
        name: draft.name.trim(),
        description: draft.description,
        begin_time: new Date(draft.begin).toISOString(),
        end_time: new Date(draft.end).toISOString(),
        stock: Number(draft.stock),
        take_limit: Number(draft.takeLimit),
        strategy: {
          mode: draft.mode,
          awards: draft.awards.map((a, i) => ({
            type: a.type,
            name: a.name.trim(),
            content: a.content,
            count: Number(a.count),
            rate: unitsToRate(checked.units[i] ?? 0),
          })),
        },
      });
      // The fallback names an award id, which exists only once deployed: set it with a
      // revision while the activity is still being edited.
      if (fallbackIndex >= 0) {
        await api('PUT', `/api/v1/admin/activities/${deployed.activity_id}`, {
          name: draft.name.trim(),
          description: draft.description,
          begin_time: new Date(draft.begin).toISOString(),
          end_time: new Date(draft.end).toISOString(),
          stock: Number(draft.stock),
          take_limit: Number(draft.takeLimit),
          strategy: {
            mode: draft.mode,
            fallback_award_id: deployed.award_ids[fallbackIndex],
            awards: draft.awards.map((a, i) => ({
              award_id: deployed.award_ids[i],
              type: a.type,
              name: a.name.trim(),
              content: a.content,
              count: Number(a.count),
              rate: unitsToRate(checked.units[i] ?? 0),
            })),
          },
        });
      }
      navigate(`/console/activities/${deployed.activity_id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const remainder = UNITS - checked.sum;
  const stock = checked.stock;

  return (
    <>
      <h1>New activity</h1>
      <form onSubmit={submit} noValidate>
        <fieldset>
          <legend>Activity</legend>
          <Field label="Name" error={shown('name')}>
            {(id, d, invalid) => (
              <input
                id={id}
                data-field="name"
                value={draft.name}
                maxLength={MAX_NAME * 2}
                aria-describedby={d}
                aria-invalid={invalid}
                aria-required="true"
                onInput={(e) => set('name', e.currentTarget.value)}
                onBlur={() => touch('name')}
              />
            )}
          </Field>
          <Field label="Description" error={shown('description')} hint="Shown to players.">
            {(id, d, invalid) => (
              <textarea
                id={id}
                data-field="description"
                value={draft.description}
                aria-describedby={d}
                aria-invalid={invalid}
                onInput={(e) => set('description', e.currentTarget.value)}
              />
            )}
          </Field>
          <div class="grid-2">
            <Field label="Opens" error={shown('begin')} hint="Your local time.">
              {(id, d, invalid) => (
                <input
                  id={id}
                  data-field="begin"
                  type="datetime-local"
                  value={draft.begin}
                  aria-describedby={d}
                  aria-invalid={invalid}
                  onInput={(e) => set('begin', e.currentTarget.value)}
                />
              )}
            </Field>
            <Field label="Ends" error={shown('end')}>
              {(id, d, invalid) => (
                <input
                  id={id}
                  data-field="end"
                  type="datetime-local"
                  value={draft.end}
                  aria-describedby={d}
                  aria-invalid={invalid}
                  onInput={(e) => set('end', e.currentTarget.value)}
                />
              )}
            </Field>
            <Field label="Stock (draws in all)" error={shown('stock')}>
              {(id, d, invalid) => (
                <input
                  id={id}
                  data-field="stock"
                  inputMode="numeric"
                  value={draft.stock}
                  aria-describedby={d}
                  aria-invalid={invalid}
                  onInput={(e) => set('stock', e.currentTarget.value)}
                />
              )}
            </Field>
            <Field label="Draws per player" error={shown('takeLimit')}>
              {(id, d, invalid) => (
                <input
                  id={id}
                  data-field="takeLimit"
                  inputMode="numeric"
                  value={draft.takeLimit}
                  aria-describedby={d}
                  aria-invalid={invalid}
                  onInput={(e) => set('takeLimit', e.currentTarget.value)}
                />
              )}
            </Field>
          </div>
        </fieldset>

        <fieldset>
          <legend>Strategy and prizes</legend>
          <div class="grid-2">
            <Field
              label="Draw mode"
              hint={
                draft.mode === 'single'
                  ? 'Each prize has its own odds; the rest of the draws win nothing.'
                  : 'Every draw wins one of the prizes still in stock, in proportion to their rates.'
              }
            >
              {(id, d) => (
                <select
                  id={id}
                  value={draft.mode}
                  aria-describedby={d}
                  onChange={(e) => set('mode', e.currentTarget.value as Draft['mode'])}
                >
                  <option value="single">Single: own odds per prize</option>
                  <option value="entirety">Entirety: every draw wins</option>
                </select>
              )}
            </Field>
            <Field label="Fallback prize" hint="Given instead when the drawn prize has run out.">
              {(id, d) => (
                <select id={id} value={draft.fallback} aria-describedby={d} onChange={(e) => set('fallback', e.currentTarget.value)}>
                  <option value="">None (no prize)</option>
                  {draft.awards.map((a, i) => (
                    <option value={String(a.key)}>{a.name.trim() || `Prize ${i + 1}`}</option>
                  ))}
                </select>
              )}
            </Field>
          </div>

          {draft.awards.map((a, i) => {
            const at = `award.${a.key}`;
            const units = checked.units[i];
            return (
              <div class="award-row" key={a.key} role="group" aria-label={`Prize ${i + 1}`}>
                <div class="row">
                  <h3>Prize {i + 1}</h3>
                  <span class="spacer" />
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Remove prize ${i + 1}`}
                    disabled={draft.awards.length === 1}
                    onClick={() => {
                      setDraft((dr) => ({
                        ...dr,
                        awards: dr.awards.filter((x) => x.key !== a.key),
                        fallback: dr.fallback === String(a.key) ? '' : dr.fallback,
                      }));
                      setPreview(null);
                    }}
                  >
                    Remove
                  </button>
                </div>
                <div class="grid">
                  <Field label="Type">
                    {(id) => (
                      <select id={id} value={a.type} onChange={(e) => setAward(a.key, 'type', e.currentTarget.value)}>
                        {Object.entries(KIND_LABELS).map(([value, label]) => (
                          <option value={value}>{label}</option>
                        ))}
                      </select>
                    )}
                  </Field>
                  <Field label="Name" error={shown(`${at}.name`)}>
                    {(id, d, invalid) => (
                      <input
                        id={id}
                        data-field={`${at}.name`}
                        value={a.name}
                        aria-describedby={d}
                        aria-invalid={invalid}
                        onInput={(e) => setAward(a.key, 'name', e.currentTarget.value)}
                      />
                    )}
                  </Field>
                  <Field label="Content" error={shown(`${at}.content`)} hint={CONTENT_HINTS[a.type]}>
                    {(id, d, invalid) => (
                      <input
                        id={id}
                        data-field={`${at}.content`}
                        value={a.content}
                        aria-describedby={d}
                        aria-invalid={invalid}
                        onInput={(e) => setAward(a.key, 'content', e.currentTarget.value)}
                      />
                    )}
                  </Field>
                  <Field
                    label="Count"
                    error={shown(`${at}.count`)}
                    hint={!shown(`${at}.count`) ? checked.warnings[`${at}.count`] : undefined}
                  >
                    {(id, d, invalid) => (
                      <input
                        id={id}
                        data-field={`${at}.count`}
                        inputMode="numeric"
                        value={a.count}
                        aria-describedby={d}
                        aria-invalid={invalid}
                        onInput={(e) => setAward(a.key, 'count', e.currentTarget.value)}
                      />
                    )}
                  </Field>
                  <Field
                    label="Rate (%)"
                    error={shown(`${at}.rate`)}
                    hint={
                      checked.warnings[`${at}.rate`] ??
                      (units != null && stock != null
                        ? `≈ ${count(Math.round((stock * units) / UNITS))} of ${count(stock)} draws`
                        : undefined)
                    }
                  >
                    {(id, d, invalid) => (
                      <input
                        id={id}
                        data-field={`${at}.rate`}
                        inputMode="decimal"
                        value={a.rate}
                        placeholder="e.g. 0.05"
                        aria-describedby={d}
                        aria-invalid={invalid}
                        onInput={(e) => setAward(a.key, 'rate', e.currentTarget.value)}
                      />
                    )}
                  </Field>
                </div>
              </div>
            );
          })}
          <button
            type="button"
            class="secondary"
            disabled={draft.awards.length >= MAX_AWARDS}
            onClick={() => setDraft((d) => ({ ...d, awards: [...d.awards, award('description')] }))}
          >
            Add a prize
          </button>

          <div id="rate-summary" class="panel" tabIndex={-1} aria-live="polite">
            {checked.errors.rates ? (
              <p class="error" role="alert">
                <strong>{checked.errors.rates}</strong>
              </p>
            ) : (
              <p>
                Rates add up to <strong>{formatPercent(checked.sum)}</strong>.{' '}
                {draft.mode === 'single' ? (
                  <>
                    No prize: <strong>{formatPercent(Math.max(0, remainder))}</strong> of draws.
                  </>
                ) : (
                  <>Every draw wins; rates are scaled over the prizes in stock.</>
                )}
              </p>
            )}
            {checked.errors.awards && <p class="error">{checked.errors.awards}</p>}
            <p>
              Prizes in all: <strong>{count(checked.totalPrizes)}</strong>
              {stock != null && (
                <>
                  {' '}
                  for a stock of <strong>{count(stock)}</strong> draws
                  {checked.totalPrizes > stock
                    ? ` (${count(checked.totalPrizes - stock)} more prizes than draws)`
                    : ''}
                </>
              )}
              .
            </p>
          </div>
        </fieldset>

        <div class="row">
          <button type="button" class="secondary" onClick={() => void runPreview()}>
            Preview odds
          </button>
          <button type="submit" disabled={busy}>
            {busy ? 'Creating…' : 'Create activity'}
          </button>
        </div>
        <ErrorNotice error={previewError} />
        {preview && <RateChart title="Odds preview" rows={preview.rows} draws={preview.draws} />}
        <ErrorNotice error={error} />
        {showAll && Object.keys(checked.errors).length > 0 && (
          <Notice kind="bad">Some fields need fixing; they are marked above.</Notice>
        )}
      </form>
    </>
  );
}
