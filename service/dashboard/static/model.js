// What the app knows about incidents beyond the API's JSON: display order and colours of the states, which states
// are still open, and when an incident is late. The lifecycle itself (who may do what) is NOT duplicated here:
// the server sends `allowed_transitions` for the caller and the app offers exactly those.

export const STATES = [
  "suspected",
  "notified",
  "escalated",
  "reopened",
  "acknowledged",
  "en_route",
  "on_site",
  "extinguished",
  "feedback",
  "verified",
  "closed",
  "false_alarm",
];

// Hot colours while the township still has to act, green once handled, blue/grey when done. Chosen to stay
// distinguishable on a sunlit phone screen; the marker also carries the state name for colour-blind users.
export const STATE_COLOURS = {
  suspected: "#d7191c",
  notified: "#e6550d",
  escalated: "#7a0177",
  reopened: "#c51b8a",
  acknowledged: "#fd8d3c",
  en_route: "#f4a736",
  on_site: "#e0c000",
  extinguished: "#66bd63",
  feedback: "#1a9850",
  verified: "#3288bd",
  closed: "#7f7f7f",
  false_alarm: "#b0b0b0",
};

// The server's OPEN_STATES: the township still has to act (service/incidents/states.py).
const DONE = new Set(["closed", "false_alarm", "verified"]);
export const isOpen = (incident) => !DONE.has(incident.state);

// ACTIVE_STATES: still a live fire on the map.
export const isActive = (incident) => incident.state !== "closed" && incident.state !== "false_alarm";

export const FALSE_ALARM_REASONS = [
  "industrial_heat",
  "non_straw_fire",
  "permitted_burn",
  "duplicate",
  "not_found",
  "out_of_area",
];

export const EVENT_KINDS = [
  "created",
  "observation",
  "transition",
  "merged",
  "reassigned",
  "evidence",
  "alert",
  "alert_withdrawn",
  "located_other",
  "repeat_at_site",
];

function deadlinesFor(incident, config) {
  const fallback = { acknowledge_min: 15, on_site_min: 30 };
  if (!config) return fallback;
  return (config.county_deadlines || {})[incident.county_code] || config.deadlines || fallback;
}

/**
 * Why an incident is late, or null: the same rule as the escalation timer (service/alerts/escalation.py) —
 * not acknowledged within the county's deadline of being notified (or reopened), or not on site within the
 * deadline of acknowledging; each deadline counts from the fire's later move to another unit, which the server
 * works out (`clock_from`: the team a fire was moved to is not late for the time lost at the unit it was wrongly
 * placed in). A reply without `clock_from` (an older server) counts from the state's own time. Escalated incidents
 * are late by definition.
 */
export function lateness(incident, config, now = Date.now()) {
  const d = deadlinesFor(incident, config);
  const minutesSince = (iso) => (iso ? (now - new Date(iso).getTime()) / 60000 : null);
  const since = (own) => minutesSince("clock_from" in incident ? incident.clock_from : own);
  if (incident.state === "escalated") return { kind: "escalated", minutes: minutesSince(incident.escalated_at) };
  if (incident.state === "notified" || incident.state === "reopened") {
    const minutes = since(incident.state === "reopened" ? incident.reopened_at : incident.notified_at);
    if (minutes !== null && minutes > d.acknowledge_min) return { kind: "acknowledge", minutes };
  }
  if (incident.state === "acknowledged" || incident.state === "en_route") {
    const minutes = since(incident.acknowledged_at);
    if (minutes !== null && minutes > d.on_site_min) return { kind: "on_site", minutes };
  }
  return null;
}
