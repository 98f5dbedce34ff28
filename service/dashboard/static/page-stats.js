// Statistics (response times, deadline compliance, outcomes) and accountability scores, drawn from the
// statistics API. The API enforces the caller's scope (a patrol user sees its own unit, a supervisor its county);
// an out-of-scope area comes back as 403 and is shown as such.
//
// The chosen period, area and breakdown live in the URL fragment (#/stats?period=…), so a page can be
// bookmarked or sent to a colleague; it holds no secrets.

import { api, currentSession } from "./api.js";
import { barChart, groupedBars, rangeChart, responsive, stackedBars } from "./charts.js";
import { card, errorBox, fmtNumber, fmtPercent, fmtTime, h, localDay, replace, table } from "./dom.js";
import { lang, t } from "./i18n.js";

const GROUPS = ["township", "county", "source", "day"];
const INTERVALS = ["acknowledge", "on_site", "extinguished", "closed", "travel"];
const PRESETS = ["7d", "30d", "month", "quarter", "year", "custom"];
// The outcome of every fire point, in stacking order (they add up to the fire points; duplicates are apart).
const OUTCOMES = ["violations", "false_alarms", "permitted_burns", "open"];
// repeat_at_site: fire points at the place of an earlier real fire (同一地点再次起火), whatever their outcome.
const OUTCOME_COLUMNS = ["fire_points", ...OUTCOMES, "duplicates", "repeat_at_site"];
// The rules a score line can come from (service/stats/scoring.py); "fire_point:<source>" names the sensor.
const RULES = ["late_acknowledge", "late_on_site", "late_feedback", "self_found", "unreported", "concealed", "density"];

/** A score line's rule in the reader's language ("签收超时", "卫星火点"); an unknown code as it is. */
function ruleLabel(rule) {
  const [name, source] = String(rule).split(":");
  if (name === "fire_point" && source) return t("rule.fire_point", { source: t(`kind.${source}`) });
  return RULES.includes(name) ? t(`rule.${name}`) : String(rule);
}

/** A note the service explains a score line or warns about a score board with (service/stats/wording.py NoteCode),
 * in the reader's language from its code and params; null for a code this dashboard does not know yet (the caller
 * shows the server's English words instead, as page-status.js does for problems). */
export function noteText(note) {
  const p = (note && note.params) || {};
  const factor = fmtNumber(p.factor, 2);
  switch (note && note.code) {
    case "large_area":
      return t("scores.note.large_area", {
        burned: fmtNumber(p.burned_m2, 1),
        limit: fmtNumber(p.limit_m2, 1),
        factor,
      });
    case "failed_verification":
      return t("scores.note.failed_verification", { factor });
    case "repeat_at_site":
      return t("scores.note.repeat_at_site", { incident: p.incident, factor });
    case "not_fed_back_within":
      return t("scores.note.not_fed_back_within", { hours: fmtNumber(p.hours, 1) });
    case "density": {
      const figures = { violations: fmtNumber(p.violations), basis_ha: fmtNumber(p.basis_ha) };
      return p.basis === "area" ? t("scores.note.density_area", figures) : t("scores.note.density_cropland", figures);
    }
    case "rules_changed":
      if (p.uncovered !== undefined) {
        return t("scores.warning.rules_uncovered", {
          uncovered: p.uncovered,
          days: p.uncovered_days,
          scored_with: p.scored_with,
          file: p.file,
          from: p.effective_from,
        });
      }
      // first_day 0: no version was in force on the period's first day (older servers did not say: 1)
      return t(p.first_day === 0 ? "scores.warning.rules_changed_later" : "scores.warning.rules_changed", {
        version: p.version,
        file: p.file,
        from: p.effective_from,
        scored_with: p.scored_with,
      });
    case "level_fallback":
      return t("scores.warning.level_fallback", {
        preferred: t(`group.${p.preferred}`),
        chosen: t(`group.${p.chosen}`),
      });
    case "unscored":
      return t("scores.warning.unscored", { n: fmtNumber(p.n), level: t(`group.${p.level}`) });
    case "provisional":
      return t("scores.warning.provisional", { n: fmtNumber(p.n), units: fmtNumber(p.units), as_of: fmtTime(p.as_of) });
    default:
      return null;
  }
}

/** A note as a node: in the reader's language, or the server's English (marked so for screen readers). */
function noteNode(note, english) {
  const said = note ? noteText(note) : null;
  if (said === null) return h("span", { lang: "en", dataset: { code: (note && note.code) || "" } }, english);
  return h("span", { dataset: { code: note.code } }, said);
}

/** The notes behind a score line ("burned 1500 m² > 300 m² ×2; failed verification ×2"); null when none. A server
 * without note codes sends only the English `note`. */
function itemNotes(item) {
  const notes = Array.isArray(item.notes) ? item.notes : [];
  if (!notes.length) return item.note ? noteNode(null, item.note) : null;
  const separator = lang() === "en" ? "; " : "；";
  return h(
    "span",
    { class: "notes" },
    notes.flatMap((note, i) => [i ? separator : "", noteNode(note, note.text)]),
  );
}

/** The API's period string for a preset, counted in Beijing days. */
export function periodOf(preset, custom) {
  const today = localDay(0);
  const [year, month] = today.split("-");
  switch (preset) {
    case "7d":
      return `${localDay(-6)}..${today}`;
    case "30d":
      return `${localDay(-29)}..${today}`;
    case "month":
      return `${year}-${month}`;
    case "quarter":
      return `${year}-Q${Math.floor((Number(month) - 1) / 3) + 1}`;
    case "year":
      return year;
    default:
      return custom || today;
  }
}

/** Period and area controls shared by both pages; `extra` adds [name, select] pairs. Submitting navigates. */
function controls(ctx, route, extra = []) {
  const preset = PRESETS.includes(ctx.query.get("preset")) ? ctx.query.get("preset") : "30d";
  const custom = h("input", {
    id: "period-custom",
    value: ctx.query.get("period") || "",
    placeholder: "2025-11 · 2025-Q4 · 2025-11-01..2025-11-15",
    "aria-label": t("stats.period_custom"),
    hidden: preset !== "custom",
  });
  const presetSelect = h(
    "select",
    { id: "period-preset", onchange: () => (custom.hidden = presetSelect.value !== "custom") },
    PRESETS.map((p) => h("option", { value: p, selected: p === preset }, t(`period.${p}`))),
  );
  const area = h("input", {
    id: "area",
    value: ctx.query.get("area") || "",
    placeholder: ctx.session.unit_code || t("stats.area_all"),
    size: 10,
    autocapitalize: "characters",
  });
  const apply = (event) => {
    event.preventDefault();
    const query = new URLSearchParams({ preset: presetSelect.value });
    if (presetSelect.value === "custom") query.set("period", custom.value.trim());
    if (area.value.trim()) query.set("area", area.value.trim());
    for (const [name, el] of extra) query.set(name, el.value);
    ctx.navigate(`${route}?${query}`);
  };
  const form = h(
    "form",
    { class: "controls", id: "stats-controls", onsubmit: apply },
    h("label", {}, t("stats.period"), presetSelect),
    custom,
    h("label", {}, t("stats.area"), area),
    extra.map(([name, el]) => h("label", {}, t(`stats.${name}`), el)),
    h("button", { type: "submit", class: "primary" }, t("stats.apply")),
  );
  return { form, period: periodOf(preset, ctx.query.get("period")), area: ctx.query.get("area") || null };
}

function select(name, values, current, labelPrefix) {
  return h(
    "select",
    { id: `select-${name}` },
    values.map((v) => h("option", { value: v, selected: v === current }, t(`${labelPrefix}.${v}`))),
  );
}

/** "2025-11 (2025-11-01 to 2025-11-30, Beijing time) · area X"; a range label is not repeated. */
function scopeText(period, area) {
  const days = t("stats.days", { first: period.first_day, last: period.last_day });
  const when = period.label.includes("..") ? days : `${period.label} (${days})`;
  return t("stats.scope", { when, area: area || t("stats.area_all") });
}

function groupLabel(group, groupBy) {
  if (group.key === null) return t("stats.unassigned");
  if (groupBy === "source") return t(`kind.${group.key}`);
  return group.name || group.key;
}

function chartBox(ctx, id, draw) {
  const box = h("div", { class: "chart-box", id });
  // Drawn once the box is in the page (it needs a width); redrawn when the width changes.
  queueMicrotask(() => ctx.onCleanup(responsive(box, draw)));
  return box;
}

function tile(label, value, id) {
  return h(
    "div",
    { class: "tile", id },
    h("span", { class: "tile-value" }, value),
    h("span", { class: "tile-label" }, label),
  );
}

/** A table; columns listed in `textColumns` are left-aligned text, the others right-aligned figures. */
function page(main, className, title, form) {
  const body = h("div", { id: `${className}-body` }, h("p", { class: "loading" }, t("common.loading")));
  replace(
    main,
    h(
      "div",
      { class: `page ${className}-page` },
      h("div", { class: "page-head" }, h("h1", {}, title)),
      card(null, form),
      body,
    ),
  );
  return body;
}

const minutes = (v) => (v === null || v === undefined ? "—" : `${fmtNumber(v, v < 10 ? 1 : 0)}′`);
const noData = () => h("p", { class: "empty" }, t("stats.no_data"));

export async function statsPage(main, ctx) {
  const groupBy = GROUPS.includes(ctx.query.get("group_by")) ? ctx.query.get("group_by") : "township";
  const interval = INTERVALS.includes(ctx.query.get("interval")) ? ctx.query.get("interval") : "acknowledge";
  const { form, period, area } = controls(ctx, "#/stats", [
    ["group_by", select("group_by", GROUPS, groupBy, "group")],
    ["interval", select("interval", INTERVALS, interval, "interval")],
  ]);
  const body = page(main, "stats", t("stats.title"), form);

  let response;
  let outcomes;
  try {
    const params = { period, area, group_by: groupBy };
    [response, outcomes] = await Promise.all([
      api("/api/v1/stats/response-times", { params }),
      api("/api/v1/stats/outcomes", { params }),
    ]);
  } catch (error) {
    if (ctx.alive()) replace(body, errorBox(error, { 404: "stats.not_found", 422: "stats.bad_query" }));
    return;
  }
  if (!ctx.alive()) return;

  const total = response.total;
  const label = (g) => groupLabel(g, groupBy);
  // The dashed deadline line where one applies to the interval shown (acknowledging, and travelling to the site).
  const deadlines = ctx.config?.deadlines || { acknowledge_min: 15, on_site_min: 30 };
  const deadline = { acknowledge: deadlines.acknowledge_min, travel: deadlines.on_site_min }[interval];
  const references = deadline ? [{ value: deadline, label: t("stats.deadline", { n: deadline }) }] : [];
  const rangeRows = response.groups.map((g) => {
    const d = g.intervals[interval];
    return { label: label(g), n: d.n, p50: d.p50_min, p90: d.p90_min, max: d.max_min };
  });
  const responseTitle = t("stats.response_chart", { interval: t(`interval.${interval}`) });
  const responseChart = (width) =>
    rangeChart({
      rows: rangeRows,
      width,
      format: minutes,
      references,
      label: responseTitle,
      legend: { p50: "p50", p90: "p90", max: t("stats.max"), none: t("stats.no_data") },
    });
  const complianceChart = (width) =>
    groupedBars({
      rows: response.groups.map((g) => ({ label: label(g), values: [g.acknowledge.rate, g.on_site.rate] })),
      series: [
        { name: t("stats.ack_rate"), className: "series-a" },
        { name: t("stats.on_site_rate"), className: "series-b" },
      ],
      width,
      max: 1,
      format: fmtPercent,
      label: t("stats.compliance_chart"),
    });
  const outcomeChart = (width) =>
    stackedBars({
      rows: outcomes.groups.map((g) => ({ label: label(g), parts: g })),
      keys: OUTCOMES.map((key) => ({ key, name: t(`outcome.${key}`), className: `seg-${key}` })),
      width,
      label: t("stats.outcome_chart"),
    });
  const withTotal = (groups, totalRow) => [...groups.map((g) => [label(g), g]), [t("stats.total"), totalRow]];

  replace(
    body,
    h("p", { class: "muted small", id: "stats-scope" }, scopeText(response.period, response.area)),
    h(
      "div",
      { class: "tiles" },
      tile(t("outcome.fire_points"), fmtNumber(outcomes.total.fire_points), "tile-fire-points"),
      tile(t("outcome.violations"), fmtNumber(outcomes.total.violations), "tile-violations"),
      tile(t("outcome.false_alarms"), fmtNumber(outcomes.total.false_alarms), "tile-false-alarms"),
      tile(t("outcome.open"), fmtNumber(outcomes.total.open), "tile-open"),
      tile(t("stats.ack_rate"), fmtPercent(total.acknowledge.rate), "tile-ack-rate"),
      tile(t("stats.on_site_rate"), fmtPercent(total.on_site.rate), "tile-on-site-rate"),
      tile(t("stats.ack_p50"), minutes(total.intervals.acknowledge.p50_min), "tile-ack-p50"),
      tile(t("stats.ack_p90"), minutes(total.intervals.acknowledge.p90_min), "tile-ack-p90"),
    ),
    h(
      "div",
      { class: "columns" },
      card(
        responseTitle,
        h("p", { class: "muted small" }, t(`interval_help.${interval}`)),
        rangeRows.length ? chartBox(ctx, "chart-response", responseChart) : noData(),
      ),
      card(
        t("stats.compliance_chart"),
        response.groups.length ? chartBox(ctx, "chart-compliance", complianceChart) : noData(),
      ),
      card(t("stats.outcome_chart"), outcomes.groups.length ? chartBox(ctx, "chart-outcomes", outcomeChart) : noData()),
    ),
    card(
      t("stats.table"),
      table(
        [
          t(`group.${groupBy}`),
          t("stats.incidents"),
          t("stats.notified"),
          t("stats.escalated"),
          "p50",
          "p90",
          t("stats.max"),
          t("stats.ack_rate"),
          t("stats.on_site_rate"),
          t("stats.on_site_far"),
          t("stats.on_site_without_position"),
        ],
        withTotal(response.groups, total).map(([name, g]) => [
          name,
          fmtNumber(g.incidents),
          fmtNumber(g.notified),
          fmtNumber(g.escalated),
          minutes(g.intervals[interval].p50_min),
          minutes(g.intervals[interval].p90_min),
          minutes(g.intervals[interval].max_min),
          fmtPercent(g.acknowledge.rate),
          fmtPercent(g.on_site.rate),
          fmtNumber(g.on_site_far),
          fmtNumber(g.on_site_without_position),
        ]),
        "table-response",
      ),
      table(
        [t(`group.${groupBy}`), ...OUTCOME_COLUMNS.map((k) => t(`outcome.${k}`))],
        withTotal(outcomes.groups, outcomes.total).map(([name, g]) => [
          name,
          ...OUTCOME_COLUMNS.map((k) => fmtNumber(g[k])),
        ]),
        "table-outcomes",
      ),
    ),
  );
}

function scoreColour(score) {
  return score >= 90 ? "#1a9850" : score >= 75 ? "#91cf60" : score >= 60 ? "#fdae61" : "#d7191c";
}

function itemsList(items) {
  // The lines behind a score: points, the rule, the incident it is about (a link), and why.
  return h(
    "ul",
    { class: "items small" },
    items.map((i) =>
      h(
        "li",
        {},
        `${i.points > 0 ? "+" : ""}${fmtNumber(i.points, 2)} `,
        h("span", { class: "rule", title: i.rule, dataset: { rule: i.rule } }, ruleLabel(i.rule)),
        i.incident_id ? [" ", h("a", { href: `#/incident/${i.incident_id}` }, `#${i.incident_id}`)] : null,
        // Why the line weighs what it does ("过火面积 1500 m² 超过 300 m²，×2"), from the notes' codes.
        i.note || (i.notes && i.notes.length) ? [" — ", itemNotes(i)] : "",
      ),
    ),
  );
}

const SCORE_COLUMNS = [
  ["scores.rank", (u) => String(u.rank)],
  ["scores.unit", (u) => (u.items.length ? h("details", {}, h("summary", {}, u.name), itemsList(u.items)) : u.name)],
  ["scores.score", (u) => fmtNumber(u.score, 1)],
  ["scores.grade", (u) => u.grade || "—"],
  ["scores.sanction", (u) => u.sanction || "—"],
  ["outcome.fire_points", (u) => fmtNumber(u.fire_points)],
  ["outcome.violations", (u) => fmtNumber(u.violations)],
  ["scores.self_found", (u) => fmtNumber(u.self_found)],
  ["scores.unreported", (u) => fmtNumber(u.unreported)],
  ["scores.concealed", (u) => fmtNumber(u.concealed)],
  ["scores.late_ack", (u) => fmtNumber(u.late_acknowledge)],
  ["scores.late_on_site", (u) => fmtNumber(u.late_on_site)],
  ["scores.late_feedback", (u) => fmtNumber(u.late_feedback)],
  ["scores.repeat_at_site", (u) => fmtNumber(u.repeat_at_site)],
  ["scores.density", (u) => (u.density_per_1000ha === null ? "—" : fmtNumber(u.density_per_1000ha, 2))],
];

/** The board's warnings in the reader's language: `warning_notes` are `warnings` as codes, in the same order (a
 * server without them sends the English only). */
function warningItems(board) {
  const notes = Array.isArray(board.warning_notes) ? board.warning_notes : [];
  const coded = notes.length === board.warnings.length;
  return board.warnings.map((english, i) => h("li", {}, noteNode(coded ? notes[i] : null, english)));
}

export async function scoresPage(main, ctx) {
  const level = ["township", "county"].includes(ctx.query.get("level")) ? ctx.query.get("level") : "township";
  const { form, period, area } = controls(ctx, "#/scores", [
    ["level", select("level", ["township", "county"], level, "group")],
  ]);
  const body = page(main, "scores", t("scores.title"), form);
  let board;
  try {
    board = await api("/api/v1/scores", { params: { period, area, level } });
  } catch (error) {
    if (ctx.alive()) replace(body, errorBox(error, { 404: "scores.not_found", 422: "stats.bad_query" }));
    return;
  }
  if (!ctx.alive()) return;
  const rules = board.rules;
  const chart = (width) =>
    barChart({
      rows: board.units.map((u) => ({
        label: `${u.rank}. ${u.name}`,
        value: u.score,
        colour: scoreColour(u.score),
        title: `${u.name}: ${fmtNumber(u.score, 1)} ${u.grade || ""}`,
      })),
      width,
      max: 100,
      format: (v) => fmtNumber(v, 1),
      label: t("scores.chart"),
    });
  replace(
    body,
    h(
      "p",
      { class: "muted small", id: "scores-rules" },
      t("scores.rules", { title: rules.title, version: rules.version, from: rules.effective_from, file: rules.file }),
      " · ",
      scopeText(board.period, board.area),
    ),
    board.warnings.length ? h("ul", { class: "warn", id: "scores-warnings" }, warningItems(board)) : null,
    card(t("scores.chart"), board.units.length ? chartBox(ctx, "chart-scores", chart) : noData()),
    card(
      t("scores.table"),
      table(
        SCORE_COLUMNS.map(([key]) => t(key)),
        board.units.map((u) => SCORE_COLUMNS.map(([, cell]) => cell(u))),
        "table-scores",
        [1, 3, 4],
      ),
    ),
    reportCard(board),
  );
}

/** The period's report as `strawfire report` writes it, for supervisors, evaluators and admins (a patrol user's
 *  scope is its own row: the API refuses it the county's report). */
function reportCard(board) {
  const session = currentSession();
  if (!session || session.role === "patrol") return null;
  const status = h("p", { class: "muted small", id: "report-status", role: "status" });
  const download = async (format, button) => {
    button.disabled = true;
    status.textContent = "";
    try {
      const params = { period: board.period.label, area: board.area || undefined };
      const blob = await api(`/api/v1/reports/${format}`, { params, as: "blob" });
      // <a download> cannot send the bearer token: the file is fetched like any API call and saved from a blob URL.
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `strawfire-${board.period.label}-${board.area || "all"}.${format}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      status.textContent = `${t("scores.report.failed")} ${error.message || error}`;
    } finally {
      button.disabled = false;
    }
  };
  const buttons = ["pdf", "xlsx", "csv"].map((format) => {
    const button = h("button", { type: "button", id: `report-${format}` }, format.toUpperCase());
    button.onclick = () => download(format, button);
    return button;
  });
  return card(t("scores.report"), h("p", { class: "muted small" }, t("scores.report.hint")), h("p", {}, buttons), status);
}
