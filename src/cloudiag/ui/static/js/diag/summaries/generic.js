// The summary of a type without a module of its own: the parsed summary's fields, plainly.

import { h } from "../../dom.js";
import { verdict as judge } from "../figures.js";

const MAX_VALUE_CHARS = 2000;

function plain(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") {
    const text = JSON.stringify(value);
    return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text;
  }
  return String(value);
}

/** Reached and loss when the summary has those fields; null when it says neither. */
export function verdict(parsed) {
  const loss = typeof parsed.loss === "number" ? parsed.loss : null;
  if (typeof parsed.reached === "boolean") return judge(parsed.reached, loss);
  return loss === null ? null : judge(loss < 100, loss);
}

/** The nodes of the summary: one row per field (the type is in the heading already). */
export function view(parsed) {
  const fields = Object.entries(parsed).filter(([key]) => key !== "type");
  return h(
    "dl",
    { class: "details", "data-testid": "generic-summary" },
    fields.map(([key, value]) => [h("dt", {}, key), h("dd", { class: typeof value === "object" && value !== null ? "mono" : null }, plain(value))]),
  );
}
