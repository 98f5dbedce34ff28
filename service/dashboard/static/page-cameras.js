// Cameras (admins): the registered presets, and the places of a preset's frame that false alarms keep coming
// from (GET /api/v1/cameras/mask-suggestions: incidents found to be false alarms for a heat source or nothing on
// site). Nothing is masked until an admin presses "add to the mask" and confirms: the registry is read, the
// polygon appended to that preset's ignore_mask, and the registry written back (PUT /api/v1/cameras). A mask hides
// real fires too, so the incidents behind each suggestion are one click away.

import { api } from "./api.js";
import { card, errorBox, fmtPercent, fmtTime, h, replace, table, toast } from "./dom.js";
import { t } from "./i18n.js";

const DAYS = 90;

const size = (wh) => (Array.isArray(wh) ? wh.join("×") : "?");

/** The patrol's last word on a preset (GET /api/v1/cameras/health): ok, frozen, silent, lens mismatch or never
 * seen. A lens mismatch names the registered and received frame sizes beside the badge, and what it means in its
 * title: the preset's fires get no ground position until the stream fits its lens again. */
function healthBadge(health) {
  if (!health) return "—";
  const at = health.at ? t("cameras.health_at", { at: fmtTime(health.at) }) : "";
  const mismatch = health.state === "lens_mismatch" ? health.lens_mismatch : null;
  const title = mismatch ? `${t("cameras.lens_mismatch_hint")}\n${at}` : at;
  const badge = h("span", { class: "badge health", dataset: { state: health.state }, title }, t(`cameras.health.${health.state}`));
  if (!mismatch) return badge;
  const sizes = t("cameras.lens_sizes", { registered: size(mismatch.registered), received: size(mismatch.received) });
  return [badge, " ", h("small", { class: "muted lens-sizes" }, sizes)];
}

function presetRows(registry, health) {
  const byPreset = new Map(health.map((p) => [`${p.camera_id}/${p.preset}`, p]));
  return registry.cameras.flatMap((camera) =>
    (camera.presets || []).map((preset) => [
      camera.name ? `${camera.id} · ${camera.name}` : camera.id,
      preset.id,
      healthBadge(byPreset.get(`${camera.id}/${preset.id}`)),
      `${preset.pan_deg} / ${preset.tilt_deg} / ${preset.zoom ?? 1}`,
      String(preset.cadence_s ?? 60),
      String((preset.ignore_mask || []).length),
      preset.sun_glare_deg ? String(preset.sun_glare_deg) : "—",
    ]),
  );
}

async function addToMask(suggestion, ctx) {
  const where = `${suggestion.camera_id}/${suggestion.preset_id}`;
  if (!window.confirm(t("cameras.confirm", { where }))) return;
  try {
    const registry = await api("/api/v1/cameras"); // admins read the sources whole, so writing back loses nothing
    const camera = registry.cameras.find((c) => c.id === suggestion.camera_id);
    const preset = camera && (camera.presets || []).find((p) => p.id === suggestion.preset_id);
    if (!preset) {
      toast(t("cameras.gone"), "error");
      return;
    }
    preset.ignore_mask = [...(preset.ignore_mask || []), suggestion.polygon];
    await api("/api/v1/cameras", { method: "PUT", json: registry });
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  if (!ctx.alive()) return;
  toast(t("cameras.added", { where }));
  ctx.navigate("#/cameras");
}

function suggestionRows(suggestions, ctx) {
  return suggestions.map((s) => [
    `${s.camera_id}/${s.preset_id}` + (s.registered ? "" : ` ${t("cameras.unregistered")}`),
    h("span", { class: "badge", dataset: { status: s.status } }, t(`cameras.status.${s.status}`)),
    h(
      "span",
      { class: "incident-links" },
      s.incidents.map((id, i) => [i ? ", " : "", h("a", { href: `#/incident/${id}` }, `#${id}`)]),
    ),
    s.polygon.map(([x, y]) => `(${x}, ${y})`).join(" "),
    s.frame_size ? `${s.frame_size[0]}×${s.frame_size[1]}` : "—",
    s.frame_fraction == null ? "—" : fmtPercent(s.frame_fraction),
    s.status === "suggested" && s.registered
      ? h(
          "button",
          {
            type: "button",
            class: "secondary",
            dataset: { add: `${s.camera_id}/${s.preset_id}` },
            onclick: () => addToMask(s, ctx),
          },
          t("cameras.add"),
        )
      : "",
  ]);
}

export async function camerasPage(main, ctx) {
  const body = h("div", { id: "cameras-body" }, h("p", { class: "loading" }, t("common.loading")));
  replace(
    main,
    h("div", { class: "page cameras-page" }, h("div", { class: "page-head" }, h("h1", {}, t("cameras.title"))), body),
  );
  let registry, suggestions, health;
  try {
    [registry, suggestions, health] = await Promise.all([
      api("/api/v1/cameras"),
      api("/api/v1/cameras/mask-suggestions", { params: { days: DAYS } }),
      api("/api/v1/cameras/health"),
    ]);
  } catch (error) {
    if (ctx.alive()) replace(body, errorBox(error));
    return;
  }
  if (!ctx.alive()) return;
  const presets = presetRows(registry, health);
  replace(
    body,
    card(
      t("cameras.suggestions", { days: DAYS }),
      h("p", { class: "muted small" }, t("cameras.suggestions_hint")),
      suggestions.length
        ? table(
            [
              t("cameras.preset"),
              t("cameras.status"),
              t("cameras.incidents"),
              t("cameras.polygon"),
              t("cameras.frame"),
              t("cameras.share"),
              "",
            ],
            suggestionRows(suggestions, ctx),
            "mask-suggestions",
            [0, 1, 2, 3, 4, 6],
          )
        : h("p", { class: "muted", id: "no-suggestions" }, t("cameras.no_suggestions")),
    ),
    card(
      t("cameras.presets"),
      presets.length
        ? table(
            ["camera", "preset", "health_title", "pose", "cadence", "masks", "sun"].map((key) => t(`cameras.${key}`)),
            presets,
            "camera-presets",
            [0, 1, 2, 3],
          )
        : h("p", { class: "muted" }, t("cameras.none")),
    ),
  );
}
