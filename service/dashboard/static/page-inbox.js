// The DEMO inbox (演示收件箱): the alerts the demo's recipients received (service/demo_inbox.py). Only offered when
// the server runs with --demo (config.json says so); everyone who acts on fires may open it, and the server gives
// each only the messages of their own unit and the units under it (admins all).
//
// A message's title and place are the alert's own words, as a township's phone shows them (Chinese): they become
// text nodes only, like everything else the API returns.

import { api } from "./api.js";
import { card, errorBox, fmtAgo, fmtTime, h, replace, table, updatedNow } from "./dom.js";
import { t } from "./i18n.js";

// The alert worker passes every 5 s by default: the inbox is read as often, so a delivery shows up at once.
const POLL_S = 5;

function kindLabel(message) {
  return h(
    "span",
    { class: ["badge", "inbox-kind"], dataset: { kind: message.kind } },
    t(`event_text.alert_kind.${message.kind}`),
    message.digest ? ` · ${t("inbox.digest")}` : "",
  );
}

function row(message) {
  const place = [message.county_name, message.unit_name].filter(Boolean);
  return [
    [fmtTime(message.received_at, true), " ", h("small", { class: "muted" }, fmtAgo(message.received_at))],
    h("span", { class: "mono inbox-unit" }, message.unit_code),
    kindLabel(message),
    h("span", { class: "inbox-title", lang: "zh-CN" }, message.title),
    h(
      "a",
      { href: `#/incident/${message.incident_id}`, class: "inbox-incident" },
      `#${message.incident_id}`,
      " ",
      h("span", { lang: "zh-CN" }, [...new Set(place)].join(" ")),
    ),
  ];
}

export async function inboxPage(main, ctx) {
  const status = h("p", { class: "muted small", id: "inbox-status" });
  const body = h("div", { id: "inbox-body" });
  replace(
    main,
    h(
      "div",
      { class: "page inbox-page" },
      h("div", { class: "page-head" }, h("h1", {}, t("inbox.title"))),
      h("p", { class: "muted", id: "inbox-hint" }, t("inbox.hint")),
      status,
      card(null, body),
      h("p", { class: "muted small tz-note" }, t("common.tz_note")),
    ),
  );

  async function load() {
    let messages;
    try {
      messages = await api("/api/v1/demo/inbox");
    } catch (error) {
      if (!ctx.alive()) return;
      replace(body, errorBox(error));
      return;
    }
    if (!ctx.alive()) return;
    status.textContent = `${t("inbox.count", { n: messages.length })} · ${updatedNow()}`;
    status.dataset.count = messages.length;
    replace(
      body,
      messages.length
        ? table(
            ["received", "unit", "kind", "title", "incident"].map((k) => t(`inbox.col.${k}`)),
            messages.map(row),
            "inbox-messages",
            [0, 1, 2, 3, 4],
          )
        : h("p", { class: "muted", id: "inbox-empty" }, t("inbox.empty")),
    );
  }

  await load();
  ctx.every(POLL_S, load);
}
