// Talking to the strawfire JSON API with the signed-in user's bearer token.
//
// The token lives in sessionStorage: it dies with the tab (a shared township PC forgets it), it never appears in
// a URL (so it cannot leak through history, logs or a Referer), and every request adds it as an Authorization
// header. A 401 means the token expired or the user was disabled: the session is dropped and the app shows the
// login page again.

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

/** Call fn() whenever the session starts or ends. */
export function onSessionChange(fn) {
  listeners.add(fn);
}

function setSession(value) {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(value);
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
export async function login(username, password) {
  const body = new URLSearchParams({ username, password, grant_type: "password" });
  const response = await fetch("/api/v1/auth/token", {
    method: "POST",
    body,
    credentials: "omit",
    cache: "no-store",
  });
  const data = await readJson(response);
  if (!response.ok) throw new ApiError(response.status, data && data.detail);
  setSession({ token: data.access_token, username, role: data.role, unit_code: data.unit_code });
  return currentSession();
}

export function logout() {
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
 * as: "json" (default) or "blob".
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
  const response = await fetch(url, {
    method: options.method || (body ? "POST" : "GET"),
    headers,
    body,
    credentials: "omit", // the bearer header is the only credential; no cookies exist
    cache: "no-store",
  });
  if (response.status === 401 && session) {
    setSession(null);
  }
  if (!response.ok) {
    const data = await readJson(response);
    throw new ApiError(response.status, data && data.detail);
  }
  if (options.as === "blob") return response.blob();
  return readJson(response);
}
