// The incident queue: what each role has to look at, most urgent first.
//
// The server already limits the list to the caller's scope (a patrol team's township, a supervisor's county,
// everything for evaluators and admins); this page only orders and filters it:
//   patrol      open incidents first, newest first — what the team has to go to;
//   supervisor  late incidents first (highlighted), then open ones, newest first — who needs chasing;
//   others      newest first.

import { fetchAll } from "./api.js";
import { card, fmtAgo, fmtPercent, fmtTime, h, replace, replaceRows, updatedNow } from "./dom.js";
import { t } from "./i18n.js";
import { STATES, isOpen, lateness } from "./model.js";

// Pages of the API read per refresh; more than this many incidents are cut, and the status line says so.
export const PAGE_SIZE = 1000;
export const MAX_PAGES = 5;

export function sortForRole(incidents, role, config, now = Date.now()) {
  const newest = (a, b) => b.last_observed_at.localeCompare(a.last_observed_at) || b.id - a.id;
  const rank = (incident) => {
    if (role === "patrol") return isOpen(incident) ? 0 : 1;
    if (role === "supervisor") return lateness(incident, config, now) ? 0 : isOpen(incident) ? 1 : 2;
    return 0;
  };
  return [...incidents].sort((a, b) => rank(a) - rank(b) || newest(a, b));
}

/** A state badge; the colour comes from the stylesheet (`.state-<name>`), the text names it for everyone. */
export function stateBadge(state) {
  return h("span", { class: ["badge", `state-${state}`], dataset: { state } }, t(`state.${state}`));
}

export function lateTag(late) {
  if (!late) return null;
  return h("span", { class: "badge late", title: t(`late.${late.kind}`) }, t("late.tag"), " ", t(`late.${late.kind}`));
}

/** A fire again at the place of an earlier real fire (同一地点再次起火): marked in every list it appears in. */
export function repeatTag(incident) {
  if (incident.repeat_of_incident_id == null) return null;
  return h(
    "span",
    { class: "badge repeat", title: t("incident.repeat_at_site", { id: incident.repeat_of_incident_id }) },
    t("queue.repeat"),
  );
}

export function incidentRow(incident, config) {
  const late = lateness(incident, config);
  const place = [incident.township_name, incident.county_name].filter(Boolean).join(" · ") || t("incident.unassigned");
  return h(
    "a",
    {
      href: `#/incident/${incident.id}`,
      class: ["row", late && "is-late", !isOpen(incident) && "is-done"],
      dataset: { incidentId: incident.id, state: incident.state },
    },
    h("span", { class: "row-id" }, `#${incident.id}`),
    h("span", { class: "row-state" }, stateBadge(incident.state), lateTag(late), repeatTag(incident)),
    h("span", { class: "row-place" }, place),
    h(
      "span",
      { class: "row-time" },
      fmtTime(incident.last_observed_at),
      " ",
      h("small", { class: "muted" }, fmtAgo(incident.last_observed_at)),
    ),
    h("span", { class: "row-source" }, t(`kind.${incident.location_kind}`), " · ", fmtPercent(incident.confidence)),
  );
}

export async function queuePage(main, ctx) {
  const role = ctx.session.role;
  const filter = ctx.query.get("state") || "open";
  const list = h("div", { class: "rows", id: "queue-list", "aria-live": "polite" });
  const status = h("p", { class: "muted small", id: "queue-status" });
  const select = h(
    "select",
    {
      id: "state-filter",
      onchange: (e) => ctx.navigate(`#/queue?state=${encodeURIComponent(e.target.value)}`),
    },
    h("option", { value: "open", selected: filter === "open" }, t("queue.filter_open")),
    h("option", { value: "all", selected: filter === "all" }, t("queue.filter_all")),
    STATES.map((s) => h("option", { value: s, selected: filter === s }, t(`state.${s}`))),
  );
  replace(
    main,
    h(
      "div",
      { class: "page" },
      h("div", { class: "page-head" }, h("h1", {}, t(`queue.title_${role}`, { unit: ctx.session.unit_code || "" }))),
      card(null, h("label", { class: "inline" }, t("queue.filter"), " ", select), status, list),
    ),
  );

  async function refresh() {
    // Filtered on the server: a page of the newest incidents of any state would cut older open ones short.
    const params = {
      state: STATES.includes(filter) ? filter : null,
      open: filter === "open" ? "true" : null,
    };
    const { items: incidents, truncated } = await fetchAll("/api/v1/incidents", params, {
      pageSize: PAGE_SIZE,
      maxPages: MAX_PAGES,
    });
    if (!ctx.alive()) return;
    const shown = sortForRole(incidents, role, ctx.config);
    const late = shown.filter((i) => lateness(i, ctx.config)).length;
    const rows = shown.map((i) => incidentRow(i, ctx.config));
    replaceRows(list, rows.length ? rows : [h("p", { class: "empty" }, t("queue.empty"))]);
    status.textContent = [
      t("queue.count", { n: shown.length }),
      late ? t("queue.late_count", { n: late }) : null,
      truncated ? t("queue.truncated", { n: shown.length }) : null,
      updatedNow(),
    ]
      .filter(Boolean)
      .join(" · ");
  }

  await refresh();
  ctx.every(ctx.config?.poll_interval_s || 15, () => refresh().catch(() => {}));
}
