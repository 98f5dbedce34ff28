// The dashboard shell: routing on the URL fragment, the top bar (navigation, language, user), the login page and
// the per-page lifecycle (polling timers and object URLs are released when the user leaves a page).
//
// Routes live after "#" (e.g. #/incident/12) so the server serves one page and the token never travels in a URL.

import {
  api,
  ApiError,
  clearDraft,
  currentSession,
  login,
  logout,
  onSessionChange,
  peekDraft,
  saveDraft,
} from "./api.js";
import { clearToast, errorBox, focusPage, h, replace, toast } from "./dom.js";
import { LANGUAGES, lang, onLanguageChange, setLang, t } from "./i18n.js";
import { camerasPage } from "./page-cameras.js";
import { inboxPage } from "./page-inbox.js";
import { incidentPage } from "./page-incident.js";
import { mapPage } from "./page-map.js";
import { queuePage } from "./page-queue.js";
import { scoresPage, statsPage } from "./page-stats.js";
import { statusPage } from "./page-status.js";
import { STATUS_ROLES, statusIndicator, watchStatus } from "./status.js";

// People who act on fires: the DEMO inbox shows them the alerts of their unit (the server filters them).
const INBOX_ROLES = ["patrol", "supervisor", "admin"];

// [pattern, page, section, roles that may open it (all when absent; others are sent to their first page),
//  the config.json flag the page needs (others are sent to their first page too)]
const ROUTES = [
  [/^\/map$/, mapPage, "map"],
  [/^\/queue$/, queuePage, "queue"],
  [/^\/incident\/(\d+)$/, incidentPage, "queue"],
  [/^\/stats$/, statsPage, "stats"],
  [/^\/scores$/, scoresPage, "scores"],
  [/^\/cameras$/, camerasPage, "cameras", ["admin"]], // the mask suggestions it is built on are admins' only
  [/^\/status$/, statusPage, "status", STATUS_ROLES], // the top bar's status indicator links here
  [/^\/inbox$/, inboxPage, "inbox", INBOX_ROLES, "demo"], // only when the server runs the demo
];

// [section, route, label, roles that see it (all when absent), the config.json flag it needs]
const NAV = [
  ["map", "#/map", "nav.map"],
  ["queue", "#/queue", "nav.queue"],
  ["stats", "#/stats", "nav.stats"],
  ["scores", "#/scores", "nav.scores"],
  ["cameras", "#/cameras", "nav.cameras", ["admin"]],
  ["inbox", "#/inbox", "nav.inbox", INBOX_ROLES, "demo"],
];

let config = null; // /app/config.json, loaded once per session
let cleanups = [];
// The page's open form, as a draft ({kind, values, …}) or null: kept before the page is drawn again (another
// language) or the tab unloads (a reload), and given back by the page the next time it is drawn (takeDraft).
let drafters = [];
let generation = 0; // bumps on every navigation: async work of a page left behind must not touch the DOM
let expired = false; // the server refused the token (401): the login page says so instead of appearing unexplained

/** Parse "#/path?a=1&b=2" into {path, query}. */
function parseHash() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

/** Go to an in-app route (a "#/..." string); `replace` keeps it out of the back-button history. */
export function navigate(hash, replaceEntry = false) {
  if (window.location.hash === hash) route();
  else if (replaceEntry) window.location.replace(hash);
  else window.location.hash = hash;
}

function homeFor(session) {
  // Patrol teams work from their queue on a phone; everyone else starts with the overview map.
  return session.role === "patrol" ? "#/queue" : "#/map";
}

/** Whether a page (its roles and config.json flag, as ROUTES and NAV give them) is offered to this session. */
function offered(session, roles, flag) {
  return (!roles || roles.includes(session.role)) && (!flag || Boolean(config && config[flag]));
}

async function loadConfig() {
  if (config) return config;
  try {
    config = await api("/app/config.json");
  } catch {
    config = null; // the model falls back to the default deadlines
  }
  return config;
}

function runCleanups() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (error) {
      console.warn("cleanup failed", error);
    }
  }
}

/** Keep what the page's open form holds as the tab's draft (saveDraft), for the page to restore when drawn again. */
function keepOpenForm() {
  for (const drafter of drafters) {
    const draft = drafter();
    if (draft) {
      saveDraft({ route: window.location.hash, ...draft });
      return;
    }
  }
}

// Whether a failed load may succeed by itself in a while: no answer (no signal, server down or restarting), the
// server's own trouble (5xx), or being told to wait. A refusal (403, 404…) is retried only when the user asks.
const passing = (error) => error.status === 0 || error.status >= 500 || [408, 429].includes(error.status);

async function route() {
  runCleanups();
  drafters = [];
  clearToast();
  const mine = ++generation;
  const main = document.getElementById("main");
  const session = currentSession();
  const { path, query } = parseHash();
  watchStatus(session); // the indicator's reading: refreshed on navigation when stale, stopped for other roles
  renderTopbar(session);
  if (!session) {
    loginPage(main);
    return;
  }
  if (session.role === "device") {
    // Cameras and drones only post observations; the API would refuse every page.
    replace(main, h("div", { class: "page" }, h("p", { class: "error", role: "alert" }, t("error.device"))));
    return;
  }
  const match = ROUTES.map(([re, ...rest]) => [path.match(re), ...rest]).find(([m]) => m);
  if (!match) {
    navigate(homeFor(session), true);
    return;
  }
  const [params, page, section, roles, flag] = match;
  // Before the bar is drawn: which entries it offers depends on the server's configuration (the DEMO inbox).
  const loaded = await loadConfig();
  if (mine !== generation) return;
  if (!offered(session, roles, flag)) {
    navigate(homeFor(session), true);
    return;
  }
  renderTopbar(session, section);
  replace(main, h("p", { class: "loading" }, t("common.loading")));
  const ctx = {
    params: params.slice(1),
    query,
    session,
    config: loaded,
    alive: () => mine === generation,
    // A page that registers after the user already left is cleaned up at once.
    onCleanup: (fn) => (mine === generation ? cleanups.push(fn) : fn()),
    /** `fn()` gives the draft of the page's open form (null when none is open): kept across a redraw, a reload. */
    onDraft: (fn) => mine === generation && drafters.push(fn),
    navigate,
    /** Run fn every `seconds` while the page is shown and the tab visible. */
    every: (seconds, fn) => {
      const timer = setInterval(() => {
        if (!document.hidden && mine === generation) fn();
      }, seconds * 1000);
      ctx.onCleanup(() => clearInterval(timer));
    },
  };
  if (!ctx.alive()) return;
  try {
    await page(main, ctx);
  } catch (error) {
    if (!ctx.alive()) return;
    if (error instanceof ApiError && error.status === 401) return; // the session listener shows the login
    console.error(error);
    // A page that could not load comes back by itself once the server answers again (tried on the page's poll
    // interval, as its data would have been refreshed), or at once with the button.
    const retry = () => ctx.alive() && route();
    replace(
      main,
      h(
        "div",
        { class: "page", id: "load-failed" },
        errorBox(error),
        h(
          "p",
          {},
          h("button", { type: "button", class: "primary big", id: "retry", onclick: retry }, t("common.retry")),
        ),
        passing(error) ? h("p", { class: "muted small" }, t("common.retrying")) : null,
      ),
    );
    if (passing(error)) ctx.every(ctx.config?.poll_interval_s || 15, retry);
  }
  if (!ctx.alive()) return;
  document.title = `${t("app.title")} · ${document.querySelector("#main h1")?.textContent || ""}`;
  // The link or tab pressed is gone (the bar and the page were redrawn): the focus goes to the new page, unless the
  // page put it somewhere itself (a form it reopened).
  if (!main.contains(document.activeElement) && !document.querySelector("dialog[open]")) focusPage(main);
}

function renderTopbar(session, section = "") {
  const nav = document.getElementById("nav");
  const box = document.getElementById("session");
  document.getElementById("brand-name").textContent = t("app.title");
  const languageSelect = h(
    "select",
    { id: "lang", class: "lang", "aria-label": t("nav.language"), onchange: (e) => setLang(e.target.value) },
    Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, selected: code === lang() }, name)),
  );
  if (!session) {
    replace(nav);
    replace(box, languageSelect);
    document.body.classList.remove("signed-in");
    return;
  }
  document.body.classList.add("signed-in");
  replace(
    nav,
    NAV.filter(([, , , roles, flag]) => offered(session, roles, flag)).map(([key, href, label]) =>
      h(
        "a",
        {
          href,
          class: ["nav-link", key === section && "active"],
          dataset: { nav: key },
          "aria-current": key === section ? "page" : null,
        },
        t(label),
      ),
    ),
  );
  const who = [session.username, t(`role.${session.role}`), session.unit_code].filter(Boolean).join(" · ");
  replace(
    box,
    statusIndicator(session, section),
    languageSelect,
    h("span", { class: "who", title: who, id: "who" }, who),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "logout",
        onclick: () => {
          logout();
          toast(t("login.signed_out"));
        },
      },
      t("nav.logout"),
    ),
  );
}

function loginPage(main) {
  const error = h("p", { class: "error", role: "alert", hidden: !expired, id: "login-error" });
  if (expired) error.textContent = peekDraft() ? t("login.expired_draft") : t("login.expired");
  const username = h("input", {
    id: "username",
    name: "username",
    autocomplete: "username",
    required: true,
    autocapitalize: "none",
    spellcheck: "false",
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", class: "primary big", id: "login-submit" }, t("login.submit"));
  const form = h(
    "form",
    {
      class: "login card",
      id: "login-form",
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        error.hidden = true;
        try {
          const session = await login(username.value.trim(), password.value);
          config = null;
          expired = false;
          // Back to a form the expired session interrupted (the same user only), else the role's first page.
          const draft = peekDraft();
          const back = draft && draft.username === session.username ? draft.route : null;
          // Someone else's draft (a shared township PC): not theirs to see, and not to be handed back later.
          if (draft && !back) clearDraft();
          navigate(back || homeFor(session), true); // replace: "back" should not return to the login form
        } catch (e) {
          const refused = e instanceof ApiError && e.status === 401;
          // Too many failed sign-ins for this account or address: the service refuses for a while (429).
          const throttled = e instanceof ApiError && e.status === 429;
          const text = refused ? t("login.failed") : e.status === 0 ? t("error.network") : e.message;
          error.textContent = throttled ? t("login.throttled") : refused ? text : `${t("error.load")} ${text}`;
          error.hidden = false;
          password.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", {}, t("login.title")),
    h("p", { class: "muted" }, t("login.hint")),
    h("label", { for: "username" }, t("login.username")),
    username,
    h("label", { for: "password" }, t("login.password")),
    password,
    error,
    submit,
  );
  replace(main, form);
  document.title = t("app.title");
  username.focus();
}

onSessionChange((session, reason) => {
  if (!session) {
    config = null;
    expired = reason === "expired";
    route(); // back to the login form, wherever we were
  }
});
// A page drawn again in the other language keeps the form being filled in (a draft the page restores).
onLanguageChange(() => {
  keepOpenForm();
  route();
});
// A reload (pull-to-refresh on a phone) brings the open form back too; a closed tab takes its sessionStorage along.
window.addEventListener("pagehide", keepOpenForm);
window.addEventListener("hashchange", route);
route();
