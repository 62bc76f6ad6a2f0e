// The summary of a dns check: the status (rcode), the server, the time, and the answers.

import { h } from "../../dom.js";
import { ms, tile } from "../figures.js";

/** NOERROR with answers is good, NOERROR without any a warning, the rest bad. */
export function verdict(d) {
  if (!d.result) return { text: d.error ? "no answer" : "not reached", tone: "bad" };
  const count = d.answers?.length ?? 0;
  if (d.rcode !== "NOERROR") return { text: d.rcode ?? "error", tone: "bad" };
  return { text: `${count} answer${count === 1 ? "" : "s"}`, tone: count > 0 ? "ok" : "warn" };
}

function records(title, list, testid) {
  return h(
    "table",
    { class: "table", "data-testid": testid, "aria-label": title },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "TTL"), h("th", {}, "Type"), h("th", {}, "Data"))),
    h("tbody", {}, list.slice(0, 200).map((r) => h("tr", {}, h("td", { class: "mono" }, r.NAME), h("td", { class: "num" }, r.TTL), h("td", {}, r.TYPE), h("td", { class: "mono" }, r.RDATA)))),
  );
}

/** The nodes of the summary. */
export function view(d) {
  const r = d.result;
  const parts = [
    h(
      "div",
      { class: "tiles", "data-testid": "dns-summary" },
      tile("Status", d.rcode ?? "no answer", d.rcode === "NOERROR" ? "ok" : "bad"),
      tile("Question", `${d.qname ?? "—"} ${d.qtype ?? ""}`),
      tile("Server", d.dst_addr ? `${d.dst_addr} (${d.proto ?? "UDP"})` : "—"),
      tile("Time", ms(r?.rt)),
    ),
  ];
  if (d.truncated_udp) parts.push(h("p", { class: "muted" }, "The UDP answer was truncated; it was asked again over TCP."));
  if (d.error) parts.push(h("p", { class: "warning", role: "alert", "data-testid": "dns-error" }, d.error));
  if (r?.answers?.length) parts.push(records("Answers", r.answers, "dns-answers"));
  if (r?.authority?.length) parts.push(h("h4", {}, "Authority"), records("Authority", r.authority, "dns-authority"));
  return parts;
}
