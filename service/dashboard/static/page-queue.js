// The incident queue: what each role has to look at, most urgent first.
//
// The server already limits the list to the caller's scope (a patrol team's township, a supervisor's county,
// everything for evaluators and admins); this page only orders and filters it:
//   patrol      open incidents first, newest first — what the team has to go to;
//   supervisor  late incidents first (highlighted), then open ones, newest first — who needs chasing;
//   others      newest first.

import { api, ApiError, clearDraft, fetchAll, saveDraft, takeDraft } from "./api.js";
import {
  card,
  fmtAgo,
  fmtNumber,
  fmtPercent,
  fmtTime,
  h,
  notSent,
  replace,
  replaceRows,
  toast,
  updatedNow,
} from "./dom.js";
import { t } from "./i18n.js";
import { STATES, isOpen, lateness } from "./model.js";
import { currentPosition, formValues, restoreValues } from "./page-incident.js";

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

/** A random id for one report, drawn once per form: a re-send after a lost answer is the same report. */
function reportId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`; // plain-HTTP intranets lack it
}

/**
 * "Report a fire here" (巡查发现) for a patrol team on its phone: the phone's position when the browser gives one
 * (filled into the latitude/longitude fields, always WGS-84), else the team types them in, saying which system they
 * are in: WGS-84 (a GPS app), GCJ-02 (Amap, WeChat, Tencent: 550–600 m off WGS-84 around Changchun, enough to land in
 * the neighbouring township) or BD-09 (Baidu); the server converts them. Choosing another system than WGS-84 after a
 * fix makes the coordinates typed ones. A fix
 * is sent with its accuracy and time; coordinates typed or changed by hand are sent without, so the server places
 * the fire but does not take them as proof of presence. The server credits the report to the user's own township
 * and, when the fire is in it, marks the incident on site at once: the page opens it for photos and the next steps.
 * `onReported` refreshes the list when the fire is another township's.
 *
 * What was entered is a draft (api.js saveDraft) while the report is on its way, and while the form is open when
 * the page is drawn again (another language, a reload): an expired sign-in, a language switch or a reload brings
 * the form back filled in, with the same report id (a report that did reach the server is not made twice) and the
 * phone's fix it was going to send (its time is when the team was there).
 */
export function reportCard(ctx, onReported) {
  let fix = null; // the phone's fix as the fields show it; dropped when a field is edited by hand
  let id = reportId();
  const latitude = h("input", {
    id: "report-lat",
    type: "number",
    step: "any",
    min: -90,
    max: 90,
    inputmode: "decimal",
  });
  const longitude = h("input", {
    id: "report-lon",
    type: "number",
    step: "any",
    min: -180,
    max: 180,
    inputmode: "decimal",
  });
  // The system typed-in coordinates are in (service/incidents/patrol_reports.py PatrolReportIn.crs).
  const crs = h(
    "select",
    { id: "report-crs" },
    ["wgs84", "gcj02", "bd09"].map((value) => h("option", { value }, t(`report.crs_${value}`))),
  );
  const note = h("textarea", { id: "report-note", rows: 2, maxlength: 2000 });
  const where = h("p", { class: "muted small", id: "report-position", "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert", id: "report-error", hidden: true });
  const submit = h("button", { type: "submit", class: "primary big", id: "report-submit" }, t("report.submit"));
  const byHand = () => {
    fix = null;
    where.textContent = t("report.manual");
    where.dataset.state = "manual";
  };
  latitude.addEventListener("input", byHand);
  longitude.addEventListener("input", byHand);
  crs.addEventListener("change", () => {
    if (crs.value !== "wgs84") byHand(); // the fix is WGS-84: other numbers are typed ones
  });

  function locate() {
    where.textContent = t("report.locating");
    where.dataset.state = "locating";
    currentPosition().then((position) => {
      if (!ctx.alive() || where.dataset.state !== "locating") return; // left, or typed in meanwhile
      if (!position) {
        where.textContent = t("report.unavailable");
        where.dataset.state = "unavailable";
        return;
      }
      fix = position;
      latitude.value = String(position.latitude);
      longitude.value = String(position.longitude);
      crs.value = "wgs84"; // the Geolocation API's fix is WGS-84
      where.textContent = t("report.found", { accuracy: fmtNumber(position.accuracy_m) });
      where.dataset.state = "found";
    });
  }

  /** The open form as a draft (null when it is closed). */
  function draft() {
    if (form.hidden) return null;
    return { kind: "report", values: formValues(form), report_id: id, fix };
  }

  /** A report an expired sign-in, a language switch or a reload interrupted: the form opened again as it was. */
  function restore() {
    const kept = takeDraft(window.location.hash);
    if (!kept || kept.kind !== "report") return;
    open.hidden = true;
    form.hidden = false;
    restoreValues(form, kept.values);
    if (typeof kept.report_id === "string" && kept.report_id) id = kept.report_id;
    const position = kept.fix;
    // The fix only while the fields still show it; typed coordinates stay typed.
    const fixShown =
      position &&
      crs.value === "wgs84" &&
      String(position.latitude) === latitude.value &&
      String(position.longitude) === longitude.value;
    if (fixShown) {
      fix = position;
      where.textContent = t("report.found", { accuracy: fmtNumber(position.accuracy_m) });
      where.dataset.state = "found";
    } else if (latitude.value !== "" || longitude.value !== "") {
      byHand();
    } else {
      locate();
    }
    toast(t("draft.restored"));
  }

  async function send(event) {
    event.preventDefault();
    const lat = latitude.value === "" ? NaN : Number(latitude.value);
    const lon = longitude.value === "" ? NaN : Number(longitude.value);
    if (!(Math.abs(lat) <= 90 && Math.abs(lon) <= 180)) {
      error.textContent = t("report.bad_position");
      error.hidden = false;
      return;
    }
    const system = fix ? "wgs84" : crs.value; // a fix is always WGS-84
    const body = { latitude: lat, longitude: lon, crs: system, note: note.value.trim(), report_id: id };
    if (fix) {
      body.accuracy_m = fix.accuracy_m;
      body.observed_at = fix.at;
    }
    submit.disabled = true;
    error.hidden = true;
    saveDraft({ route: window.location.hash, ...draft() }); // a 401 on the way drops the page (see api.js)
    let out = null;
    try {
      out = await api("/api/v1/observations/patrol", { json: body });
    } catch (e) {
      // The server answered (anything but 401) or nothing was sent: the form on screen is all there is.
      if (!(e instanceof ApiError && e.status === 401)) clearDraft();
      error.textContent = notSent(e);
      error.hidden = false;
      return;
    } finally {
      submit.disabled = false;
    }
    clearDraft();
    id = reportId(); // the next report is another one
    note.value = "";
    const mine = [out.township_code, out.county_code].includes(ctx.session.unit_code);
    if (mine && out.incident_id != null) {
      toast(t("report.done_own", { id: out.incident_id }), "ok");
      ctx.navigate(`#/incident/${out.incident_id}`);
      return;
    }
    toast(t("report.done_other", { where: out.township_name || out.county_name || t("incident.unassigned") }), "ok");
    if (ctx.alive()) onReported();
  }

  const form = h(
    "form",
    // Checked here, not by the browser: its own bubble would speak the browser's language, not the page's.
    { class: "form", id: "report-form", hidden: true, novalidate: true, onsubmit: send },
    h("p", { class: "muted small" }, t("report.hint")),
    where,
    h("button", { type: "button", class: "secondary", id: "report-locate", onclick: locate }, t("report.locate")),
    // Latitude and longitude side by side, their system under them: the form no taller than before the choice.
    h(
      "div",
      { class: "coords" },
      h("div", { class: "field" }, h("label", { for: "report-lat" }, t("report.latitude")), latitude),
      h("div", { class: "field" }, h("label", { for: "report-lon" }, t("report.longitude")), longitude),
      h("div", { class: "field wide" }, h("label", { for: "report-crs" }, t("report.crs")), crs),
    ),
    h("label", { for: "report-note" }, t("report.note")),
    note,
    error,
    submit,
  );
  const open = h(
    "button",
    {
      type: "button",
      class: "primary big",
      id: "report-open",
      onclick: () => {
        open.hidden = true;
        form.hidden = false;
        locate(); // asked at once: the fix is usually there by the time the note is written
      },
    },
    t("report.open"),
  );
  ctx.onDraft(draft);
  restore();
  return h("section", { class: "card", id: "report-card" }, open, form);
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
      // A patrol team in the field reports the fires it finds itself (巡查发现).
      role === "patrol" ? reportCard(ctx, () => refresh().catch(() => {})) : null,
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
