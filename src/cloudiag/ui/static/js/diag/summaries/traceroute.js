// The summary of a traceroute (or traceroute6), in RIPE Atlas's traceroute result format:
// the hop table and the latency of each hop.

import { h } from "../../dom.js";
import { barChart } from "../charts.js";
import { tile, verdict as judge } from "../figures.js";

/** A hop's answers, one per address that answered ({from, name}). */
function answered(replies) {
  const seen = [];
  for (const reply of replies) {
    if (reply.from && !seen.some((x) => x.from === reply.from)) seen.push(reply);
  }
  return seen;
}

/** One probe as traceroute prints it: "0.512 ms !H", or "*" for no answer. */
function probeText(reply) {
  if (reply.x || typeof reply.rtt !== "number") return "*";
  return `${reply.rtt} ms${reply.annotation ? ` ${reply.annotation}` : ""}`;
}

/** Reached when the destination answered; the loss is that of the last hop's probes. */
export function verdict(t) {
  const hops = t.result || [];
  const probes = hops.length ? hops[hops.length - 1].result || [] : [];
  const loss = t.reached && probes.length ? (probes.filter((p) => p.x).length * 100) / probes.length : null;
  return judge(Boolean(t.reached), loss, `${hops.length} hop${hops.length === 1 ? "" : "s"}`);
}

/** The nodes of the summary. */
export function view(t) {
  const hops = t.result || [];
  // With -n (or no reverse names) the Name column would be all dashes: leave it out.
  const named = hops.some((hop) => (hop.result || []).some((p) => p.name));
  const table = h(
    "table",
    { class: "table hops", "data-testid": "hop-table" },
    h("thead", {}, h("tr", {}, h("th", { class: "num" }, "TTL"), h("th", {}, "Address"), named ? h("th", {}, "Name") : null, h("th", {}, "RTTs"))),
    h(
      "tbody",
      {},
      hops.map((hop) => {
        const replies = hop.result || [];
        const who = answered(replies);
        return h(
          "tr",
          {},
          h("td", { class: "num" }, hop.hop),
          h("td", { class: "mono" }, who.length ? who.map((p) => p.from).join(", ") : "*"),
          named ? h("td", {}, who.map((p) => p.name).filter(Boolean).join(", ") || "—") : null,
          h("td", { class: "mono" }, replies.map(probeText).join("  ")),
        );
      }),
    ),
  );
  const groups = hops.map((hop) => {
    const replies = hop.result || [];
    const values = replies.map((p) => (typeof p.rtt === "number" ? p.rtt : null));
    const who = answered(replies).map((p) => p.from).join(", ") || "no answer";
    return { label: String(hop.hop), values, tip: `hop ${hop.hop}: ${who}` };
  });
  const destination = t.dst_name && t.dst_name !== t.dst_addr ? `${t.dst_name} (${t.dst_addr ?? "?"})` : t.dst_addr || t.dst_name || "—";
  return [
    h("div", { class: "tiles" }, tile("Hops", hops.length), tile("Destination", destination), tile("Reached", t.reached ? "yes" : "no", t.reached ? "ok" : "bad")),
    h("div", { class: "scroll" }, table),
    hops.length ? h("figure", { class: "figure", "data-testid": "hop-chart" }, barChart(groups, { title: "Latency per hop", xLabel: "hop (TTL)", yLabel: "RTT (ms)" }), h("figcaption", {}, "Latency per hop: bar = average, dots = each probe, * = no answer")) : null,
  ];
}
