// Drawing GeoJSON (WGS-84 longitude/latitude) as SVG without a map library or tiles.
//
// Projection: equirectangular with longitudes scaled by cos(latitude) at the middle of the view. Over a county
// (tens of kilometres) the shape error is a fraction of a percent, which is all a dispatch map needs, and it
// keeps townships their true shape (an unscaled lon/lat plot at 44° N would stretch them 40 % east-west).
// Coordinates are projected straight into screen pixels for the container's current size, so markers and
// strokes keep a fixed, touch-friendly size; the map is re-projected on resize or zoom rather than scaled.

/** Call fn(lon, lat) for every position of a GeoJSON geometry. */
export function eachPosition(geometry, fn) {
  if (!geometry) return;
  const walk = (coords, depth) => {
    if (depth === 0) fn(coords[0], coords[1]);
    else for (const c of coords) walk(c, depth - 1);
  };
  const depths = { Point: 0, MultiPoint: 1, LineString: 1, MultiLineString: 2, Polygon: 2, MultiPolygon: 3 };
  if (geometry.type === "GeometryCollection") geometry.geometries.forEach((g) => eachPosition(g, fn));
  else if (geometry.type in depths) walk(geometry.coordinates, depths[geometry.type]);
}

/** Bounds [west, south, east, north] of geometries and [lon, lat] points; null when there is nothing. */
export function boundsOf(geometries, points = []) {
  let b = null;
  const add = (lon, lat) => {
    if (!Number.isFinite(lon) || !Number.isFinite(lat)) return;
    if (!b) b = [lon, lat, lon, lat];
    else b = [Math.min(b[0], lon), Math.min(b[1], lat), Math.max(b[2], lon), Math.max(b[3], lat)];
  };
  for (const g of geometries) eachPosition(g, add);
  for (const [lon, lat] of points) add(lon, lat);
  return b;
}

/** Grow bounds by a fraction of their size (at least `minDeg`) so nothing sits on the edge. */
export function padBounds(b, fraction = 0.04, minDeg = 0.005) {
  const dx = Math.max((b[2] - b[0]) * fraction, minDeg);
  const dy = Math.max((b[3] - b[1]) * fraction, minDeg);
  return [b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy];
}

/**
 * A projection fitting `bounds` into `width` pixels and at most `maxHeight` (exactly `maxHeight` with `fill`),
 * centred. Returns {x(lon), y(lat), width, height, unproject(px, py)}.
 */
export function fitProjection(bounds, width, maxHeight, fill = false) {
  const [west, south, east, north] = bounds;
  const k = Math.cos((((south + north) / 2) * Math.PI) / 180);
  const spanX = Math.max((east - west) * k, 1e-9);
  const spanY = Math.max(north - south, 1e-9);
  const scale = Math.min(width / spanX, maxHeight / spanY);
  const height = fill ? maxHeight : Math.min(maxHeight, Math.ceil(spanY * scale));
  const offsetX = (width - spanX * scale) / 2;
  const offsetY = (height - spanY * scale) / 2;
  return {
    width,
    height,
    x: (lon) => offsetX + (lon - west) * k * scale,
    y: (lat) => offsetY + (north - lat) * scale,
    unproject: (px, py) => [west + (px - offsetX) / (k * scale), north - (py - offsetY) / scale],
  };
}

/** SVG path data for a (Multi)Polygon or (Multi)LineString; rings are closed. */
export function pathData(geometry, proj) {
  const ring = (coords, close) =>
    coords.map(([lon, lat], i) => `${i ? "L" : "M"}${proj.x(lon).toFixed(1)} ${proj.y(lat).toFixed(1)}`).join("") +
    (close ? "Z" : "");
  switch (geometry && geometry.type) {
    case "Polygon":
      return geometry.coordinates.map((r) => ring(r, true)).join("");
    case "MultiPolygon":
      return geometry.coordinates.map((p) => p.map((r) => ring(r, true)).join("")).join("");
    case "LineString":
      return ring(geometry.coordinates, false);
    case "MultiLineString":
      return geometry.coordinates.map((r) => ring(r, false)).join("");
    default:
      return "";
  }
}

function ringCentroid(ring) {
  // The shoelace centroid; falls back to the vertex mean for degenerate rings.
  let area = 0;
  let cx = 0;
  let cy = 0;
  for (let i = 0; i < ring.length - 1; i++) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[i + 1];
    const cross = x0 * y1 - x1 * y0;
    area += cross;
    cx += (x0 + x1) * cross;
    cy += (y0 + y1) * cross;
  }
  if (Math.abs(area) < 1e-12) {
    const n = ring.length || 1;
    return { area: 0, point: [ring.reduce((s, p) => s + p[0], 0) / n, ring.reduce((s, p) => s + p[1], 0) / n] };
  }
  return { area: Math.abs(area / 2), point: [cx / (3 * area), cy / (3 * area)] };
}

/** Where to put a label: the centroid of the largest outer ring (good enough for township-shaped polygons). */
export function labelPoint(geometry) {
  const polygons = { Polygon: [geometry.coordinates], MultiPolygon: geometry.coordinates }[geometry.type] || [];
  let best = null;
  for (const polygon of polygons) {
    const c = ringCentroid(polygon[0]);
    if (!best || c.area > best.area) best = c;
  }
  return best ? best.point : null;
}
