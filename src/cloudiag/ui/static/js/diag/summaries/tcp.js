// The summary of a tcp check: open, refused or timed out, and the connect time.

import { h } from "../../dom.js";
import { ms, tile } from "../figures.js";

const TONES = { open: "ok", refused: "bad", timeout: "bad", unreachable: "bad", unresolved: "bad", error: "bad" };
const WORDS = { open: "open", refused: "refused", timeout: "timed out", unreachable: "unreachable", unresolved: "name not resolved", error: "error" };

/** Open is good; anything else is not. */
export function verdict(t) {
  if (!t.state) return null;
  return { text: `port ${t.dst_port ?? "?"} ${WORDS[t.state] ?? t.state}`, tone: TONES[t.state] ?? "bad" };
}

/** The nodes of the summary. */
export function view(t) {
  const parts = [
    h(
      "div",
      { class: "tiles", "data-testid": "tcp-summary" },
      tile("State", WORDS[t.state] ?? t.state ?? "—", TONES[t.state]),
      tile("Address", t.dst_addr ? `${t.dst_addr} port ${t.dst_port}` : "—"),
      tile("Connect time", ms(t.connect_time)),
      t.resolve_time !== null && t.resolve_time !== undefined ? tile("Name lookup", ms(t.resolve_time)) : null,
    ),
  ];
  if (t.error) parts.push(h("p", { class: "muted", "data-testid": "tcp-error" }, t.error));
  return parts;
}
