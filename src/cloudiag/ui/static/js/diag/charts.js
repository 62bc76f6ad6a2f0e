// Small SVG charts, drawn here so that no third-party code ships with the UI.

import { s } from "../dom.js";

const W = 640;
const H = 220;
const PAD = { left: 52, right: 16, top: 16, bottom: 40 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 5, 8, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function frame(title, yMax, yLabel, xLabel) {
  const plotH = H - PAD.top - PAD.bottom;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    svg.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, formatNumber((yMax * i) / 4)));
  }
  svg.append(s("text", { x: 14, y: PAD.top + plotH / 2, class: "axis-label", transform: `rotate(-90 14 ${PAD.top + plotH / 2})`, "text-anchor": "middle" }, yLabel));
  svg.append(s("text", { x: PAD.left + (W - PAD.left - PAD.right) / 2, y: H - 6, class: "axis-label", "text-anchor": "middle" }, xLabel));
  return svg;
}

function formatNumber(value) {
  if (value === 0) return "0";
  if (value >= 10) return String(Math.round(value));
  return String(Number(value.toFixed(value < 1 ? 3 : 2)));
}

/**
 * A line chart of y over x: [{x, y, tip}], y null for a missing point (shown as a gap
 * marker on the axis).
 */
export function lineChart(points, { title, xLabel, yLabel }) {
  const values = points.map((p) => p.y).filter((y) => y !== null);
  const yMax = niceMax(Math.max(...values, 0));
  const svg = frame(title, yMax, yLabel, xLabel);
  if (!values.length) {
    svg.append(s("text", { x: W / 2, y: H / 2 - 10, class: "empty-chart", "text-anchor": "middle" }, "no reply"));
  }
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const xs = points.map((p) => p.x);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const xOf = (x) => PAD.left + (xMax === xMin ? plotW / 2 : ((x - xMin) / (xMax - xMin)) * plotW);
  const yOf = (y) => PAD.top + plotH - (y / yMax) * plotH;
  const every = Math.max(1, Math.ceil(points.length / 12));
  points.forEach((p, i) => {
    if (i % every === 0 || i === points.length - 1) {
      svg.append(s("text", { x: xOf(p.x), y: PAD.top + plotH + 16, class: "tick", "text-anchor": "middle" }, String(p.x)));
    }
  });
  let path = "";
  let pen = false;
  for (const p of points) {
    if (p.y === null) {
      pen = false;
      continue;
    }
    path += `${pen ? "L" : "M"}${xOf(p.x).toFixed(1)},${yOf(p.y).toFixed(1)}`;
    pen = true;
  }
  if (path) svg.append(s("path", { d: path, class: "series" }));
  for (const p of points) {
    if (p.y === null) {
      svg.append(s("text", { x: xOf(p.x), y: PAD.top + plotH - 4, class: "miss", "text-anchor": "middle" }, "×", s("title", {}, p.tip)));
    } else {
      svg.append(s("circle", { cx: xOf(p.x), cy: yOf(p.y), r: 3.5, class: "dot" }, s("title", {}, p.tip)));
    }
  }
  return svg;
}

/**
 * Bars per category with the individual samples as dots: [{label, values: [number|null], tip}].
 * A category without any value shows "*".
 */
export function barChart(groups, { title, xLabel, yLabel }) {
  const all = groups.flatMap((g) => g.values.filter((v) => v !== null));
  const yMax = niceMax(Math.max(...all, 0));
  const svg = frame(title, yMax, yLabel, xLabel);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(groups.length, 1);
  const barW = Math.min(36, slot * 0.6);
  const yOf = (y) => PAD.top + plotH - (y / yMax) * plotH;
  groups.forEach((group, i) => {
    const cx = PAD.left + slot * i + slot / 2;
    const values = group.values.filter((v) => v !== null);
    svg.append(s("text", { x: cx, y: PAD.top + plotH + 16, class: "tick", "text-anchor": "middle" }, group.label));
    if (!values.length) {
      svg.append(s("text", { x: cx, y: PAD.top + plotH - 4, class: "miss", "text-anchor": "middle" }, "*", s("title", {}, group.tip)));
      return;
    }
    const avg = values.reduce((a, b) => a + b, 0) / values.length;
    svg.append(s("rect", { x: cx - barW / 2, y: yOf(avg), width: barW, height: PAD.top + plotH - yOf(avg), class: "bar" }, s("title", {}, group.tip)));
    for (const value of values) {
      svg.append(s("circle", { cx, cy: yOf(value), r: 3, class: "dot" }, s("title", {}, `${value} ms`)));
    }
  });
  return svg;
}
