// Is the loop working? The system status (GET /api/v1/status) for supervisors and admins: one reading shared by
// the top bar's indicator ("系统正常" / "2 个问题", a link to #/status) and the status page.
//
// The API refuses every other role (403), so nothing here asks for it unless the signed-in role may see it. The
// reading is refreshed every REFRESH_S seconds while the tab is visible, and on navigation when it is older than
// FRESH_S: clicking through pages does not send a request per click. A reading that failed keeps the last good
// data for the page, but the indicator then says the status is unknown rather than showing an old "OK".

import { api, currentSession } from "./api.js";
import { h, replace, updatedNow } from "./dom.js";
import { t } from "./i18n.js";

/** The roles GET /api/v1/status answers (service/deps.py: Supervisor). */
export const STATUS_ROLES = ["supervisor", "admin"];
export const REFRESH_S = 60;
const FRESH_S = 20;

// {data, error, at (ms), token}: the latest reading, of the session whose token it was read with.
const EMPTY = { data: null, error: null, at: 0, token: null };
let reading = EMPTY;
let inflight = null; // {token, promise}
let timer = 0;
const listeners = new Set();
let indicator = null;

export function canSeeStatus(session) {
  return Boolean(session) && STATUS_ROLES.includes(session.role);
}

/** The latest reading of the signed-in user (EMPTY before the first one). */
export function statusReading() {
  const session = currentSession();
  return session && reading.token === session.token ? reading : EMPTY;
}

/** Call fn(reading) after every reading; returns the function that stops it. */
export function onStatus(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * Read the status unless the reading is younger than `maxAgeS` (0: always). Requests under way are shared, and a
 * role the API would refuse sends none. Never throws: a failure is part of the reading.
 */
export function readStatus(maxAgeS = 0) {
  const session = currentSession();
  if (!canSeeStatus(session)) return Promise.resolve(EMPTY);
  const mine = statusReading();
  if (maxAgeS > 0 && mine.at && Date.now() - mine.at < maxAgeS * 1000) return Promise.resolve(mine);
  if (inflight && inflight.token === session.token) return inflight.promise;
  const promise = (async () => {
    let next;
    try {
      next = { data: await api("/api/v1/status"), error: null, at: Date.now(), token: session.token };
    } catch (error) {
      // Keep the last good data (the page shows it under the error); the time stops a retry on every click.
      next = { data: mine.data, error, at: Date.now(), token: session.token };
    }
    if (inflight && inflight.promise === promise) inflight = null;
    if (currentSession()?.token !== session.token) return EMPTY; // signed out or someone else meanwhile
    reading = next;
    renderIndicator();
    for (const fn of listeners) fn(reading);
    return reading;
  })();
  inflight = { token: session.token, promise };
  return promise;
}

function tick() {
  if (!document.hidden) readStatus(REFRESH_S / 2);
}

function onVisible() {
  if (!document.hidden) readStatus(REFRESH_S);
}

/** Called on every navigation: keep the periodic reading going for supervisors and admins, stop it for others. */
export function watchStatus(session) {
  if (!canSeeStatus(session)) {
    clearInterval(timer);
    timer = 0;
    document.removeEventListener("visibilitychange", onVisible);
    reading = EMPTY;
    inflight = null;
    return;
  }
  if (!timer) {
    timer = setInterval(tick, REFRESH_S * 1000);
    document.addEventListener("visibilitychange", onVisible);
  }
  readStatus(FRESH_S);
}

/** "系统正常", "1 个问题", "3 个问题": the verdict on a reading with `n` problems (the indicator's and the page's). */
export function problemsText(n) {
  if (n === 0) return t("status.indicator.ok");
  return t("status.indicator.problems", { n });
}

/** What the indicator shows: "loading" (no reading yet), "unknown" (the last reading failed), "ok", "degraded". */
export function indicatorState(current) {
  if (current.error) return "unknown";
  if (!current.data) return "loading";
  return current.data.problems.length ? "degraded" : "ok";
}

function renderIndicator() {
  if (!indicator) return;
  const current = statusReading();
  const state = indicatorState(current);
  const n = current.data ? current.data.problems.length : 0;
  const text =
    state === "loading"
      ? t("status.indicator.loading")
      : state === "unknown"
        ? t("status.indicator.unknown")
        : problemsText(n);
  const when = current.at ? updatedNow(current.at) : "";
  const why = current.error ? `${t("status.unreadable")} ${current.error.message}` : "";
  indicator.dataset.state = state;
  indicator.dataset.problems = String(n);
  indicator.title = [t("status.title"), why, when].filter(Boolean).join(" · ");
  // On a phone only the dot and the number fit beside the language and sign-out buttons; the words stay for
  // screen readers (app.css hides .sys-label visually below 600 px and shows .sys-count instead).
  replace(
    indicator,
    h("span", { class: "sys-dot", "aria-hidden": "true" }),
    state === "degraded" ? h("span", { class: "sys-count", "aria-hidden": "true" }, String(n)) : null,
    h("span", { class: "sys-label" }, text),
  );
}

/** The top bar's indicator for a role that may see the status (null otherwise); one element, moved on redraws. */
export function statusIndicator(session, section) {
  if (!canSeeStatus(session)) return null;
  indicator ||= h("a", { id: "system-status", class: "sys-status", href: "#/status" });
  if (section === "status") indicator.setAttribute("aria-current", "page");
  else indicator.removeAttribute("aria-current");
  renderIndicator();
  return indicator;
}
