// The summary of a traceroute (or traceroute6): the hop table and the latency of each hop.

import { h } from "../../dom.js";
import { barChart } from "../charts.js";
import { tile, verdict as judge } from "../figures.js";

function hopCell(probes) {
  const seen = [];
  for (const probe of probes) {
    if (probe.address && !seen.some((x) => x.address === probe.address)) seen.push(probe);
  }
  return seen;
}

/** Reached when the destination answered; the loss is that of the last hop's probes. */
export function verdict(t) {
  const hops = t.hops || [];
  const probes = hops.length ? hops[hops.length - 1].probes || [] : [];
  const loss = t.reached && probes.length ? (probes.filter((p) => p.timeout).length * 100) / probes.length : null;
  return judge(Boolean(t.reached), loss, `${hops.length} hop${hops.length === 1 ? "" : "s"}`);
}

/** The nodes of the summary. */
export function view(t) {
  const hops = t.hops || [];
  // With -n (or no reverse names) the Name column would be all dashes: leave it out.
  const named = hops.some((hop) => hop.probes.some((p) => p.name));
  const table = h(
    "table",
    { class: "table hops", "data-testid": "hop-table" },
    h("thead", {}, h("tr", {}, h("th", { class: "num" }, "TTL"), h("th", {}, "Address"), named ? h("th", {}, "Name") : null, h("th", {}, "RTTs"))),
    h(
      "tbody",
      {},
      hops.map((hop) => {
        const who = hopCell(hop.probes);
        return h(
          "tr",
          {},
          h("td", { class: "num" }, hop.ttl),
          h("td", { class: "mono" }, who.length ? who.map((p) => p.address).join(", ") : "*"),
          named ? h("td", {}, who.map((p) => p.name).filter(Boolean).join(", ") || "—") : null,
          h("td", { class: "mono" }, hop.probes.map((p) => (p.timeout ? "*" : `${p.rtt} ms${p.annotation ? ` ${p.annotation}` : ""}`)).join("  ")),
        );
      }),
    ),
  );
  const groups = hops.map((hop) => {
    const values = hop.probes.map((p) => (p.timeout ? null : p.rtt));
    const who = hopCell(hop.probes).map((p) => p.address).join(", ") || "no answer";
    return { label: String(hop.ttl), values, tip: `hop ${hop.ttl}: ${who}` };
  });
  return [
    h("div", { class: "tiles" }, tile("Hops", hops.length), tile("Destination", t.destination_name ? `${t.destination_name} (${t.destination})` : t.destination || "—"), tile("Reached", t.reached ? "yes" : "no", t.reached ? "ok" : "bad")),
    h("div", { class: "scroll" }, table),
    hops.length ? h("figure", { class: "figure", "data-testid": "hop-chart" }, barChart(groups, { title: "Latency per hop", xLabel: "hop (TTL)", yLabel: "RTT (ms)" }), h("figcaption", {}, "Latency per hop: bar = average, dots = each probe, * = no answer")) : null,
  ];
}
