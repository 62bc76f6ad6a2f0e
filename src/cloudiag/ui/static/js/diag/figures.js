// Small pieces every summary module builds from: figure tiles, times, loss, and the verdict
// (reached or not, loss) that the history's Result column and the result's badge show.

import { h } from "../dom.js";

/** A labelled figure; tone "ok"/"warn"/"bad" colours its value. */
export function tile(label, value, tone) {
  return h("div", { class: `tile${tone ? ` tile-${tone}` : ""}` }, h("span", { class: "tile-label" }, label), h("span", { class: "tile-value" }, value));
}

/** Milliseconds as "0.42 ms", or a dash when there is no value. */
export function ms(value) {
  return value === null || value === undefined ? "—" : `${value} ms`;
}

/** A loss percentage as "0 %" or "33.3 %", or null when it is unknown. */
export function percent(value) {
  return typeof value === "number" && Number.isFinite(value) ? `${Math.round(value * 10) / 10} %` : null;
}

/**
 * What a run found, for a badge: {text, tone}. reached: whether the destination answered;
 * loss: the percentage of probes without an answer (or null); extra: more words.
 */
export function verdict(reached, loss, extra) {
  const parts = [reached ? "reached" : "not reached"];
  if (percent(loss) !== null) parts.push(`${percent(loss)} loss`);
  if (extra) parts.push(extra);
  const tone = !reached || loss >= 100 ? "bad" : loss > 0 ? "warn" : "ok";
  return { text: parts.join(" · "), tone };
}
