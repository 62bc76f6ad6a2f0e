// The summary of an arping: figures, a duplicate-address warning, and the replies with
// their MAC addresses.

import { h } from "../../dom.js";
import { ms, tile, verdict as judge } from "../figures.js";

/** Reached when a reply came back; a duplicate address is a problem even then. */
export function verdict(a) {
  const loss = a.sent > 0 ? (Math.max(a.sent - (a.received ?? 0), 0) * 100) / a.sent : null;
  const found = judge((a.received ?? 0) > 0, loss, a.duplicate ? "duplicate address" : null);
  return a.duplicate ? { ...found, tone: "bad" } : found;
}

/** The nodes of the summary. */
export function view(a) {
  const macs = a.macs || [];
  const parts = [
    h("div", { class: "tiles", "data-testid": "arping-summary" }, tile("Sent", a.sent ?? "—"), tile("Received", a.received ?? "—"), tile("Interface", a.interface || "—"), tile("MACs seen", macs.length)),
  ];
  if (a.duplicate) {
    parts.push(h("p", { class: "warning", role: "alert", "data-testid": "duplicate-warning" }, `Duplicate address: ${a.destination} answered from ${macs.length} different MAC addresses (${macs.join(", ")}).`));
  }
  if (a.replies?.length) {
    parts.push(
      h(
        "table",
        { class: "table", "data-testid": "arping-replies" },
        h("thead", {}, h("tr", {}, h("th", {}, "Address"), h("th", {}, "MAC"), h("th", {}, "Time"), h("th", {}, "Kind"))),
        h("tbody", {}, a.replies.slice(0, 200).map((r) => h("tr", {}, h("td", { class: "mono" }, r.address), h("td", { class: "mono mac" }, r.mac), h("td", { class: "num" }, ms(r.time)), h("td", {}, r.kind)))),
      ),
    );
  }
  return parts;
}
