// Rates are exact: the API takes a probability as a decimal string with at most 8 decimal
// places ("0.0005"), i.e. whole units of 1e-8. People enter percentages ("0.05"), which
// have at most 6 decimal places. All sums are done on integer units, never on floats.

export const UNITS = 100_000_000; // 1.0 as units of 1e-8
const PERCENT_UNITS = 1_000_000; // 1% as units of 1e-8

export type Parsed = { units: number } | { error: string };

/** Parses a percentage typed by a person: "12", "0.05", "12.5%". */
export function parsePercent(text: string): Parsed {
  const t = text.trim().replace(/%$/, '').trim();
  if (t === '') return { error: 'Enter a rate in percent, e.g. 0.05' };
  const m = /^(\d*)(?:[.,](\d*))?$/.exec(t);
  if (!m || (m[1] === '' && (m[2] ?? '') === '')) return { error: 'Use digits, e.g. 12.5' };
  const whole = m[1] === '' ? 0 : Number(m[1]);
  const frac = m[2] ?? '';
  if (frac.length > 6) return { error: 'At most 6 decimal places' };
  const units = whole * PERCENT_UNITS + Number(frac.padEnd(6, '0') || '0');
  if (units > UNITS) return { error: 'At most 100%' };
  return { units };
}

/** Units as the API's decimal probability string: 50000 -> "0.0005". */
export function unitsToRate(units: number): string {
  const whole = Math.floor(units / UNITS);
  const frac = String(units % UNITS).padStart(8, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : String(whole);
}

/** The API's decimal probability string as units: "0.0005" -> 50000 (NaN if malformed). */
export function rateToUnits(rate: string): number {
  const m = /^(\d+)(?:\.(\d{0,8}))?$/.exec(rate.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * UNITS + Number((m[2] ?? '').padEnd(8, '0') || '0');
}

/** Units as a percentage for people: 50000 -> "0.05%". */
export function formatPercent(units: number): string {
  if (!Number.isFinite(units)) return '?';
  const whole = Math.floor(units / PERCENT_UNITS);
  const frac = String(units % PERCENT_UNITS).padStart(6, '0').replace(/0+$/, '');
  return `${frac ? `${whole}.${frac}` : whole}%`;
}

/** A probability as "1 in N" for people, when that reads better than a tiny percentage. */
export function oneIn(units: number): string | null {
  if (!(units > 0) || units > UNITS / 10) return null;
  const n = UNITS / units;
  const rounded = n >= 100 ? Math.round(n) : Math.round(n * 10) / 10;
  return `1 in ${rounded.toLocaleString()}`;
}
