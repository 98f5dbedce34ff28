// The map page: unit boundaries with the live incidents as markers coloured by state, re-read every poll.

import { fetchAll } from "./api.js";
import { card, h, replace, replaceRows, updatedNow } from "./dom.js";
import { t } from "./i18n.js";
import { mapView, loadRegions } from "./mapview.js";
import { STATES, isActive, lateness } from "./model.js";
import { MAX_PAGES, PAGE_SIZE, incidentRow, sortForRole } from "./page-queue.js";

export function markerOf(incident, config) {
  const place = incident.township_name || incident.county_name || t("incident.unassigned");
  return {
    id: incident.id,
    lon: incident.longitude,
    lat: incident.latitude,
    state: incident.state,
    late: Boolean(lateness(incident, config)),
    label: `#${incident.id} ${t(`state.${incident.state}`)} · ${place}`,
  };
}

const swatch = (className) => h("span", { class: ["swatch", className], "aria-hidden": "true" });

function legend(states) {
  return h(
    "ul",
    { class: "legend", id: "map-legend" },
    STATES.filter((s) => states.has(s)).map((s) => h("li", {}, swatch(`state-${s}`), t(`state.${s}`))),
    h("li", {}, swatch("late-swatch"), t("late.tag")),
  );
}

export async function mapPage(main, ctx) {
  const showDone = ctx.query.get("all") === "1";
  const status = h("p", { class: "muted small", id: "map-status" });
  const legendBox = h("div", {});
  const list = h("div", { class: "rows compact", id: "map-list" });
  const toggle = h("input", {
    type: "checkbox",
    id: "show-done",
    checked: showDone,
    onchange: (e) => ctx.navigate(e.target.checked ? "#/map?all=1" : "#/map"),
  });
  const regions = await loadRegions();
  if (!ctx.alive()) return;
  const noTownships = regions.township.features.length === 0;
  // Start on the user's own unit (a township team's township, a supervisor's county) where it is loaded.
  const units = [...regions.township.features, ...regions.county.features];
  const own = units.find((f) => f.properties.code === ctx.session.unit_code);
  const map = mapView({
    label: t("map.title"),
    layers: [
      { features: regions.township.features, className: "townships", labels: true, zoomable: true },
      // Where only counties are loaded they are the units: filled, labelled and zoomable like townships.
      {
        features: regions.county.features,
        className: noTownships ? "counties filled" : "counties",
        labels: noTownships,
        zoomable: noTownships,
      },
    ],
    markers: [],
    focus: own ? own.geometry : null,
    onSelect: (id) => ctx.navigate(`#/incident/${id}`),
  });
  ctx.onCleanup(() => map.destroy());
  replace(
    main,
    h(
      "div",
      { class: "page map-page" },
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, t("map.title")),
        h("label", { class: "inline check" }, toggle, " ", t("map.show_done")),
      ),
      h(
        "div",
        { class: "map-layout" },
        h("div", { class: "map-main" }, map.element, legendBox, status),
        card(t("map.list"), list),
      ),
    ),
  );

  async function refresh() {
    // Live fires are read by state on the server (open ones, and verified ones not yet closed): the newest page
    // of every incident would be full of closed ones in a busy season and leave older live fires off the map.
    const read = (params) => fetchAll("/api/v1/incidents", params, { pageSize: PAGE_SIZE, maxPages: MAX_PAGES });
    const parts = showDone ? [await read({})] : await Promise.all([read({ open: "true" }), read({ state: "verified" })]);
    if (!ctx.alive()) return;
    const incidents = parts.flatMap((part) => part.items);
    const truncated = parts.some((part) => part.truncated);
    const shown = sortForRole(showDone ? incidents : incidents.filter(isActive), ctx.session.role, ctx.config);
    // Draw hot states last so they sit on top of handled ones nearby.
    const order = (i) => -STATES.indexOf(i.state);
    map.setMarkers([...shown].sort((a, b) => order(a) - order(b)).map((i) => markerOf(i, ctx.config)));
    replace(legendBox, legend(new Set(shown.map((i) => i.state))));
    const rows = shown.map((i) => incidentRow(i, ctx.config));
    replaceRows(list, rows.length ? rows : [h("p", { class: "empty" }, t("map.none"))]);
    status.textContent = [
      t("map.count", { n: shown.length }),
      truncated ? t("map.truncated", { n: shown.length }) : null,
      updatedNow(),
    ]
      .filter(Boolean)
      .join(" · ");
  }

  await refresh();
  ctx.every(ctx.config?.poll_interval_s || 15, () => refresh().catch(() => {}));
}
