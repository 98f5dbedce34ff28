// A map of administrative units and fire markers drawn as SVG (see geo.js for the projection).
//
// Interaction is kept to what works with a thumb and without tiles: drag to pan, the +/− buttons (or the mouse
// wheel) to zoom, tap a township to zoom to it, "whole area" to go back, tap a marker to open its incident.
// The map is redrawn in screen pixels after every pan or zoom, so markers stay 16 px wide touch targets at any
// zoom; while a drag is in progress the drawing is only translated, which stays smooth with large boundaries.

import { api, onSessionChange } from "./api.js";
import { h, svg } from "./dom.js";
import { boundsOf, fitProjection, labelPoint, padBounds, pathData } from "./geo.js";
import { t } from "./i18n.js";

let regionsPromise = null;
onSessionChange(() => {
  regionsPromise = null; // another user may see other boundaries; never reuse them across sessions
});

/** County and township boundaries ({county, township} FeatureCollections), fetched once per session. */
export function loadRegions() {
  if (!regionsPromise) {
    const get = (level) => api("/api/v1/regions/geojson", { params: { level } });
    regionsPromise = Promise.all([get("county"), get("township")]).then(([county, township]) => ({ county, township }));
    regionsPromise.catch(() => {
      regionsPromise = null; // retry on the next page instead of caching a failure
    });
  }
  return regionsPromise;
}

const DRAG_THRESHOLD = 6; // pixels a pointer must move before a press counts as a drag, not a tap

/**
 * Build a map. options:
 *   layers:   [{features, className, labels, zoomable}]  GeoJSON features, drawn in order
 *   overlays: [{geometry, className, title}]             extra shapes (observation footprints)
 *   markers:  [{id, lon, lat, state, late, label}]
 *   onSelect: fn(markerId)
 *   focus:    a geometry to start zoomed to (the user's own unit); "whole area" still shows everything
 *   maxHeight: pixels (default: most of a phone screen)
 * Returns {element, setMarkers(markers), destroy()}.
 */
export function mapView(options) {
  const svgRoot = svg("svg", { class: "map", role: "application", "aria-label": options.label || t("map.title") });
  const button = (label, text, onclick) =>
    h("button", { type: "button", class: "map-button", title: label, "aria-label": label, onclick }, text);
  const reset = button(t("map.reset"), t("map.reset"), () => setView(null));
  const zoomIn = button(t("map.zoom_in"), "+", () => zoom(0.5));
  const zoomOut = button(t("map.zoom_out"), "−", () => zoom(2));
  const element = h("div", { class: "mapbox" }, svgRoot, h("div", { class: "map-controls" }, zoomIn, zoomOut, reset));
  let markers = options.markers || [];
  let view = options.focus ? padBounds(boundsOf([options.focus]), 0.08) : null; // current bounds; null = everything
  let proj = null;

  const allGeometries = () => [
    ...options.layers.flatMap((layer) => layer.features.map((f) => f.geometry)),
    ...(options.overlays || []).map((o) => o.geometry),
  ];
  const fullBounds = () => {
    const b = boundsOf(allGeometries(), markers.map((m) => [m.lon, m.lat]));
    return b ? padBounds(b) : [73, 18, 135, 54]; // nothing loaded: all of China
  };

  function setView(bounds) {
    view = bounds;
    draw();
  }

  function zoom(factor, centre) {
    const b = view || fullBounds();
    const [cx, cy] = centre || [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
    const next = [
      cx - (cx - b[0]) * factor,
      cy - (cy - b[1]) * factor,
      cx + (b[2] - cx) * factor,
      cy + (b[3] - cy) * factor,
    ];
    const full = fullBounds();
    // Zooming out past everything just shows everything.
    setView(next[2] - next[0] >= full[2] - full[0] && next[3] - next[1] >= full[3] - full[1] ? null : next);
  }

  function draw() {
    const width = Math.floor(element.clientWidth);
    if (width <= 0) return;
    // Leave a strip of page above and below on phones: a swipe on the map pans it, not the page.
    const share = width < 600 ? 0.55 : 0.62;
    const maxHeight = options.maxHeight || Math.max(260, Math.min(window.innerHeight * share, 760));
    // The box keeps the height of the whole-area view at every zoom, so the page does not jump.
    const full = fitProjection(fullBounds(), width, maxHeight);
    const height = full.height;
    proj = view ? fitProjection(view, width, height, true) : full;
    svgRoot.setAttribute("width", width);
    svgRoot.setAttribute("height", height);
    svgRoot.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const content = svg("g", { class: "map-content" });
    for (const layer of options.layers) {
      const group = svg("g", { class: layer.className });
      for (const feature of layer.features) {
        const name = feature.properties?.name || feature.properties?.code || "";
        const path = svg(
          "path",
          { d: pathData(feature.geometry, proj), class: "unit", dataset: { code: feature.properties?.code || "" } },
          svg("title", {}, name),
        );
        if (layer.zoomable) {
          path.addEventListener("click", () => {
            if (!dragged) setView(padBounds(boundsOf([feature.geometry]), 0.08));
          });
        }
        group.append(path);
      }
      content.append(group);
    }
    for (const overlay of options.overlays || []) {
      const d = pathData(overlay.geometry, proj);
      content.append(svg("path", { d, class: overlay.className }, svg("title", {}, overlay.title || "")));
    }
    // Labels after all shapes so no boundary crosses them.
    for (const layer of options.layers) {
      if (!layer.labels) continue;
      for (const feature of layer.features) {
        const at = labelPoint(feature.geometry);
        const b = boundsOf([feature.geometry]);
        if (!at || !b || proj.x(b[2]) - proj.x(b[0]) < 48) continue; // too small to label at this zoom
        const attrs = { class: "unit-label", x: proj.x(at[0]), y: proj.y(at[1]), "text-anchor": "middle" };
        content.append(svg("text", attrs, feature.properties?.name || ""));
      }
    }
    const markerGroup = svg("g", { class: "markers" });
    for (const m of markers) markerGroup.append(markerNode(m));
    content.append(markerGroup);
    // A marker with the keyboard focus keeps it through the redraw (every poll, every zoom).
    const focused = svgRoot.contains(document.activeElement) ? document.activeElement.closest(".marker") : null;
    const focusedId = focused ? focused.dataset.incidentId : null;
    svgRoot.replaceChildren(content);
    if (focusedId !== null) {
      const again = [...markerGroup.children].find((node) => node.dataset.incidentId === focusedId);
      if (again) again.focus();
    }
    reset.disabled = view === null;
  }

  function markerNode(m) {
    const node = svg(
      "g",
      {
        class: ["marker", m.late && "late"],
        transform: `translate(${proj.x(m.lon).toFixed(1)} ${proj.y(m.lat).toFixed(1)})`,
        tabindex: options.onSelect ? 0 : null,
        role: options.onSelect ? "link" : null,
        "aria-label": m.label,
        dataset: { incidentId: m.id, state: m.state },
      },
      svg("title", {}, m.label),
      svg("circle", { class: "hit", r: 16 }),
      m.late ? svg("circle", { class: "ring", r: 13 }) : null,
      svg("circle", { class: ["dot", `state-${m.state}`], r: 8 }),
    );
    if (options.onSelect) {
      node.addEventListener("click", () => {
        if (!dragged) options.onSelect(m.id);
      });
      node.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") options.onSelect(m.id);
      });
    }
    return node;
  }

  // Panning: translate while dragging, re-project once at the end.
  let start = null;
  let dragged = false;
  svgRoot.addEventListener("pointerdown", (e) => {
    start = { x: e.clientX, y: e.clientY, id: e.pointerId };
    dragged = false;
  });
  svgRoot.addEventListener("pointermove", (e) => {
    if (!start || e.pointerId !== start.id) return;
    const dx = e.clientX - start.x;
    const dy = e.clientY - start.y;
    if (!dragged && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
    if (!dragged) svgRoot.setPointerCapture(e.pointerId);
    dragged = true;
    svgRoot.firstChild?.setAttribute("transform", `translate(${dx} ${dy})`);
  });
  const endDrag = (e) => {
    if (!start || e.pointerId !== start.id) return;
    if (dragged && proj) {
      const [lon0, lat0] = proj.unproject(0, 0);
      const [lon1, lat1] = proj.unproject(e.clientX - start.x, e.clientY - start.y);
      const b = view || fullBounds();
      setView([b[0] - (lon1 - lon0), b[1] - (lat1 - lat0), b[2] - (lon1 - lon0), b[3] - (lat1 - lat0)]);
      // The click that follows a drag must not open a marker or zoom into a township.
      setTimeout(() => {
        dragged = false;
      }, 0);
    }
    start = null;
  };
  svgRoot.addEventListener("pointerup", endDrag);
  svgRoot.addEventListener("pointercancel", endDrag);
  svgRoot.addEventListener(
    "wheel",
    (e) => {
      if (!proj) return;
      e.preventDefault();
      const rect = svgRoot.getBoundingClientRect();
      zoom(e.deltaY < 0 ? 0.8 : 1.25, proj.unproject(e.clientX - rect.left, e.clientY - rect.top));
    },
    { passive: false },
  );

  let lastWidth = -1;
  const observer = new ResizeObserver(() => {
    const width = Math.floor(element.clientWidth);
    if (width !== lastWidth) {
      lastWidth = width;
      draw();
    }
  });
  observer.observe(element);

  return {
    element,
    setMarkers(next) {
      markers = next;
      draw();
    },
    destroy() {
      observer.disconnect();
    },
  };
}
