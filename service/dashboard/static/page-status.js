// System status (supervisors and admins): is the closed loop working? What GET /api/v1/status found, in order of
// what people must act on: the problems (translated by their code; the server's English sentence underneath as
// the detail), the background components with their last success and attempt, the alert outbox, what came in per
// observation kind, and the camera presets by health.
//
// Component names, errors and problem messages come from the server (an error may quote a remote server's
// answer): they only ever become text nodes through dom.js. The reading is shared with the top bar's indicator
// (status.js), which refreshes it every minute; this page redraws whenever a new reading arrives.

import { card, facts, fmtAgo, fmtNumber, fmtTime, h, replace, table } from "./dom.js";
import { lang, t } from "./i18n.js";
import { onStatus, problemsText, readStatus, statusReading } from "./status.js";

const ALERT_WORKER = "alerts.worker";
const FIRMS_PREFIX = "firms:";
const RECIPIENTS = "alerts.recipients"; // the problems about units nobody is alerted for
const PUBLIC_BASE_URL = "alerts.public_base_url"; // the address alert links are built on
const CAMERA_STATES = ["ok", "frozen", "silent", "lens_mismatch", "never_seen"];
// Items (camera presets, units, fires) a problem names before it says "and N more" (the server's message does the
// same).
const NAMED_ITEMS = 10;
// A reading younger than this is shown as it is when the page opens; an older one is read again first.
const OPEN_FRESH_S = 5;

/** "告警推送程序", "卫星火点拉取（FIRMS MODIS_NRT）", or the name as the server gives it. */
export function componentLabel(name) {
  if (name === ALERT_WORKER) return t("status.component.alerts_worker");
  if (typeof name === "string" && name.startsWith(FIRMS_PREFIX)) {
    return t("status.component.firms", { source: name.slice(FIRMS_PREFIX.length) });
  }
  if (name === "cameras") return t("status.component.cameras");
  if (name === RECIPIENTS) return t("status.component.recipients");
  if (name === PUBLIC_BASE_URL) return t("status.component.public_base_url");
  return String(name ?? "—");
}

function when(iso) {
  if (!iso) return t("status.never");
  return [fmtTime(iso), " ", h("small", { class: "muted" }, fmtAgo(iso))];
}

function namedItems(items, count) {
  const shown = (items || []).slice(0, NAMED_ITEMS).map(String);
  const rest = Math.max(count, shown.length) - shown.length;
  const list = shown.join(lang() === "en" ? ", " : "、");
  return rest > 0 ? `${list} ${t("status.more", { n: rest })}` : list;
}

/** A problem in the reader's language, from its code and the figures it comes with. */
export function problemText(problem, data) {
  const component = componentLabel(problem.component);
  const part = (data.components || []).find((c) => c.name === problem.component);
  const n = problem.count;
  switch (problem.code) {
    case "alerts_overdue":
      return t("status.problem.alerts_overdue", { n, since: fmtTime(data.alerts && data.alerts.overdue_since) });
    case "component_never_run":
      return t("status.problem.component_never_run", { component });
    case "component_failing":
      return part && !part.last_success_at
        ? t("status.problem.component_failing_never", { component, n: part.consecutive_failures })
        : t("status.problem.component_failing", { component, n: part ? part.consecutive_failures : "?" });
    case "component_late":
      return t("status.problem.component_late", {
        component,
        minutes: part ? fmtNumber(part.late_after_s / 60) : "?",
        last: fmtTime(part && part.last_success_at),
      });
    case "alerts_failed":
      return t("status.problem.alerts_failed", { n });
    // The problems that name what they are about, as the server names them: camera presets ("T1/p1"), units with
    // open fires nobody is alerted for ("北岗镇 (DEMO01)"), fires too old for the escalation pass to catch up on
    // ("#12").
    case "cameras_frozen":
    case "cameras_silent":
    case "cameras_lens_mismatch":
    case "frames_expired":
    case "units_without_recipients":
    case "counties_without_supervisors":
    case "fires_left_untold":
      return t(`status.problem.${problem.code}`, { n, items: namedItems(problem.items, n) });
    case "alert_links_unreachable": // items: the address the links start with (a password in it masked)
      return t("status.problem.alert_links_unreachable", { n, items: (problem.items || []).map(String).join(", ") });
    default:
      return problem.message; // a code this dashboard does not know yet: the server's own words
  }
}

function problemList(data) {
  if (!data.problems.length) return h("p", { class: "ok-note", id: "status-no-problems" }, t("status.no_problems"));
  return h(
    "ul",
    { class: "problems", id: "status-problems" },
    data.problems.map((p) =>
      h(
        "li",
        { dataset: { code: p.code, component: p.component } },
        h("strong", { class: "problem-text" }, problemText(p, data)),
        h("small", { class: "muted problem-detail", lang: "en" }, p.message),
      ),
    ),
  );
}

function stateBadge(part) {
  const title = t("status.late_after", { minutes: fmtNumber(part.late_after_s / 60) });
  return h(
    "span",
    { class: "badge comp", dataset: { state: part.state }, title },
    t(
      {
        ok: "status.state.ok",
        failing: "status.state.failing",
        late: "status.state.late",
        never_run: "status.state.never_run",
      }[part.state] || "status.state.unknown",
    ),
  );
}

function detailText(detail) {
  const entries = Object.entries(detail || {});
  if (!entries.length) return "—";
  return entries
    .map(([key, value]) =>
      key === "hotspots" ? t("status.detail.hotspots", { n: value }) : `${key}: ${JSON.stringify(value)}`,
    )
    .join(" · ");
}

function componentsCard(data) {
  const rows = data.components.map((part) => [
    h(
      "span",
      { class: "comp-name" },
      componentLabel(part.name),
      componentLabel(part.name) === part.name ? null : h("small", { class: "muted mono" }, ` ${part.name}`),
      part.expected ? null : h("small", { class: "muted" }, ` ${t("status.not_expected")}`),
    ),
    stateBadge(part),
    when(part.last_success_at),
    when(part.last_attempt_at),
    String(part.consecutive_failures),
    h("span", { class: "comp-error" }, part.last_error || "—"),
    h("span", { class: "comp-detail" }, detailText(part.detail)),
  ]);
  return card(
    t("status.components"),
    rows.length
      ? table(
          ["name", "state", "last_success", "last_attempt", "failures", "last_error", "detail"].map((k) =>
            t(`status.col.${k}`),
          ),
          rows,
          "status-components",
          [0, 1, 2, 3, 5, 6],
        )
      : h("p", { class: "muted", id: "status-no-components" }, t("status.no_components")),
  );
}

function alertsCard(alerts) {
  return h(
    "div",
    { id: "status-alerts" },
    card(
      t("status.alerts"),
      facts([
        [t("status.alerts.pending"), fmtNumber(alerts.pending)],
        [
          t("status.alerts.overdue"),
          h(
            "span",
            { class: alerts.overdue ? "late-text" : null, dataset: { overdue: alerts.overdue } },
            fmtNumber(alerts.overdue),
            alerts.overdue_since ? ` ${t("status.alerts.since", { time: fmtTime(alerts.overdue_since) })}` : "",
          ),
        ],
        [
          t("status.alerts.failed_24h"),
          h("span", { class: alerts.failed_24h ? "late-text" : null }, fmtNumber(alerts.failed_24h)),
        ],
        [t("status.alerts.sent_24h"), fmtNumber(alerts.sent_24h)],
        [t("status.alerts.last_sent"), when(alerts.last_sent_at)],
      ]),
    ),
  );
}

function camerasCard(cameras, session) {
  const total = CAMERA_STATES.reduce((sum, state) => sum + (cameras[state] || 0), 0);
  return h(
    "div",
    { id: "status-cameras" },
    card(
      t("status.cameras"),
      total
        ? h(
            "ul",
            { class: "camera-counts" },
            CAMERA_STATES.map((state) =>
              h(
                "li",
                { dataset: { state, count: cameras[state] || 0 } },
                h("span", { class: "badge health", dataset: { state } }, t(`cameras.health.${state}`)),
                " ",
                h("strong", {}, fmtNumber(cameras[state] || 0)),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("status.no_cameras")),
      // The cameras page (and its API) is for admins; a supervisor sees the counts and the problem's presets.
      session.role === "admin"
        ? h("p", {}, h("a", { href: "#/cameras", id: "status-cameras-link" }, t("status.cameras_link")))
        : null,
    ),
  );
}

function observationsCard(feeds) {
  const rows = feeds.map((feed) => [
    t(`kind.${feed.kind}`),
    when(feed.last_received_at),
    fmtTime(feed.last_observed_at),
    fmtNumber(feed.received_24h),
  ]);
  return card(
    t("status.observations"),
    h("p", { class: "muted small" }, t("status.observations_hint")),
    rows.length
      ? table(
          ["kind", "last_received", "last_observed", "received_24h"].map((k) => t(`status.col.${k}`)),
          rows,
          "status-observations",
          [0, 1, 2],
        )
      : h("p", { class: "muted", id: "status-no-observations" }, t("status.no_observations")),
  );
}

function errorNote(error) {
  const why = error.status === 0 ? t("error.network") : error.status === 403 ? t("error.forbidden") : "";
  return h(
    "div",
    { class: "error", role: "alert", id: "status-error", dataset: { status: error.status || 0 } },
    t("status.unreadable"),
    why ? ` ${why}` : "",
    h("br"),
    h("small", {}, String(error.message)),
  );
}

function summaryLine(data) {
  return `${problemsText(data.problems.length)} · ${t("status.checked", { time: fmtTime(data.checked_at, true) })}`;
}

export async function statusPage(main, ctx) {
  const body = h("div", { id: "status-body" }, h("p", { class: "loading" }, t("common.loading")));
  const refresh = h(
    "button",
    {
      type: "button",
      class: "secondary",
      id: "status-refresh",
      onclick: async () => {
        refresh.disabled = true;
        await readStatus(0);
        refresh.disabled = false;
      },
    },
    t("status.refresh"),
  );
  replace(
    main,
    h(
      "div",
      { class: "page status-page" },
      h("div", { class: "page-head" }, h("h1", {}, t("status.title")), refresh),
      body,
    ),
  );

  function render(current) {
    if (!ctx.alive() || !current.at) return;
    const { data, error } = current;
    const parts = [error ? errorNote(error) : null];
    if (data) {
      parts.push(
        h(
          "p",
          { class: ["muted", "small", "status-line"], id: "status-line", dataset: { status: data.status } },
          summaryLine(data),
        ),
        h("p", { class: "muted small tz-note" }, t("common.tz_note")),
        card(t("status.problems"), problemList(data)),
        componentsCard(data),
        h("div", { class: "columns" }, alertsCard(data.alerts), camerasCard(data.cameras, ctx.session)),
        observationsCard(data.observations),
      );
    }
    replace(body, parts);
  }

  ctx.onCleanup(onStatus(render)); // every later reading (this page's, the indicator's minute) redraws it
  render(statusReading());
  await readStatus(OPEN_FRESH_S); // a reading that is fresh enough is not read again
}
