/**
 * @module charts
 * Two small hand-drawn SVG charts (no chart library to ship): bars and a line, with the axis
 * labels a glance needs. Drawn on the server; the system page re-fetches them every few seconds.
 */

export function BarChart(props: { values: { label: string; value: number }[]; unit?: string }) {
  const w = 600, h = 160, pad = 24;
  const max = Math.max(1, ...props.values.map((v) => v.value));
  const bw = (w - pad * 2) / Math.max(1, props.values.length);
  return (
    <svg class="chart" viewBox={`0 0 ${w} ${h}`} role="img">
      <line x1={pad} y1={h - pad} x2={w - pad} y2={h - pad} stroke="#cbd2dc" />
      <text x={2} y={12}>{max}{props.unit ?? ""}</text>
      {props.values.map((v, i) => {
        const bh = ((h - pad * 2) * v.value) / max;
        const x = pad + i * bw;
        return (
          <g>
            <rect x={x + 1} y={h - pad - bh} width={Math.max(1, bw - 2)} height={bh} fill="#0f6bdc">
              <title>{v.label}: {v.value}</title>
            </rect>
            {i % 3 === 0 ? <text x={x} y={h - 8}>{v.label}</text> : null}
          </g>
        );
      })}
    </svg>
  );
}

export function LineChart(props: { values: number[]; label?: string }) {
  const w = 600, h = 160, pad = 24;
  const max = Math.max(1, ...props.values);
  const n = props.values.length;
  const step = (w - pad * 2) / Math.max(1, n - 1);
  const points = props.values.map((v, i) =>
    `${(pad + i * step).toFixed(1)},${(h - pad - ((h - pad * 2) * v) / max).toFixed(1)}`
  ).join(" ");
  return (
    <svg class="chart" viewBox={`0 0 ${w} ${h}`} role="img">
      <line x1={pad} y1={h - pad} x2={w - pad} y2={h - pad} stroke="#cbd2dc" />
      <text x={2} y={12}>{max.toFixed(1)}</text>
      <text x={pad} y={h - 8}>{props.label ?? ""}</text>
      {n > 1 ? <polyline points={points} fill="none" stroke="#15803d" stroke-width="2" /> : null}
    </svg>
  );
}
