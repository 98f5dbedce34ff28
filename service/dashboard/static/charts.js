// Small SVG charts drawn from the statistics API's JSON: horizontal bars (one value per row), ranges (p50–p90
// with a whisker to the maximum), grouped bars and stacked bars.
//
// Horizontal rows suit the data: unit names are long Chinese labels that must stay readable on a phone, and the
// number of units varies. Charts are drawn for the container's measured width (not scaled by a viewBox), so text
// stays at its real size on a 360-pixel phone; `responsive()` redraws them when the width changes. Every chart
// has a <title> per mark for hover/long-press, and the pages also show the numbers in a table.

import { svg } from "./dom.js";

const FONT = 13;
const ROW = 28;
const AXIS = 22;

/** Rough rendered width of text: CJK glyphs are about 1 em, Latin about 0.58 em. */
function textWidth(text, size = FONT) {
  let em = 0;
  for (const ch of String(text)) em += ch.codePointAt(0) > 0x2e80 ? 1 : 0.58;
  return em * size;
}

/** Text cut with "…" to fit `px` pixels. */
export function fitText(text, px, size = FONT) {
  const value = String(text ?? "");
  if (textWidth(value, size) <= px) return value;
  let out = "";
  for (const ch of value) {
    if (textWidth(out + ch + "…", size) > px) break;
    out += ch;
  }
  return out + "…";
}

/** A "nice" axis maximum and step (1, 2, 2.5 or 5 × 10ⁿ) for values up to `max`; whole steps for counts. */
export function niceScale(max, ticks = 4, integer = false) {
  if (!(max > 0)) return integer ? { max: 1, step: 1 } : { max: 1, step: 0.25 };
  const raw = integer ? Math.max(1, max / ticks) : max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw && (!integer || Number.isInteger(s)));
  return { max: Math.ceil(max / step) * step, step };
}

function layout(width, rows, legendRows = 0, valueWidth = 64) {
  const labelWidth = Math.round(Math.min(Math.max(width * 0.3, 72), 170));
  const x0 = labelWidth + 8;
  const x1 = Math.max(x0 + 40, width - valueWidth);
  const top = AXIS + legendRows * 20;
  const height = top + rows * ROW + 8;
  return { labelWidth, x0, x1, top, height };
}

function frame(width, height, label) {
  return svg("svg", {
    class: "chart",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
  });
}

function axis(root, geo, scale, format, referenceLines = []) {
  const { x0, x1, top, height } = geo;
  const px = (v) => x0 + ((x1 - x0) * v) / scale.max;
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
    root.append(
      svg("line", { class: "grid", x1: px(v), x2: px(v), y1: top - 4, y2: height - 8 }),
      svg("text", { class: "tick", x: px(v), y: top - 8, "text-anchor": "middle" }, format(v)),
    );
  }
  for (const ref of referenceLines) {
    if (ref.value === null || ref.value === undefined || ref.value > scale.max) continue;
    root.append(
      svg(
        "line",
        { class: "reference", x1: px(ref.value), x2: px(ref.value), y1: top - 4, y2: height - 8 },
        svg("title", {}, ref.label),
      ),
    );
  }
  return px;
}

function rowLabel(root, geo, i, text) {
  const y = geo.top + i * ROW + ROW / 2;
  root.append(
    svg(
      "text",
      { class: "label", x: geo.labelWidth, y: y + 4, "text-anchor": "end" },
      fitText(text, geo.labelWidth - 4),
      svg("title", {}, text),
    ),
  );
  return y;
}

/** One bar per row. rows: [{label, value, colour?, title?}]. */
export function barChart({ rows, width, max, format = String, colour = "#3288bd", references = [], label = "" }) {
  const geo = layout(width, rows.length);
  const root = frame(width, geo.height, label);
  const scale = niceScale(max ?? Math.max(0, ...rows.map((r) => r.value || 0)));
  const px = axis(root, geo, scale, format, references);
  rows.forEach((row, i) => {
    const y = rowLabel(root, geo, i, row.label);
    const value = row.value || 0;
    root.append(
      svg(
        "rect",
        {
          class: "bar",
          x: geo.x0,
          y: y - 9,
          width: Math.max(0, px(value) - geo.x0),
          height: 18,
          rx: 2,
          fill: row.colour || colour,
        },
        svg("title", {}, row.title || `${row.label}: ${format(value)}`),
      ),
      svg("text", { class: "value", x: px(value) + 4, y: y + 4 }, row.value === null ? "—" : format(value)),
    );
  });
  return root;
}

/** Ranges: a solid bar to p50, a lighter one to p90 and a whisker to the maximum. rows: [{label, p50, p90, max, n}]. */
export function rangeChart({ rows, width, format, references = [], label = "", legend }) {
  const entries = [
    [legend.p50, "range-p50"],
    [legend.p90, "range-p90"],
    [legend.max, "range-max", "line"],
  ];
  const geo = layout(width, rows.length, drawLegend(null, 8, 12, entries, width - 16));
  const root = frame(width, geo.height, label);
  const scale = niceScale(Math.max(0, ...rows.map((r) => r.max || 0), ...references.map((r) => r.value || 0)));
  const px = axis(root, geo, scale, format, references);
  drawLegend(root, 8, 12, entries, width - 16);
  rows.forEach((row, i) => {
    const y = rowLabel(root, geo, i, row.label);
    if (!row.n) {
      root.append(svg("text", { class: "value muted", x: geo.x0 + 4, y: y + 4 }, legend.none));
      return;
    }
    const figures = [
      [legend.p50, row.p50],
      [legend.p90, row.p90],
      [legend.max, row.max],
    ].map(([name, value]) => `${name} ${format(value)}`);
    const title = `${row.label} — ${figures.join(", ")} (n=${row.n})`;
    const bar = (className, value) => {
      const attrs = { class: className, x: geo.x0, y: y - 9, width: Math.max(1, px(value) - geo.x0), height: 18 };
      return svg("rect", attrs, svg("title", {}, title));
    };
    root.append(
      svg("line", { class: "range-max", x1: px(row.p90), x2: px(row.max), y1: y, y2: y }),
      svg("line", { class: "range-max", x1: px(row.max), x2: px(row.max), y1: y - 6, y2: y + 6 }),
      bar("range-p90", row.p90),
      bar("range-p50", row.p50),
      svg("text", { class: "value", x: px(row.max) + 4, y: y + 4 }, `n=${row.n}`),
    );
  });
  return root;
}

/** Several bars per row. rows: [{label, values: [..]}], series: [{name, className}]. */
export function groupedBars({ rows, series, width, max, format = String, label = "" }) {
  const entries = series.map((s) => [s.name, s.className]);
  const geo = layout(width, rows.length, drawLegend(null, 8, 12, entries, width - 16), 28 + 40 * series.length);
  const root = frame(width, geo.height, label);
  const scale = niceScale(max ?? Math.max(0, ...rows.flatMap((r) => r.values.map((v) => v || 0))));
  const px = axis(root, geo, scale, format);
  drawLegend(root, 8, 12, entries, width - 16);
  const thickness = Math.min(9, 18 / series.length);
  rows.forEach((row, i) => {
    const y = rowLabel(root, geo, i, row.label);
    row.values.forEach((value, j) => {
      const top = y - (series.length * thickness) / 2 + j * thickness;
      const text = value === null || value === undefined ? "—" : format(value);
      root.append(
        svg(
          "rect",
          {
            class: series[j].className,
            x: geo.x0,
            y: top,
            width: Math.max(0, px(value || 0) - geo.x0),
            height: thickness - 1,
          },
          svg("title", {}, `${row.label} — ${series[j].name}: ${text}`),
        ),
      );
    });
    const summary = row.values.map((v) => (v === null || v === undefined ? "—" : format(v))).join(" / ");
    root.append(svg("text", { class: "value", x: geo.x1 + 4, y: y + 4 }, summary));
  });
  return root;
}

/** Stacked bars. rows: [{label, parts: {key: count}}], keys: [{key, name, className}]. */
export function stackedBars({ rows, keys, width, label = "" }) {
  const legendEntries = keys.map((k) => [k.name, k.className]);
  const geo = layout(width, rows.length, drawLegend(null, 8, 12, legendEntries, width - 16));
  const root = frame(width, geo.height, label);
  const totals = rows.map((r) => keys.reduce((s, k) => s + (r.parts[k.key] || 0), 0));
  const scale = niceScale(Math.max(0, ...totals), 4, true);
  const px = axis(root, geo, scale, (v) => String(v));
  drawLegend(root, 8, 12, legendEntries, width - 16);
  rows.forEach((row, i) => {
    const y = rowLabel(root, geo, i, row.label);
    let at = 0;
    for (const k of keys) {
      const value = row.parts[k.key] || 0;
      if (!value) continue;
      root.append(
        svg(
          "rect",
          { class: k.className, x: px(at), y: y - 9, width: Math.max(1, px(at + value) - px(at)), height: 18 },
          svg("title", {}, `${row.label} — ${k.name}: ${value}`),
        ),
      );
      at += value;
    }
    root.append(svg("text", { class: "value", x: px(at) + 4, y: y + 4 }, String(totals[i])));
  });
  return root;
}

/** Legend entries [name, className, shape?] in rows that wrap at maxWidth; returns the number of rows. */
function drawLegend(root, x, y, entries, maxWidth = Infinity) {
  let cx = x;
  let cy = y;
  let rows = 1;
  for (const [name, className, shape] of entries) {
    const w = 16 + textWidth(name, 12) + 14;
    if (cx + w > x + maxWidth && cx > x) {
      cx = x;
      cy += 20;
      rows += 1;
    }
    if (root) {
      // A whisker is shown as a line, so it is not mistaken for a bar of the same colour.
      const mark =
        shape === "line"
          ? svg("line", { class: [className, "legend-mark"], x1: cx, x2: cx + 12, y1: cy - 3, y2: cy - 3 })
          : svg("rect", { class: [className, "legend-mark"], x: cx, y: cy - 9, width: 12, height: 12 });
      root.append(mark, svg("text", { class: "legend", x: cx + 16, y: cy + 2 }, name));
    }
    cx += w;
  }
  return rows;
}

/**
 * Draw `draw(width)` into `container` now and again whenever its width changes (phone rotation, window resize).
 * Returns a function that stops watching.
 */
export function responsive(container, draw) {
  let last = -1;
  const render = () => {
    const width = Math.floor(container.clientWidth);
    if (width <= 0 || width === last) return;
    last = width;
    container.replaceChildren(draw(width));
  };
  const observer = new ResizeObserver(render);
  observer.observe(container);
  render();
  return () => observer.disconnect();
}
