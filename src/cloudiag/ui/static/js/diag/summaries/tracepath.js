// The summary of a tracepath: each hop's replies, and the path MTU after it.

import { h } from "../../dom.js";
import { barChart } from "../charts.js";
import { tile, verdict as judge } from "../figures.js";

function answers(hop) {
  return (hop.result || []).filter((r) => r.from);
}

function who(hop) {
  const seen = [];
  for (const reply of answers(hop)) if (!seen.includes(reply.from)) seen.push(reply.from);
  return seen;
}

/** Reached when the destination answered; the extra words give the path MTU. */
export function verdict(t) {
  return judge(Boolean(t.reached), null, t.pmtu ? `pmtu ${t.pmtu}` : null);
}

/** The nodes of the summary. */
export function view(t) {
  const hops = t.result || [];
  const named = hops.some((hop) => answers(hop).some((r) => r.name));
  const reply = (r) => (r.x ? "*" : `${r.rtt ?? "?"} ms${r.mtu ? ` pmtu ${r.mtu}` : ""}${r.err ? ` !${r.err}` : ""}`);
  const table = h(
    "table",
    { class: "table hops", "data-testid": "tracepath-table" },
    h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Hop"), h("th", {}, "Address"), named ? h("th", {}, "Name") : null, h("th", { class: "num" }, "PMTU"), h("th", {}, "Replies"))),
    h(
      "tbody",
      {},
      hops.map((hop) =>
        h(
          "tr",
          {},
          h("td", { class: "num" }, hop.hop),
          h("td", { class: "mono" }, who(hop).join(", ") || "*"),
          named ? h("td", {}, [...new Set(answers(hop).map((r) => r.name).filter(Boolean))].join(", ") || "—") : null,
          h("td", { class: "num" }, hop.pmtu ?? "—"),
          h("td", { class: "mono" }, (hop.result || []).map(reply).join("  ")),
        ),
      ),
    ),
  );
  const groups = hops.map((hop) => ({
    label: String(hop.hop),
    values: (hop.result || []).map((r) => (typeof r.rtt === "number" ? r.rtt : null)),
    tip: `hop ${hop.hop}: ${who(hop).join(", ") || "no reply"}${hop.pmtu ? `, pmtu ${hop.pmtu}` : ""}`,
  }));
  const destination = t.dst_name ? `${t.dst_name} (${t.dst_addr})` : t.dst_addr || "—";
  return [
    h("div", { class: "tiles" }, tile("Hops", hops.length), tile("Path MTU", t.pmtu ?? "—"), tile("Destination", destination), tile("Reached", t.reached ? "yes" : "no", t.reached ? "ok" : "bad")),
    h("div", { class: "scroll" }, table),
    hops.length ? h("figure", { class: "figure", "data-testid": "tracepath-chart" }, barChart(groups, { title: "Latency per hop", xLabel: "hop (TTL)", yLabel: "RTT (ms)" }), h("figcaption", {}, "Latency per hop: bar = average, dots = each reply, * = no reply")) : null,
  ];
}
