// One incident: where it is (WGS-84 and GCJ-02), what saw it, the photos, the record of everything that happened,
// and exactly the moves the signed-in user may make now (the server's `allowed_transitions`; the server checks
// again, so a stale page gets a 409 and reloads instead of doing something it should not).

import { api, ApiError, clearDraft, saveDraft, takeDraft } from "./api.js";
import {
  card,
  errorBox,
  facts,
  fmtAgo,
  fmtCoord,
  fmtNumber,
  fmtPercent,
  fmtTime,
  focusPage,
  h,
  notSent,
  replace,
  toast,
} from "./dom.js";
import { lang, t } from "./i18n.js";
import { loadRegions, mapView } from "./mapview.js";
import { EVENT_KINDS, FALSE_ALARM_REASONS, lateness } from "./model.js";
import { markerOf } from "./page-map.js";
import { lateTag, stateBadge } from "./page-queue.js";

// The main path of the lifecycle, for the progress list (side exits show up in the record below).
const STEPS = ["notified", "acknowledged", "en_route", "on_site", "extinguished", "feedback", "verified", "closed"];
const SIDE_EXITS = ["false_alarm", "reopened", "escalated"];
// Suggestions for the feedback's cause (offered in the user's language); the field stays free text.
const CAUSES = ["straw", "garbage", "grass", "ritual", "other"];
// Roles that may upload photos and move incidents (the API's "Actor"); evaluators only read.
const ACTORS = ["patrol", "supervisor", "admin"];
// Roles that may hand an incident to another unit (the API's "Supervisor": POST /incidents/{id}/assignment).
const REASSIGNERS = ["supervisor", "admin"];
const LEVELS = ["township", "county"];

const short = (sha) => (sha ? `${sha.slice(0, 12)}…` : "");
const unitName = (name, code) => [name, code && `(${code})`].filter(Boolean).join(" ") || "—";
const present = (value) => value !== undefined && value !== null;
// The server's evidence limit when /app/config.json could not be read (service/config.py EvidenceSettings).
const DEFAULT_MAX_UPLOAD_MB = 25;
// Moves that say the team is at the fire: the phone's position goes with them as tamper evidence (虚假到场), and
// the server stores it with its distance to the fire. Never required: the move is sent without it if none comes.
const LOCATED_MOVES = ["on_site", "extinguished"];
const GEO_TIMEOUT_MS = 8000;

/**
 * The phone's position as the API takes it ({latitude, longitude, accuracy_m, at}), or null when there is none:
 * refused, no GPS, an insecure (plain HTTP intranet) page where browsers refuse geolocation, or too slow. Never
 * rejects. The Geolocation API's own timeout starts only once permission is given, so a permission prompt left
 * unanswered is cut off here too.
 */
export function currentPosition() {
  return new Promise((resolve) => {
    if (!window.isSecureContext || !navigator.geolocation) {
      resolve(null);
      return;
    }
    let timer = null;
    const finish = (value) => {
      clearTimeout(timer);
      resolve(value); // later calls are no-ops: a promise settles once
    };
    timer = setTimeout(() => finish(null), GEO_TIMEOUT_MS + 1000);
    try {
      navigator.geolocation.getCurrentPosition(
        (fix) => {
          const { latitude, longitude, accuracy } = fix.coords;
          const ok = [latitude, longitude, accuracy].every(Number.isFinite);
          const at = new Date(Number.isFinite(fix.timestamp) ? fix.timestamp : Date.now()).toISOString();
          finish(ok ? { latitude, longitude, accuracy_m: Math.max(accuracy, 0), at } : null);
        },
        () => finish(null),
        // A fresh fix only: a cached one may be from the office or the road (its age is recorded anyway).
        { enableHighAccuracy: true, timeout: GEO_TIMEOUT_MS, maximumAge: 0 },
      );
    } catch {
      finish(null);
    }
  });
}

/** The values of a form's named controls by id (text, choices, ticks), to keep as a draft. */
export function formValues(form) {
  const values = {};
  for (const el of form.querySelectorAll("input[id], select[id], textarea[id]")) {
    values[el.id] = el.type === "checkbox" ? el.checked : el.value;
  }
  return values;
}

/** Put a draft's values (formValues) back into a form's controls. */
export function restoreValues(form, values) {
  for (const [id, value] of Object.entries(values || {})) {
    const el = form.querySelector(`#${CSS.escape(id)}`);
    if (!el) continue;
    if (el.type === "checkbox") el.checked = Boolean(value);
    else el.value = String(value);
  }
}

/** A candidate's level for sorting: townships first, then counties, then any level this page does not know. */
const levelRank = (c) => (LEVELS.includes(c.level) ? LEVELS.indexOf(c.level) : LEVELS.length);

/** The assignment candidates (units the footprint overlaps, with shares): townships first, largest share first. */
function rankedCandidates(detail) {
  const list = Array.isArray(detail.assignment_candidates) ? detail.assignment_candidates : [];
  return list
    .filter((c) => c && typeof c.code === "string" && c.code)
    .sort((a, b) => levelRank(a) - levelRank(b) || (Number(b.share) || 0) - (Number(a.share) || 0));
}

/**
 * The share of the incident's region beyond every unit (the finest level's `outside` candidate, written by
 * service/incidents/service.py assign_incident), or null when all of it lies in the units: a pixel at the edge of
 * the imported area, assigned `nearest`, shows supervisors how much of it is outside.
 */
function outsideShare(detail) {
  const list = Array.isArray(detail.assignment_candidates) ? detail.assignment_candidates : [];
  const outside = list.filter((c) => c && c.outside === true).sort((a, b) => levelRank(a) - levelRank(b));
  if (!outside.length) return null;
  return Math.min(Math.max(Number(outside[0].share) || 0, 0), 1);
}

// Parts of the page that need no state of the page ---------------------------------------------------------------

function locationFacts(detail) {
  return facts([
    [t("incident.wgs84"), `${fmtCoord(detail.latitude)}, ${fmtCoord(detail.longitude)}`],
    [t("incident.gcj02"), `${fmtCoord(detail.gcj02_latitude)}, ${fmtCoord(detail.gcj02_longitude)}`],
    [t("incident.located_by"), t(`kind.${detail.location_kind}`)],
    [t("incident.township"), unitName(detail.township_name, detail.township_code)],
    [t("incident.county"), unitName(detail.county_name, detail.county_code)],
    [
      t("incident.assignment"),
      `${t(`assign.${detail.assignment_status}`)} · ${fmtPercent(detail.assignment_certainty)}`,
    ],
    [t("incident.confidence"), fmtPercent(detail.confidence)],
    [t("incident.first_seen"), `${fmtTime(detail.first_observed_at)} (${fmtAgo(detail.first_observed_at)})`],
    [t("incident.last_seen"), fmtTime(detail.last_observed_at)],
  ]);
}

function amapLink(detail) {
  // A navigation aid for the phone (opens the Amap app or site, which expect GCJ-02); nothing is loaded from it.
  const query = new URLSearchParams({
    position: `${detail.gcj02_longitude},${detail.gcj02_latitude}`,
    name: `#${detail.id}`,
    coordinate: "gaode",
    callnative: "1",
  });
  const url = `https://uri.amap.com/marker?${query}`;
  return h(
    "p",
    {},
    h("a", { href: url, class: "button-link", rel: "noopener noreferrer", target: "_blank" }, t("incident.navigate")),
  );
}

function progress(detail) {
  const step = (state, classes) => {
    const at = detail[`${state}_at`];
    return h(
      "li",
      { class: [...classes, at && "done", detail.state === state && "current"] },
      h("span", {}, t(`state.${state}`)),
      h("small", {}, at ? fmtTime(at) : ""),
    );
  };
  return h(
    "ol",
    { class: "steps" },
    STEPS.map((state) => step(state, [])),
    SIDE_EXITS.filter((state) => detail[`${state}_at`]).map((state) => step(state, ["side"])),
  );
}

// The source details the service itself records (service/incidents/sources.py, service/flows.py): named in the
// reader's language, the field's own name kept as the tooltip. Other keys (a device's own) are shown as sent.
const DETAIL_KEYS = [
  "product",
  "instrument",
  "satellite",
  "confidence",
  "confidence_raw",
  "scan_km",
  "track_km",
  "bright_mir_k",
  "bright_tir_k",
  "daynight",
  "version",
  "level",
  "reliability",
  "volcano",
  "screening",
  "fire_point",
  "camera",
  "camera_id",
  "preset_id",
  "bearing",
  "bearing_deg",
  "image_size",
  "site",
  "event",
  "boxes",
  "model",
  "evidence_sha256",
  "ground_status",
  "drone",
  "drone_id",
  "aircraft",
  "altitude_m",
  "method",
  "image_name",
  "lrf_check_m",
  "cameras",
  "sightings",
  "crossing_angle_deg",
  "sigma_major_m",
  "sigma_minor_m",
  "p_value",
  // A patrol's own report (service/incidents/patrol_reports.py)
  "reporter",
  "reporter_unit",
  "accuracy_m",
  "radius_m",
  "reported_at",
  "note",
  "observed_at_claimed",
  "crs",
  "position_as_sent",
];

// The parts of a satellite pixel's screening decision and fire point (service/incidents/sources.py
// screening_record, service/screening.py, service/flows.py's superseded twins), named like DETAIL_KEYS.
const DETAIL_PARTS = [
  "status",
  "reason",
  "zone",
  "zone_ids",
  "findings",
  "site_id",
  "permit_id",
  "superseded",
  "key",
  "representative",
  "members",
  "extent_km",
  "pass_id",
  "pixel_km",
  "repeat_of",
];
// What screening concluded (satellite/screening.py ScreeningStatus; "superseded": a standard-processing twin of a
// near-real-time pixel already ingested) and the burn zones (ZoneKind).
const SCREENING_STATUSES = [
  "accepted",
  "glitch",
  "outside_coverage",
  "industrial_site",
  "static_source",
  "non_crop",
  "low_confidence",
  "permitted",
  "superseded",
];
const ZONES = ["no_burn", "restricted"];

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** A part's value as text: yes/no for a tick, a list of names or numbers comma-separated, anything else as JSON. */
function scalarText(value) {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return t(value ? "common.yes" : "common.no");
  if (Array.isArray(value) && value.every((v) => !isObject(v) && !Array.isArray(v))) {
    return value.map(scalarText).join(", ");
  }
  return JSON.stringify(value);
}

const screeningStatus = (status) =>
  SCREENING_STATUSES.includes(status)
    ? h("span", { title: status, dataset: { status } }, t(`screening.${status}`))
    : String(status);
// The screener's reasons are its own English sentences ("FIRMS type 2 (other static land source)"): kept as they
// are, marked so for screen readers, under the worded status.
const reasonText = (reason) => h("span", { lang: "en", class: "screening-reason" }, String(reason));

/** One part of a nested detail (a screening decision, a fire point): worded where its meaning is known. */
function partValue(key, value) {
  if (key === "status") return screeningStatus(value);
  if (key === "reason") return reasonText(value);
  if (key === "zone" && ZONES.includes(value)) return h("span", { title: value }, t(`zone.${value}`));
  if (key === "findings" && Array.isArray(value)) {
    return h(
      "ul",
      { class: "findings" },
      value.map((f) =>
        isObject(f) ? h("li", {}, screeningStatus(f.status), f.reason ? [": ", reasonText(f.reason)] : null) : null,
      ),
    );
  }
  return scalarText(value);
}

/** A nested detail as key: value lines, empty parts (no zone, no permit) left out. */
function partsList(value) {
  const label = (key) => (DETAIL_PARTS.includes(key) ? h("span", { title: key }, t(`detail_part.${key}`)) : key);
  const shown = Object.entries(value).filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length));
  return facts(shown.map(([key, v]) => [label(key), partValue(key, v)]));
}

function detailsList(details) {
  const entries = Object.entries(details || {});
  if (!entries.length) return null;
  const label = (key) => (DETAIL_KEYS.includes(key) ? h("span", { title: key }, t(`detail.${key}`)) : key);
  // Source details are free-form (camera names, satellite codes…): shown as text, whatever they contain; a nested
  // record (the screening decision, the fire point) as its own key: value lines rather than raw JSON.
  const text = (value) =>
    isObject(value) ? partsList(value) : typeof value === "string" ? value : JSON.stringify(value);
  return facts(entries.map(([key, value]) => [label(key), text(value)]));
}

function observationList(observations) {
  return h(
    "ul",
    { class: "observations" },
    observations.map((o) =>
      h(
        "li",
        { dataset: { observationId: o.id } },
        h(
          "div",
          { class: "obs-head" },
          h("strong", {}, t(`kind.${o.kind}`)),
          ` ${fmtTime(o.observed_at)} · ${t("incident.confidence")} ${fmtPercent(o.confidence)}`,
          present(o.frp_mw) ? ` · FRP ${fmtNumber(o.frp_mw, 1)} MW` : "",
        ),
        h("div", { class: "muted small" }, `${o.source_key} · ${fmtCoord(o.latitude)}, ${fmtCoord(o.longitude)}`),
        detailsList(o.details),
      ),
    ),
  );
}

function feedbackFacts(feedback) {
  const area = present(feedback.burned_area_m2) ? `${fmtNumber(feedback.burned_area_m2)} m²` : "—";
  const cited = Array.isArray(feedback.photos) ? feedback.photos : [];
  const photos = cited.length ? cited.map(short).join(", ") : "—";
  const text = (value) => (typeof value === "string" && value ? value : null);
  return facts([
    [t("feedback.cause"), String(feedback.cause ?? "—")],
    [t("feedback.burned_area"), area],
    [t("feedback.responsible"), feedback.responsible_party || "—"],
    // 处置措施 and 处罚: shown when given (the API keeps them; older reports have neither).
    text(feedback.measures) ? [t("feedback.measures"), feedback.measures] : null,
    text(feedback.penalty) ? [t("feedback.penalty"), feedback.penalty] : null,
    [t("feedback.photos"), photos],
  ]);
}

// Entries the service writes itself; their notes are its English sentences ("new alert delivered to recipient 3").
const GENERATED_KINDS = ["alert", "alert_withdrawn", "located_other", "repeat_at_site", "merged"];

function isGenerated(e, data) {
  return (
    e.actor_role === "system" ||
    GENERATED_KINDS.includes(e.kind) ||
    (e.kind === "reassigned" && data.automatic === true) ||
    (e.kind === "transition" && present(data.merged_into))
  );
}

// Why an alert was withdrawn (service/alerts/outbox.py LAPSED), alert kinds, and what an escalation's deadline
// counted from (service/alerts/outbox.py escalation_record): codes in the event's data, worded here.
const LAPSED = ["moved", "false_alarm", "closed", "acknowledged", "retired"];
const ALERT_KINDS = ["new", "reminder", "escalation"];
const ESCALATION_CAUSES = ["not_acknowledged", "not_on_site", "not_delivered", "given_up", "no_recipients"];
const COUNTED_FROM = ["notified", "reopened", "acknowledged", "move", "queued"];
const SOURCES = ["satellite", "camera", "drone", "triangulated", "patrol"];

/** "30 分钟", "24 h": a deadline in seconds as people state it. */
function limitText(seconds) {
  const minutes = Math.round(seconds / 60);
  return minutes >= 120 && minutes % 60 === 0
    ? t("event_text.limit_h", { n: fmtNumber(minutes / 60) })
    : t("event_text.limit_min", { n: fmtNumber(minutes) });
}

/**
 * What the service wrote, in the reader's language, from the entry's data: `{ text, full }`, or null for a person's
 * entry and a kind this page cannot word. `full`: the words say all the server's English note says (the note is
 * then only the hover title); an older event without the data's codes keeps its note shown under the words.
 */
function systemSummary(e, data, nameOf, levelOf) {
  const unit = (side) => {
    const code = side && (side.township || side.county);
    return code ? nameOf(String(code)) : "—";
  };
  const recipient = present(data.recipient) ? data.recipient : "?";
  const full = (text) => ({ text, full: true });
  const partial = (text) => (text ? { text, full: false } : null);
  const kind = ALERT_KINDS.includes(data.alert_kind) ? t(`event_text.alert_kind.${data.alert_kind}`) : null;
  const source = SOURCES.includes(data.source) ? t(`kind.${data.source}`) : null;
  switch (e.kind) {
    case "alert":
      if (kind) {
        const sent = data.digest === true ? "event_text.alert_sent_digest" : "event_text.alert_sent";
        return full(t(sent, { kind, recipient }));
      }
      return partial(t("event_text.alert", { recipient }));
    case "alert_withdrawn":
      if (kind && LAPSED.includes(data.why)) {
        return full(t("event_text.alert_withdrawn_why", { kind, recipient, why: t(`event_text.lapsed.${data.why}`) }));
      }
      return partial(t("event_text.alert_withdrawn", { recipient }));
    case "located_other": {
      const words = { placed: unit(data.placed_in), unit: unit(data.unit) };
      if (source) return full(t("event_text.located_other_by", { ...words, source }));
      return partial(t("event_text.located_other", words));
    }
    case "repeat_at_site":
      return present(data.distance_m) && present(data.days_after)
        ? full(
            t("event_text.repeat_at_site", {
              distance: fmtNumber(data.distance_m),
              days: fmtNumber(data.days_after, 1),
            }),
          )
        : null;
    case "merged":
      return present(data.merged)
        ? full(t("event_text.merged", { id: data.merged }))
        : partial(t("event_text.merged", { id: "?" }));
    case "reassigned":
      if (data.automatic !== true) return null;
      return source ? full(t("event_text.reassigned_auto_by", { source })) : partial(t("event_text.reassigned_auto"));
    case "transition":
      if (present(data.merged_into)) return full(t("event_text.merged_into", { id: data.merged_into }));
      if (e.actor_role === "system" && e.to_state === "notified") return full(t("event_text.notified"));
      if (e.actor_role === "system" && e.to_state === "escalated") {
        return escalationSummary(data, nameOf, unit, levelOf);
      }
      return null;
    default:
      return null;
  }
}

// The levels of unit a fire is acted on by: an unreached unit is worded by its level (乡镇, 区县), else neutrally.
const UNIT_LEVELS = ["township", "county"];

/** Why the service escalated, and to whom: from `data.escalation` (newer events), else the older sentences. */
function escalationSummary(data, nameOf, unit, levelOf) {
  // The township's new-fire alert never reached it: the county has to tell the township itself.
  const unreachable = data.unreachable && typeof data.unreachable === "object" ? data.unreachable : null;
  const escalation = data.escalation && typeof data.escalation === "object" ? data.escalation : {};
  const cause = ESCALATION_CAUSES.includes(escalation.cause) ? escalation.cause : null;
  const from = COUNTED_FROM.includes(escalation.from) ? t(`event_text.escalation.from.${escalation.from}`) : null;
  const limit = typeof escalation.limit_s === "number" ? limitText(escalation.limit_s) : null;
  const township = unit({ township: unreachable && unreachable.unit });
  // A county-level unit (a fire with no township: counties loaded without townships) is not a "township".
  const unitLevel = unreachable && present(unreachable.unit) ? levelOf(String(unreachable.unit)) : null;
  const level = t(`event_text.unit_level.${UNIT_LEVELS.includes(unitLevel) ? unitLevel : "unknown"}`);
  // What each cause's words need; an event without them (or an older one, without causes) is worded as before.
  const needs = {
    not_acknowledged: [limit, from],
    not_on_site: [limit, from],
    not_delivered: [limit, from],
    given_up: [limit],
    no_recipients: [],
  };
  if (!cause || needs[cause].some((value) => value === null)) {
    if (unreachable) return { text: t("event_text.escalated_unreachable", { unit: township, level }), full: false };
    return { text: t("event_text.escalated"), full: false };
  }
  const why = t(`event_text.escalation.${cause}`, { limit, from, unit: township, level });
  // Who was told: the county's supervisors, a unit above it when the county has none, or nobody.
  const to = present(escalation.to)
    ? t("event_text.escalation.to", { unit: nameOf(String(escalation.to)) })
    : t("event_text.escalation.to_nobody");
  const error = unreachable && cause !== "no_recipients" && unreachable.error ? unreachable.error : null;
  return {
    text: [
      why,
      lang() === "en" ? " " : "",
      to,
      // A remote server's answer, as it gave it: shown as text, never markup.
      error
        ? h(
            "div",
            { class: "small muted last-error" },
            t("event_text.escalation.last_error"),
            h("span", { lang: "en" }, error),
          )
        : null,
    ],
    full: true,
  };
}

// Why a photo is suspicious (service/evidence/service.py PhotoFlag): codes with their figures, worded here.
const PHOTO_FLAGS = ["no_gps", "far_from_incident", "before_detection", "in_future"];

function photoFlagText(note) {
  if (!note || !PHOTO_FLAGS.includes(note.code)) return null;
  const params = note.params || {};
  return t(`evidence.flag.${note.code}`, { distance: fmtNumber(params.distance_m) });
}

/**
 * A photo's warnings in the reader's language from their codes (`flag_notes`); the server's English (`english`,
 * marked so for screen readers) for a code this page does not know, and for a server or an event without codes.
 */
function photoWarnings(notes, english) {
  const coded = Array.isArray(notes) ? notes.filter((n) => n && typeof n.text === "string") : [];
  if (!coded.length) return english ? h("div", { class: "warn small photo-flags", lang: "en" }, english) : null;
  const separator = lang() === "en" ? "; " : "；";
  return h(
    "div",
    { class: "warn small photo-flags" },
    coded.flatMap((note, i) => {
      const said = photoFlagText(note);
      const words = said === null ? h("span", { lang: "en" }, note.text) : h("span", {}, said);
      words.dataset.code = String(note.code);
      return [i ? separator : "", words];
    }),
  );
}

function timelineEntry(e, nameOf, photoFlags, levelOf) {
  const data = e.data || {};
  const flags = Array.isArray(data.flags) ? data.flags : [];
  // An upload recorded before the events carried codes: its photo's codes say the same (both from that upload).
  const ofPhoto = e.kind === "evidence" && e.evidence_sha256 ? photoFlags.get(e.evidence_sha256) : null;
  const flagNotes = Array.isArray(data.flag_notes)
    ? data.flag_notes
    : Array.isArray(ofPhoto) && ofPhoto.length === flags.length
      ? ofPhoto
      : null;
  const generated = isGenerated(e, data);
  const summary = generated ? systemSummary(e, data, nameOf, levelOf) : null;
  return h(
    "li",
    { dataset: { kind: e.kind, to: e.to_state || "" } },
    h(
      "div",
      { class: "tl-head" },
      h("time", { datetime: e.at }, fmtTime(e.at, true)),
      " ",
      h("strong", {}, EVENT_KINDS.includes(e.kind) ? t(`event.${e.kind}`) : e.kind),
    ),
    e.to_state ? h("div", {}, e.from_state ? [stateBadge(e.from_state), " → "] : null, stateBadge(e.to_state)) : null,
    h("div", { class: "muted small" }, `${e.actor} · ${t(`role.${e.actor_role}`)}`),
    e.kind === "reassigned" && data.to ? reassignChange(data) : null,
    e.kind === "repeat_at_site" && data.repeat_of != null ? repeatLink(data.repeat_of) : null,
    summary ? h("div", { class: "event-summary", title: summary.full && e.note ? e.note : null }, summary.text) : null,
    // A person's note as they typed it. The service's own English sentence only where the words above do not say
    // all it says (an older event without the data's codes, a kind this page does not know); otherwise it is the
    // summary's hover title, kept for whoever reads the raw record.
    e.note && !(summary && summary.full)
      ? h("div", generated ? { class: "note server-note small", lang: "en" } : { class: "note" }, e.note)
      : null,
    data.reason ? h("div", {}, `${t("false_alarm.reason")}: ${t(`reason.${data.reason}`)}`) : null,
    data.feedback ? feedbackFacts(data.feedback) : null,
    e.kind === "transition" && "position" in data ? positionLine(data.position) : null,
    flags.length ? photoWarnings(flagNotes, flags.join("; ")) : null,
    e.evidence_sha256
      ? h("div", { class: "small mono", title: e.evidence_sha256 }, `${t("evidence.sha")} ${short(e.evidence_sha256)}`)
      : null,
  );
}

/** Where the phone was at the move: its distance to the fire, and a warning when it was far or not located. */
function positionLine(position) {
  if (!position || typeof position !== "object") {
    return h(
      "div",
      { class: "position small", dataset: { position: "none" } },
      h("span", { class: "badge no-position", title: t("position.none_help") }, t("position.none")),
    );
  }
  const far = position.far_from_fire === true;
  const farHelp = t("position.far_help", { limit: fmtNumber(position.max_distance_m) });
  return h(
    "div",
    { class: "position small", dataset: { position: far ? "far" : "near", distance: String(position.distance_m) } },
    t("position.distance", { distance: fmtNumber(position.distance_m), accuracy: fmtNumber(position.accuracy_m) }),
    far ? [" ", h("span", { class: "badge far-from-fire", title: farHelp }, t("position.far"))] : null,
    position.imprecise === true
      ? [" ", h("span", { class: "badge imprecise", title: t("position.imprecise_help") }, t("position.imprecise"))]
      : null,
    position.stale === true
      ? [" ", h("span", { class: "badge imprecise stale", title: t("position.stale_help") }, t("position.stale"))]
      : null,
  );
}

/** 同一地点再次起火: a link to the earlier real fire at this place (the count that accountability asks for). */
function repeatTag(detail) {
  const earlier = detail.repeat_of_incident_id;
  if (earlier == null) return null;
  return h(
    "a",
    { class: "badge repeat", id: "repeat-at-site", href: `#/incident/${earlier}`, title: t("incident.repeat_help") },
    t("incident.repeat_at_site", { id: earlier }),
  );
}

function repeatLink(earlier) {
  return h("div", {}, h("a", { href: `#/incident/${earlier}` }, t("incident.repeat_at_site", { id: earlier })));
}

function reassignChange(data) {
  const unit = (side) => (side && (side.township || side.county)) || "—";
  return h("div", { class: "small mono reassign-change" }, `${unit(data.from)} → ${unit(data.to)}`);
}

function timeline(events, nameOf, photoFlags, levelOf) {
  // Newest first: what just happened is what a supervisor opens the page for.
  return h(
    "ol",
    { class: "timeline", id: "timeline" },
    [...events].reverse().map((e) => timelineEntry(e, nameOf, photoFlags, levelOf)),
  );
}

// The page ---------------------------------------------------------------------------------------------------------

export async function incidentPage(main, ctx) {
  const id = Number(ctx.params[0]);
  const base = `/api/v1/incidents/${id}`;
  const objectUrls = new Map(); // sha256 → blob URL of the photo, revoked when the page is left
  ctx.onCleanup(() => objectUrls.forEach((url) => URL.revokeObjectURL(url)));
  let miniMap = null;
  ctx.onCleanup(() => miniMap && miniMap.destroy());
  let cite = null; // the photo to cite in the next move: the one just uploaded, or chosen in the form
  let townships = null; // the regions API's townships (a promise), read when the reassign form first opens
  let lastEventId = null; // the record is append-only: a new last entry means something changed
  let shownState = null; // the state the page shows: sent with a move (expected_state)
  // Named by the form's title (each form's <h2 id="dialog-title">): a screen reader says what the dialog is for.
  const dialog = h("dialog", { class: "dialog", id: "transition-dialog", "aria-labelledby": "dialog-title" });
  let stale = false; // a move was refused because the incident changed: reload once the form is closed
  let openForm = null; // the form the dialog shows ({kind, to}), kept as a draft when the page is drawn again
  dialog.addEventListener("close", () => {
    openForm = null;
    if (!stale) return;
    stale = false;
    load()
      .then((fresh) => ctx.alive() && render(fresh))
      .catch((error) => ctx.alive() && isGone(error) && showGone(error)); // else the next poll tries again
  });

  /** Not (or no longer) the user's incident: another unit's is a 404 too, by design ("does not exist" or "not
   * yours"). Shown at once, and when a poll finds it gone (handed to another township meanwhile): the page must
   * not keep offering moves the server now refuses. */
  function showGone(error) {
    const hadFocus = main.contains(document.activeElement);
    if (miniMap) miniMap.destroy();
    miniMap = null;
    replace(
      main,
      h(
        "div",
        { class: "page" },
        h("h1", {}, t("incident.title", { id })),
        errorBox(error),
        h("p", {}, h("a", { href: "#/queue" }, t("incident.back"))),
      ),
    );
    if (hadFocus) focusPage(main);
  }

  const isGone = (error) => error instanceof ApiError && error.status === 404;

  async function load() {
    const [detail, events, evidence] = await Promise.all([api(base), api(`${base}/events`), api(`${base}/evidence`)]);
    return { detail, events, evidence };
  }

  let data;
  try {
    data = await load();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 422)) {
      showGone(error);
      return;
    }
    throw error;
  }
  if (!ctx.alive()) return;
  const regions = await loadRegions().catch(() => ({ county: { features: [] }, township: { features: [] } }));
  if (!ctx.alive()) return;
  // "东河乡 (DEMO02)" for a unit code in the record's data; the code alone when the unit is not loaded.
  const unitNames = new Map(
    [...regions.township.features, ...regions.county.features].map((f) => [f.properties.code, f.properties.name]),
  );
  const nameOf = (code) => unitName(unitNames.get(code), code);
  // The level of a unit code in the record's data ("township", "county"; null when the unit is not loaded).
  const unitLevels = new Map([
    ...regions.county.features.map((f) => [f.properties.code, "county"]),
    ...regions.township.features.map((f) => [f.properties.code, "township"]),
  ]);
  const levelOf = (code) => unitLevels.get(code) ?? null;
  render(data);
  // Another language or a reload draws the page again: the open form comes back filled in (restoreDraft).
  ctx.onDraft(() => (dialog.open && openForm ? { ...openForm, state: shownState, values: formValues(dialog) } : null));
  await restoreDraft(data);

  // Someone else (a supervisor, the escalation timer, a camera) may change the incident: every change is a new
  // entry in its record, so polling the record is enough. Nothing is redrawn under an open form or photo.
  const busy = () => Boolean(main.querySelector("dialog[open]"));
  ctx.every(ctx.config?.poll_interval_s || 15, async () => {
    if (busy()) return;
    try {
      const events = await api(`${base}/events`);
      const last = events.length ? events[events.length - 1].id : null;
      if (ctx.alive() && last !== lastEventId && !busy()) render(await load());
    } catch (error) {
      // Gone from the user's area (reassigned): say so. Anything else: keep what we have; the next poll tries again.
      if (ctx.alive() && isGone(error) && !busy()) showGone(error);
    }
  });

  /** A form an expired session interrupted: opened again as it was, if the incident has not moved since. */
  async function restoreDraft({ detail, evidence }) {
    const draft = takeDraft(window.location.hash);
    if (!draft) return;
    const same = draft.state === detail.state;
    if (draft.kind === "transition" && same && detail.allowed_transitions.includes(draft.to)) {
      openDialog(draft.to, evidence);
    } else if (draft.kind === "reassign" && same && REASSIGNERS.includes(ctx.session.role)) {
      await openReassign(detail);
    } else {
      toast(t("draft.stale"), "error");
      return;
    }
    if (!ctx.alive() || !dialog.open) return;
    restoreValues(dialog, draft.values);
    toast(t("draft.restored"));
  }

  /** Keep what the form holds before it is sent: a 401 on the way drops the page (see api.js). */
  function keepDraft(form, kind, to) {
    saveDraft({ route: window.location.hash, kind, to, state: shownState, values: formValues(form) });
  }

  /** The server answered (anything but 401) or nothing was sent: the form on screen is all there is. */
  function dropDraft(error) {
    if (!(error instanceof ApiError && error.status === 401)) clearDraft();
  }

  function render({ detail, events, evidence }) {
    // Where the focus was on the page (the button just pressed, the photo input): redrawing must not drop it.
    const focused = document.activeElement;
    const hadFocus = Boolean(focused) && focused !== main && main.contains(focused) && !dialog.contains(focused);
    const focusedId = hadFocus ? focused.id : "";
    lastEventId = events.length ? events[events.length - 1].id : null;
    shownState = detail.state;
    if (miniMap) miniMap.destroy();
    const place = [detail.township_name, detail.county_name].filter(Boolean).join(" · ") || t("incident.unassigned");
    const photos = evidence.length ? evidence.map(photoTile) : h("p", { class: "empty" }, t("evidence.none"));
    replace(
      main,
      h(
        "div",
        {
          class: "page incident-page",
          dataset: { incidentId: detail.id, state: detail.state, township: detail.township_code || "" },
        },
        h(
          "div",
          { class: "page-head" },
          h("h1", {}, t("incident.title", { id: detail.id }), " ", h("span", { class: "place" }, place)),
          h(
            "div",
            { class: "badges", id: "incident-state" },
            stateBadge(detail.state),
            lateTag(lateness(detail, ctx.config)),
            repeatTag(detail),
          ),
        ),
        h("p", { class: "muted small tz-note" }, t("common.tz_note")),
        h(
          "div",
          { class: "columns" },
          h(
            "div",
            { class: "column" },
            actionsCard(detail, evidence),
            assignmentCard(detail),
            card(
              t("incident.location"),
              locationFacts(detail),
              h("p", { class: "muted small" }, t("incident.coords_help")),
              miniMapOf(detail),
              amapLink(detail),
            ),
            card(t("incident.progress"), progress(detail)),
          ),
          h(
            "div",
            { class: "column" },
            card(t("evidence.title"), uploadControl(), h("div", { class: "photos", id: "photos" }, photos)),
            detail.feedback ? card(t("feedback.title"), feedbackFacts(detail.feedback)) : null,
            card(t("incident.observations", { n: detail.observations.length }), observationList(detail.observations)),
            card(
              t("incident.timeline"),
              timeline(events, nameOf, new Map(evidence.map((p) => [p.sha256, p.flag_notes])), levelOf),
            ),
          ),
        ),
        dialog,
      ),
    );
    if (hadFocus && !dialog.open) {
      const again = focusedId ? document.getElementById(focusedId) : null;
      if (again && main.contains(again)) again.focus();
      else focusPage(main);
    }
  }

  function actionsCard(detail, evidence) {
    const moves = detail.allowed_transitions;
    if (!moves.length) {
      const why = ctx.session.role === "evaluator" ? "incident.read_only" : "incident.no_actions";
      return card(t("incident.actions"), h("p", { class: "muted", id: "no-actions" }, t(why)));
    }
    const button = (to) =>
      h(
        "button",
        {
          type: "button",
          // Leaving the main path (false alarm, reopening) is a deliberate choice: drawn less prominently.
          class: ["big", to === "false_alarm" || to === "reopened" ? "secondary" : "primary"],
          dataset: { transition: to },
          onclick: () => openDialog(to, evidence),
        },
        t(`action.${to}`),
      );
    return card(t("incident.actions"), h("div", { class: "actions", id: "actions" }, moves.map(button)));
  }

  /** Supervisors and admins: where the incident is assigned, how sure that is, the candidates, and "reassign". */
  function assignmentCard(detail) {
    if (!REASSIGNERS.includes(ctx.session.role)) return null;
    const ranked = rankedCandidates(detail);
    const outside = outsideShare(detail);
    const current = new Set([detail.township_code, detail.county_code].filter(Boolean));
    const candidates = ranked.length
      ? h(
          "ol",
          { class: "candidates", id: "candidates" },
          ranked.map((c) => {
            const share = Math.min(Math.max(Number(c.share) || 0, 0), 1);
            return h(
              "li",
              { class: current.has(c.code) ? "current" : null, dataset: { code: c.code, level: String(c.level) } },
              h("span", { class: "candidate-name" }, unitName(c.name, c.code)),
              h("small", { class: "muted" }, LEVELS.includes(c.level) ? t(`incident.${c.level}`) : String(c.level)),
              h("meter", { min: 0, max: 1, value: share, "aria-label": t("reassign.share") }),
              h("span", { class: "num" }, fmtPercent(share)),
            );
          }),
        )
      : h("p", { class: "muted small" }, t("reassign.no_candidates"));
    const section = card(
      t("reassign.title"),
      facts([
        [t("incident.township"), unitName(detail.township_name, detail.township_code)],
        [t("incident.county"), unitName(detail.county_name, detail.county_code)],
        [t("reassign.status"), t(`assign.${detail.assignment_status}`)],
        [t("reassign.certainty"), fmtPercent(detail.assignment_certainty)],
        ...(outside === null ? [] : [[t("reassign.outside_share"), fmtPercent(outside)]]),
      ]),
      h("h3", {}, t("reassign.candidates")),
      candidates,
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          { type: "button", class: "secondary big", id: "reassign-open", onclick: () => openReassign(detail) },
          t("reassign.open"),
        ),
      ),
    );
    section.id = "assignment";
    return section;
  }

  function loadTownships() {
    if (!townships) {
      townships = api("/api/v1/regions", { params: { level: "township" } }).catch((error) => {
        townships = null; // try again next time the form opens
        throw error;
      });
    }
    return townships;
  }

  /** The reassign form: candidate townships first, then the rest of the user's county (an admin: all). */
  async function openReassign(detail) {
    const error = h("p", { class: "error", role: "alert", hidden: true, id: "r-error" });
    let units = [];
    try {
      units = await loadTownships();
    } catch (e) {
      // The candidates can still be offered; say why the rest of the county is missing.
      error.textContent = `${t("reassign.regions_failed")} ${e.message}`;
      error.hidden = false;
    }
    if (!ctx.alive() || dialog.open) return;
    const byCode = new Map(units.map((u) => [u.code, u]));
    const admin = ctx.session.role === "admin";
    // A supervisor answers for a county; one whose unit is a township works within that township's county.
    const own = ctx.session.unit_code;
    const county = (byCode.get(own) && byCode.get(own).parent_code) || own || detail.county_code;
    const candidates = rankedCandidates(detail).filter((c) => c.level === "township");
    const offered = new Set(candidates.map((c) => c.code));
    const others = units
      .filter((u) => !offered.has(u.code) && (admin || u.parent_code === county))
      .sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
    const label = (code, name, share) =>
      [
        unitName(name, code),
        present(share) ? ` · ${fmtPercent(Number(share))}` : "",
        code === detail.township_code ? ` ${t("reassign.current")}` : "",
      ].join("");
    const select = h(
      "select",
      { id: "r-township", required: true },
      h("option", { value: "" }, t("common.choose")),
      candidates.length
        ? h(
            "optgroup",
            { label: t("reassign.group_candidates") },
            candidates.map((c) =>
              h("option", { value: c.code }, label(c.code, byCode.get(c.code)?.name || c.name, c.share)),
            ),
          )
        : null,
      others.length
        ? h(
            "optgroup",
            { label: admin ? t("reassign.group_all") : t("reassign.group_county") },
            others.map((u) => h("option", { value: u.code }, label(u.code, u.name))),
          )
        : null,
    );
    const note = h("textarea", { id: "r-note", name: "note", rows: 3, maxlength: 4000, required: true });
    const submit = h("button", { type: "submit", class: "primary big", id: "r-submit" }, t("reassign.submit"));
    const cancel = h(
      "button",
      { type: "button", class: "secondary big", onclick: () => dialog.close() },
      t("common.cancel"),
    );

    async function send(event) {
      event.preventDefault();
      const code = select.value;
      const text = note.value.trim();
      if (!code || !text) {
        error.textContent = code ? t("reassign.note_required") : t("reassign.pick");
        error.hidden = false;
        (code ? note : select).focus();
        return;
      }
      const body = { township_code: code, note: text };
      // Moving to another county's township moves the county too (the server does not infer it).
      const parent = byCode.get(code)?.parent_code;
      if (parent && parent !== detail.county_code) body.county_code = parent;
      submit.disabled = true;
      error.hidden = true;
      keepDraft(event.target, "reassign", null);
      let moved;
      try {
        moved = await api(`${base}/assignment`, { json: body });
      } catch (e) {
        dropDraft(e);
        error.textContent = notSent(e);
        error.hidden = false;
        submit.disabled = false;
        return;
      }
      clearDraft();
      dialog.close();
      toast(t("reassign.done", { unit: unitName(moved.township_name, moved.township_code) }), "ok");
      if (!ctx.alive()) return;
      try {
        render(await load());
      } catch {
        ctx.navigate("#/queue"); // handed out of the user's area: nothing more to show here
      }
    }

    replace(
      dialog,
      h(
        "form",
        { class: "form", id: "reassign-form", onsubmit: send, oninput: () => (error.hidden = true) },
        h("h2", { id: "dialog-title" }, `${t("reassign.open")} · ${t("incident.title", { id })}`),
        h(
          "p",
          { class: "muted small" },
          `${t("reassign.from")}: ${unitName(detail.township_name, detail.township_code)}`,
        ),
        h("label", { for: "r-township" }, t("reassign.township"), " *"),
        select,
        h("label", { for: "r-note" }, t("reassign.note"), " *"),
        note,
        error,
        h("div", { class: "dialog-buttons" }, cancel, submit),
      ),
    );
    dialog.showModal();
    openForm = { kind: "reassign", to: null };
    select.focus();
  }

  function miniMapOf(detail) {
    const township = regions.township.features.filter((f) => f.properties.code === detail.township_code);
    const county = regions.county.features.filter((f) => f.properties.code === detail.county_code);
    miniMap = mapView({
      label: t("incident.location"),
      layers: [
        { features: township, className: "townships", labels: true },
        { features: township.length ? [] : county, className: "counties", labels: true },
      ],
      overlays: detail.observations.map((o) => ({
        geometry: o.region,
        className: `footprint kind-${o.kind}`,
        title: t(`kind.${o.kind}`),
      })),
      markers: [markerOf(detail, ctx.config)],
      maxHeight: 240,
    });
    return miniMap.element;
  }

  function photoTile(photo) {
    const img = h("img", { alt: photo.filename, class: "thumb", loading: "lazy", dataset: { sha256: photo.sha256 } });
    // <img src> cannot send the bearer token, so the photo is fetched like any API call and shown from a blob URL.
    const known = objectUrls.get(photo.sha256);
    if (known) img.src = known;
    else {
      api(`${base}/evidence/${photo.sha256}`, { as: "blob" })
        .then((blob) => {
          const url = URL.createObjectURL(blob);
          objectUrls.set(photo.sha256, url);
          img.src = url;
        })
        .catch(() => img.classList.add("broken"));
    }
    const open = () => showPhoto(photo);
    return h(
      "figure",
      { class: "photo", dataset: { sha256: photo.sha256 } },
      h("button", { type: "button", class: "thumb-button", "aria-label": t("evidence.open"), onclick: open }, img),
      h(
        "figcaption",
        {},
        h("span", { class: "mono", title: photo.sha256 }, short(photo.sha256)),
        h("br"),
        h("small", {}, `${photo.uploaded_by} · ${fmtTime(photo.uploaded_at)}`),
        present(photo.distance_m) ? h("small", {}, ` · ${fmtNumber(photo.distance_m)} m`) : null,
        photo.flags ? photoWarnings(photo.flag_notes, photo.flags) : null,
      ),
    );
  }

  function showPhoto(photo) {
    const url = objectUrls.get(photo.sha256);
    if (!url) return;
    const viewer = h(
      "dialog",
      { class: "dialog photo-viewer", "aria-label": t("evidence.open"), onclose: () => viewer.remove() },
      h("img", { src: url, alt: photo.filename }),
      h("p", { class: "mono small" }, photo.sha256),
      h("form", { method: "dialog" }, h("button", { class: "secondary big" }, t("common.close"))),
    );
    main.append(viewer);
    viewer.showModal();
  }

  function uploadControl() {
    if (!ACTORS.includes(ctx.session.role)) return null;
    const status = h("p", { class: "muted small", id: "upload-status", "aria-live": "polite" });
    // capture="environment" opens the rear camera directly on a phone; on a desktop it is an ordinary file picker.
    const input = h("input", {
      type: "file",
      id: "evidence-input",
      accept: "image/*",
      capture: "environment",
      class: "visually-hidden",
      onchange: async () => {
        const file = input.files && input.files[0];
        if (!file) return;
        // Refused here rather than after minutes of sending it over a township link (the server would say 413).
        const limitMb = ctx.config?.max_upload_mb || DEFAULT_MAX_UPLOAD_MB;
        if (file.size > limitMb * 1048576) {
          const size = fmtNumber(file.size / 1048576, 1);
          status.textContent = t("evidence.too_large", { size, limit: fmtNumber(limitMb, 1) });
          input.value = "";
          return;
        }
        status.textContent = t("evidence.uploading");
        const form = new FormData();
        form.append("file", file, file.name || "photo.jpg");
        try {
          const stored = await api(`${base}/evidence`, { form });
          cite = stored.sha256;
          toast(t("evidence.uploaded", { sha: short(stored.sha256) }), "ok");
          if (ctx.alive()) render(await load());
        } catch (error) {
          // The server's check refused the file (not a readable image, a format or size it does not take): said
          // plainly; its own English reason ("not a readable image (UnidentifiedImageError)") is the hover title.
          const refused = error instanceof ApiError && error.status === 422;
          status.textContent = `${t("evidence.failed")} ${refused ? t("evidence.rejected") : notSent(error)}`;
          status.title = refused ? error.message : "";
          input.value = ""; // picking the same photo again fires "change" again
        }
      },
    });
    // The label is the big button; the input itself stays out of sight but keyboard-reachable.
    const label = h("label", { for: "evidence-input", class: "button-like primary big" }, t("evidence.take"));
    return h("div", { class: "upload" }, label, input, status);
  }

  /** The fields a move needs: a reason for a false alarm, the report for feedback; always a note and a photo. */
  function transitionFields(to, evidence) {
    const note = h("textarea", { id: "t-note", name: "note", rows: 2, maxlength: 4000 });
    const fields = [];
    const read = { note: () => note.value.trim() };
    if (to === "false_alarm") {
      const reason = h(
        "select",
        { id: "t-reason", required: true },
        h("option", { value: "" }, t("common.choose")),
        FALSE_ALARM_REASONS.map((r) => h("option", { value: r }, t(`reason.${r}`))),
      );
      fields.push(h("label", { for: "t-reason" }, t("false_alarm.reason")), reason);
      read.reason = () => reason.value;
      read.first = reason;
    }
    if (to === "feedback") {
      const cause = h("input", { id: "t-cause", required: true, list: "t-causes", maxlength: 200 });
      const area = h("input", { id: "t-area", type: "number", min: 0, step: "any", inputmode: "decimal" });
      const party = h("input", { id: "t-party", maxlength: 200 });
      // 处置措施 and 处罚 (the field notes' 反馈: photos, GPS, cause, 责任人, 处罚); the API takes up to 1000 characters.
      const measures = h("textarea", { id: "t-measures", rows: 2, maxlength: 1000 });
      const penalty = h("input", { id: "t-penalty", maxlength: 1000 });
      const boxes = evidence.map((p) =>
        h("input", { type: "checkbox", value: p.sha256, checked: true, id: `t-photo-${p.sha256.slice(0, 12)}` }),
      );
      fields.push(
        h("label", { for: "t-cause" }, t("feedback.cause"), " *"),
        cause,
        h("datalist", { id: "t-causes" }, CAUSES.map((c) => h("option", { value: t(`cause.${c}`) }))),
        h("label", { for: "t-area" }, t("feedback.burned_area"), " (m²)"),
        area,
        h("label", { for: "t-party" }, t("feedback.responsible")),
        party,
        h("label", { for: "t-measures" }, t("feedback.measures")),
        measures,
        h("label", { for: "t-penalty" }, t("feedback.penalty")),
        penalty,
        boxes.length
          ? h(
              "fieldset",
              {},
              h("legend", {}, t("feedback.photos")),
              boxes.map((box, i) => h("label", { class: "check", for: box.id }, box, " ", short(evidence[i].sha256))),
            )
          : null,
      );
      read.feedback = () => {
        const report = { cause: cause.value.trim() };
        if (area.value !== "") report.burned_area_m2 = Number(area.value);
        if (party.value.trim()) report.responsible_party = party.value.trim();
        if (measures.value.trim()) report.measures = measures.value.trim();
        if (penalty.value.trim()) report.penalty = penalty.value.trim();
        const cited = boxes.filter((b) => b.checked).map((b) => b.value);
        if (cited.length) report.photos = cited;
        return report;
      };
      read.first = cause;
    }
    fields.push(h("label", { for: "t-note" }, t("transition.note")), note);
    if (evidence.length) {
      const choice = h(
        "select",
        { id: "t-evidence" },
        h("option", { value: "" }, t("transition.no_evidence")),
        evidence.map((p) =>
          h("option", { value: p.sha256, selected: p.sha256 === cite }, `${short(p.sha256)} ${p.filename}`),
        ),
      );
      fields.push(h("label", { for: "t-evidence" }, t("transition.evidence")), choice);
      read.evidence = () => choice.value;
    }
    read.first = read.first || note;
    return { fields, read };
  }

  function openDialog(to, evidence) {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const { fields, read } = transitionFields(to, evidence);
    // Asked for as soon as the move is chosen, so that the fix is usually there by the time the form is sent.
    const located = LOCATED_MOVES.includes(to) ? currentPosition() : null;
    const where = located
      ? h("p", { class: "muted small", id: "t-position", "aria-live": "polite" }, t("position.locating"))
      : null;
    if (located) {
      located.then((position) => {
        where.textContent = position
          ? t("position.found", { accuracy: fmtNumber(position.accuracy_m) })
          : t("position.unavailable");
        where.dataset.state = position ? "found" : "unavailable";
      });
    }
    const submit = h("button", { type: "submit", class: "primary big", id: "t-submit" }, t(`action.${to}`));
    const cancel = h(
      "button",
      { type: "button", class: "secondary big", onclick: () => dialog.close() },
      t("common.cancel"),
    );

    async function send(event) {
      event.preventDefault();
      // The state this page shows: a move another phone made meanwhile makes the server refuse (409), not act twice.
      const body = { to, note: read.note(), expected_state: shownState };
      if (read.reason) body.reason = read.reason();
      if (read.feedback) body.feedback = read.feedback();
      if (read.evidence && read.evidence()) body.evidence_sha256 = read.evidence();
      submit.disabled = true;
      keepDraft(event.target, "transition", to);
      if (located) {
        // At most a few seconds (the fix was asked for when the form opened); without one the move goes anyway.
        const position = await located;
        if (position) body.position = position;
      }
      let sent = false;
      try {
        await api(`${base}/transitions`, { json: body });
        sent = true;
      } catch (e) {
        dropDraft(e);
        const conflict = e instanceof ApiError && e.status === 409;
        error.textContent = conflict
          ? `${t("error.not_sent")} ${t("transition.conflict")} ${e.message}`
          : isGone(e)
            ? `${t("error.not_sent")} ${t("error.not_found")}`
            : notSent(e);
        error.hidden = false;
        stale = stale || conflict || isGone(e); // closing the form reloads the page (or says the fire is gone)
      } finally {
        submit.disabled = false;
      }
      if (!sent) return;
      clearDraft();
      cite = null;
      dialog.close();
      toast(t("transition.done", { state: t(`state.${to}`) }), "ok");
      // A failed reload after a move that went through is not a failed move: the next poll redraws the page.
      if (!ctx.alive()) return;
      try {
        render(await load());
      } catch {
        /* the move went through; the next poll redraws the page */
      }
    }

    replace(
      dialog,
      h(
        "form",
        { class: "form", onsubmit: send },
        h("h2", { id: "dialog-title" }, `${t(`action.${to}`)} · ${t("incident.title", { id })}`),
        fields,
        where,
        error,
        h("div", { class: "dialog-buttons" }, cancel, submit),
      ),
    );
    dialog.showModal();
    openForm = { kind: "transition", to };
    read.first.focus();
  }
}
