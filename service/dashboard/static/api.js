// Talking to the strawfire JSON API with the signed-in user's bearer token.
//
// The token lives in sessionStorage: it dies with the tab (a shared township PC forgets it), it never appears in
// a URL (so it cannot leak through history, logs or a Referer), and every request adds it as an Authorization
// header. A 401 means the token expired or the user was disabled: the session is dropped and the app shows the
// login page again (saying why), and a form being sent at that moment is kept as a draft (below) so that signing
// in again brings it back filled in.

const KEY = "strawfire.session";
const listeners = new Set();

/** The stored session {token, username, role, unit_code}, or null. */
export function currentSession() {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return value && typeof value.token === "string" ? value : null;
  } catch {
    return null; // a corrupted entry is the same as none
  }
}

/** Call fn(session, reason) whenever the session starts or ends; reason "expired" when the server refused it. */
export function onSessionChange(fn) {
  listeners.add(fn);
}

function setSession(value, reason = null) {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(value, reason);
}

// A form on its way to the server ({username, route, kind, to, state, values}), saved before it is sent and
// dropped once the server has answered anything but 401: what a user typed survives an expired session (and a
// reload of the tab). It stays in this tab's sessionStorage and is only given back to the same user.
const DRAFT = "strawfire.draft";

export function saveDraft(draft) {
  const session = currentSession();
  if (!session) return;
  try {
    sessionStorage.setItem(DRAFT, JSON.stringify({ ...draft, username: session.username }));
  } catch {
    /* storage full or disabled: the form itself still holds the text */
  }
}

export function clearDraft() {
  sessionStorage.removeItem(DRAFT);
}

/** The saved draft, if any (of whoever was signed in). */
export function peekDraft() {
  try {
    const draft = JSON.parse(sessionStorage.getItem(DRAFT) || "null");
    return draft && typeof draft === "object" && typeof draft.route === "string" ? draft : null;
  } catch {
    return null;
  }
}

/** The draft for `route` saved by the signed-in user, removed from storage; null when there is none. */
export function takeDraft(route) {
  const draft = peekDraft();
  const session = currentSession();
  if (!draft || !session || draft.username !== session.username || draft.route !== route) return null;
  clearDraft();
  return draft;
}

/** The request never reached the server or its answer never came back (no signal, server down, or no answer
 * within the time limit: `timedOut`). */
export class NetworkError extends Error {
  constructor(cause, timedOut = false) {
    super(timedOut ? "no answer in time" : cause && cause.message ? cause.message : "network error");
    this.status = 0;
    this.timedOut = timedOut;
  }
}

// How long a request may wait for the server's whole answer before it counts as "no connection" (NetworkError):
// a server that stopped answering (hung, or a link that drops packets without closing) would otherwise leave a
// form's button disabled for ever, with no message. A JSON call on a 2G township link answers within seconds, so
// 20 s without an answer means none is coming; the user is told "not sent, no connection" and keeps the form (a
// request that did reach the server is safe to send again: reports carry their id, moves their expected state).
// Photos travel much longer over such a link: an upload (up to the 25 MB evidence limit) or a photo download gets
// minutes.
export const REQUEST_TIMEOUT_MS = 20000;
export const UPLOAD_TIMEOUT_MS = 300000;
export const DOWNLOAD_TIMEOUT_MS = 120000;

/**
 * fetch(), and `read` of its response, within `timeoutMs`: what `read` returns, or a NetworkError when no answer
 * came (fetch rejected, or the time ran out before the whole answer arrived).
 */
async function exchange(url, init, timeoutMs, read) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { ...init, signal: controller.signal });
    const result = await read(response);
    // readJson swallows a body cut short by the abort: a late answer is no answer.
    if (controller.signal.aborted) throw new NetworkError(null, true);
    return result;
  } catch (error) {
    if (error instanceof NetworkError || error instanceof ApiError) throw error;
    // fetch rejects only when no answer came: say so, not "Failed to fetch"
    throw new NetworkError(error, controller.signal.aborted);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Read every page of a list: {items, truncated}. The pages are followed by the server's cursor (the
 * `X-Next-Cursor` header of a full page, sent back as `cursor`): keyset paging on an order that never changes, so
 * an incident created, observed again or closed between two requests can neither be read twice nor skipped. A list
 * whose full pages come without a cursor is read by `offset`, and items are then kept once by id (a new item
 * arriving between pages shifts the offsets by one). `truncated` is true when `maxPages` were read and there may be
 * more (the page then says it shows only part).
 */
export async function fetchAll(path, params = {}, { pageSize = 1000, maxPages = 5 } = {}) {
  const items = [];
  const seen = new Set();
  let cursor = null;
  for (let page = 0; page < maxPages; page++) {
    const position = cursor ? { cursor } : { offset: page * pageSize };
    const query = { ...params, limit: pageSize, ...position };
    const { data: batch, headers } = await api(path, { params: query, as: "page" });
    for (const item of batch) {
      if (item && item.id !== undefined && seen.has(item.id)) continue;
      if (item && item.id !== undefined) seen.add(item.id);
      items.push(item);
    }
    cursor = headers.get("X-Next-Cursor");
    if (batch.length < pageSize) return { items, truncated: false };
  }
  return { items, truncated: true };
}

/** An API answer other than 2xx; `detail` is the server's message (text, or FastAPI's validation list). */
export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(detail) || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => [Array.isArray(d.loc) ? d.loc.join(".") : "", d.msg].filter(Boolean).join(": "))
      .join("; ");
  }
  return "";
}

/** The OAuth2 password flow: exchange the credentials for a token and remember who signed in. */
export async function login(username, password, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  const body = new URLSearchParams({ username, password, grant_type: "password" });
  const init = { method: "POST", body, credentials: "omit", cache: "no-store" };
  const url = new URL("/api/v1/auth/token", window.location.origin);
  const { response, data } = await exchange(url, init, timeoutMs, async (r) => ({
    response: r,
    data: await readJson(r),
  }));
  if (!response.ok) throw new ApiError(response.status, data && data.detail);
  setSession({ token: data.access_token, username, role: data.role, unit_code: data.unit_code });
  return currentSession();
}

export function logout() {
  clearDraft(); // a shared township PC: the next user must not find the last one's report
  setSession(null);
}

async function readJson(response) {
  const type = response.headers.get("content-type") || "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/**
 * Call the API. Options: method, params (query, nulls dropped), json (a body to send as JSON), form (FormData),
 * as: "json" (default), "blob", or "page" ({data, headers}: the JSON and the response's headers), timeoutMs (the
 * time limit for the whole answer; REQUEST_TIMEOUT_MS, or UPLOAD/DOWNLOAD_TIMEOUT_MS for a form or a blob).
 */
export async function api(path, options = {}) {
  const session = currentSession();
  const headers = { Accept: options.as === "blob" ? "*/*" : "application/json" };
  if (session) headers.Authorization = `Bearer ${session.token}`;
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form; // the browser sets the multipart boundary itself
  }
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(options.params || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const init = {
    method: options.method || (body ? "POST" : "GET"),
    headers,
    body,
    credentials: "omit", // the bearer header is the only credential; no cookies exist
    cache: "no-store",
  };
  const timeoutMs =
    options.timeoutMs ||
    (options.form ? UPLOAD_TIMEOUT_MS : options.as === "blob" ? DOWNLOAD_TIMEOUT_MS : REQUEST_TIMEOUT_MS);
  const { response, data } = await exchange(url, init, timeoutMs, async (r) => ({
    response: r,
    data: r.ok && options.as === "blob" ? await r.blob() : await readJson(r),
  }));
  if (response.status === 401 && session) {
    setSession(null, "expired");
  }
  if (!response.ok) throw new ApiError(response.status, data && data.detail);
  if (options.as === "page") return { data, headers: response.headers };
  return data;
}
