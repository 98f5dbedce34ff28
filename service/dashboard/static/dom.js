// Building the page without HTML strings.
//
// Everything the API returns (unit names, notes, camera names, reasons) is text typed by someone else; it only
// ever becomes text nodes or attribute values through these helpers, never markup, so it cannot inject script
// even where the CSP would not catch it. There is deliberately no innerHTML anywhere in the app.

import { lang, t } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** An HTML element: h("button", {class: "primary", onclick: fn}, "text", childNode, [more]). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention. */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) {
      // Only real functions become listeners: an "onclick" string would be inline script.
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (key === "dataset") {
      for (const [name, v] of Object.entries(value)) el.dataset[name] = String(v);
    } else if (key === "href") {
      el.setAttribute("href", safeHref(value));
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child)); // append(string) makes a text node
  }
}

/** Only in-app routes and https links pass; anything else (javascript:, data:) becomes inert. */
function safeHref(value) {
  const text = String(value);
  return text.startsWith("#") || text.startsWith("/") || text.startsWith("https://") ? text : "#";
}

/**
 * Put the keyboard and screen-reader focus on a page just drawn: its heading (read out, and the next Tab starts
 * there), else the container. Scrolls it into view, which also starts a new page at its top.
 */
export function focusPage(container) {
  const heading = container.querySelector("h1");
  const target = heading || container;
  if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
  target.focus();
}

/**
 * Replace a polled list's rows (each with a data-incident-id) without disturbing its reader: nothing is touched
 * when the new rows are the same as those shown (a screen reader does not hear the list again every poll), and a
 * row that had the keyboard focus has it again in its new version (else the focus fell to the page every poll).
 */
export function replaceRows(list, rows) {
  const same = list.children.length === rows.length && rows.every((row, i) => row.isEqualNode(list.children[i]));
  if (same) return;
  const focused = list.contains(document.activeElement) ? document.activeElement.closest("[data-incident-id]") : null;
  const id = focused ? focused.dataset.incidentId : null;
  replace(list, rows);
  if (id === null) return;
  const again = rows.find((row) => row.dataset && row.dataset.incidentId === id);
  if (again) again.focus();
  else if (list.closest("main")) focusPage(list.closest("main"));
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Times are shown in Beijing time whatever the device's zone: counties file fires by the local day (UTC+8).
const TIME_ZONE = "Asia/Shanghai";

function locale() {
  return lang() === "en" ? "en-GB" : "zh-CN";
}

/** "2025-11-03 14:05" in Beijing time; "—" for null. */
export function fmtTime(iso, withSeconds = false) {
  if (!iso) return "—";
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: TIME_ZONE,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: withSeconds ? "2-digit" : undefined,
    hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const get = (type) => (parts.find((p) => p.type === type) || {}).value || "";
  const clock = `${get("hour")}:${get("minute")}` + (withSeconds ? `:${get("second")}` : "");
  return `${get("year")}-${get("month")}-${get("day")} ${clock}`;
}

/** Today in Beijing time as YYYY-MM-DD, `offsetDays` away. */
export function localDay(offsetDays = 0) {
  const when = new Date(Date.now() + offsetDays * 86400000);
  const format = new Intl.DateTimeFormat("en-CA", {
    timeZone: TIME_ZONE,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  });
  return format.format(when); // en-CA writes YYYY-MM-DD
}

/** "更新于 20:15:07（北京时间）" for a status line: when the data on screen was read (`at`, ms; now by default). */
export function updatedNow(at = Date.now()) {
  return t("common.updated", { time: fmtTime(new Date(at).toISOString(), true) });
}

/** "5 分钟前" / "5 min ago". */
export function fmtAgo(iso) {
  if (!iso) return "";
  const minutes = Math.round((Date.now() - new Date(iso).getTime()) / 60000);
  if (minutes < 1) return t("time.just_now");
  if (minutes < 120) return t("time.minutes_ago", { n: minutes });
  const hours = Math.round(minutes / 60);
  if (hours < 48) return t("time.hours_ago", { n: hours });
  return t("time.days_ago", { n: Math.round(hours / 24) });
}

export function fmtNumber(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(value);
}

export function fmtPercent(value) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 0 }).format(value);
}

export function fmtCoord(value) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(6);
}

let toastTimer = 0;

/** Hide the message now (a new page starts without the last page's news). */
export function clearToast() {
  clearTimeout(toastTimer);
  document.getElementById("toast").hidden = true;
}

/** A short message at the bottom of the screen (also read out by screen readers). */
export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 5000);
}

/** A section with a heading, the building block of every page. */
export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}

/** A table from header texts and rows of cells (text or nodes); columns not in `textColumns` align as numbers. */
export function table(headers, rows, id, textColumns = [0]) {
  const cls = (i) => (textColumns.includes(i) ? null : "num");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id },
      h("thead", {}, h("tr", {}, headers.map((x, i) => h("th", { scope: "col", class: cls(i) }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: cls(i) }, c))))),
    ),
  );
}

/** A key/value list (dl) from [[label, value], …]; values may be nodes. */
export function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.filter(Boolean).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value ?? "—")]),
  );
}

/**
 * Why something the user sent did not go through, in their language: it always starts with "not sent", and a
 * lost connection or an oversized body is named rather than shown as the browser's "Failed to fetch".
 */
export function notSent(error) {
  const status = error && error.status;
  if (status === 0) return t("error.not_sent_network");
  if (status === 413) return `${t("error.not_sent")} ${t("error.too_large")}`;
  return `${t("error.not_sent")} ${error && error.message}`;
}

/**
 * An error box for a failed load. `messages` maps an HTTP status to the page's own words for it: the default 404
 * text is about an incident ("no such fire, or not yours"), which is wrong for an area or a period.
 */
export function errorBox(error, messages = {}) {
  const status = error && error.status;
  const text = messages[status]
    ? t(messages[status])
    : status === 404
      ? t("error.not_found")
      : status === 403
        ? t("error.forbidden")
        : status === 0
          ? `${t("error.load")} ${t("error.network")}`
          : t("error.load");
  return h(
    "div",
    { class: "error", role: "alert", dataset: { status: status || 0 } },
    text,
    // No answer came: the words above say so; the browser's own "Failed to fetch" (English) adds nothing.
    status === 0 ? null : [h("br"), h("small", {}, String(error && error.message))],
  );
}
