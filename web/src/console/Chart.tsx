// Configured versus simulated rates as a bar chart, with the same numbers in a table for
// those who cannot see the chart.

import { formatPercent, UNITS } from '../rates';

export interface ChartRow {
  label: string;
  /** Configured probability in units of 1e-8. */
  configured: number;
  /** Observed share of the simulated draws, 0 to 1. */
  simulated: number;
  wins: number;
}

const WIDTH = 640;
const ROW = 64;

function pct(fraction: number): string {
  return `${(fraction * 100).toFixed(fraction > 0 && fraction < 0.001 ? 4 : 2)}%`;
}

export function RateChart({ rows, draws, title }: { rows: ChartRow[]; draws: number; title: string }) {
  const max = Math.max(0.0001, ...rows.map((r) => Math.max(r.configured / UNITS, r.simulated)));
  const barMax = WIDTH - 90;
  const height = rows.length * ROW + 8;
  const summary = rows
    .map((r) => `${r.label}: configured ${formatPercent(r.configured)}, simulated ${pct(r.simulated)}`)
    .join('; ');
  return (
    <figure class="chart panel">
      <figcaption>
        <strong>{title}</strong> <span class="muted">({draws.toLocaleString()} simulated draws)</span>
      </figcaption>
      <div class="legend" aria-hidden="true">
        <span>
          <span class="swatch configured" />
          Configured
        </span>
        <span>
          <span class="swatch simulated" />
          Simulated
        </span>
      </div>
      <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-label={`Bar chart. ${summary}`}>
        {rows.map((r, i) => {
          const y = i * ROW + 4;
          const c = ((r.configured / UNITS) / max) * barMax;
          const s = (r.simulated / max) * barMax;
          return (
            <g key={r.label}>
              <text x={0} y={y + 14} font-size="15" fill="#1b1f24" font-weight="600">
                {r.label}
              </text>
              <rect x={0} y={y + 22} width={Math.max(c, 1)} height={14} rx={3} fill="#0a58a8" />
              <text x={Math.max(c, 1) + 6} y={y + 34} font-size="13" fill="#1b1f24">
                {formatPercent(r.configured)}
              </text>
              <rect x={0} y={y + 40} width={Math.max(s, 1)} height={14} rx={3} fill="#e08a00" />
              <text x={Math.max(s, 1) + 6} y={y + 52} font-size="13" fill="#1b1f24">
                {pct(r.simulated)}
              </text>
            </g>
          );
        })}
      </svg>
      <div class="table-wrap" role="region" aria-label={`${title}: numbers`} tabIndex={0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Outcome</th>
              <th scope="col" class="num">
                Configured
              </th>
              <th scope="col" class="num">
                Simulated
              </th>
              <th scope="col" class="num">
                Simulated draws
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.label}>
                <th scope="row">{r.label}</th>
                <td class="num">{formatPercent(r.configured)}</td>
                <td class="num">{pct(r.simulated)}</td>
                <td class="num">{r.wins.toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
}
