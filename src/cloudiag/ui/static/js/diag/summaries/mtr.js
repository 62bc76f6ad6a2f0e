// The summary of an mtr report: loss, latency and jitter of every hop.

import { h } from "../../dom.js";
import { barChart } from "../charts.js";
import { ms, percent, tile, verdict as judge } from "../figures.js";

function host(hop) {
  const reply = (hop.result || [])[0] || {};
  if (!reply.from) return { address: "*", name: null };
  return { address: reply.from, name: reply.name };
}

/** Reached when the last hop is the destination; the loss is that hop's. */
export function verdict(t) {
  const hops = t.result || [];
  const last = hops.length ? hops[hops.length - 1] : null;
  return judge(Boolean(t.reached), last && typeof last.loss === "number" ? last.loss : null, `${hops.length} hop${hops.length === 1 ? "" : "s"}`);
}

/** The nodes of the summary. */
export function view(t) {
  const hops = t.result || [];
  const named = hops.some((hop) => host(hop).name);
  const table = h(
    "table",
    { class: "table hops", "data-testid": "mtr-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { class: "num" }, "Hop"),
        h("th", {}, "Address"),
        named ? h("th", {}, "Name") : null,
        ...["Loss", "Sent", "Last", "Avg", "Best", "Worst", "StDev"].map((label) => h("th", { class: "num" }, label)),
      ),
    ),
    h(
      "tbody",
      {},
      hops.map((hop) => {
        const { address, name } = host(hop);
        return h(
          "tr",
          {},
          h("td", { class: "num" }, hop.hop),
          h("td", { class: "mono" }, address),
          named ? h("td", {}, name || "—") : null,
          h("td", { class: "num" }, percent(hop.loss) ?? "—"),
          h("td", { class: "num" }, hop.sent ?? "—"),
          ...[hop.last, hop.avg, hop.best, hop.worst, hop.stdev].map((value) => h("td", { class: "num" }, ms(value))),
        );
      }),
    ),
  );
  const groups = hops.map((hop) => ({
    label: String(hop.hop),
    values: [hop.best, hop.avg, hop.worst].filter((v) => typeof v === "number"),
    tip: `hop ${hop.hop}: ${host(hop).address}, ${percent(hop.loss) ?? "?"} loss`,
  }));
  return [
    h("div", { class: "tiles" }, tile("Hops", hops.length), tile("Cycles", t.cycles ?? "—"), tile("Destination", t.dst_addr || t.dst_name || "—"), tile("Reached", t.reached ? "yes" : "no", t.reached ? "ok" : "bad")),
    h("div", { class: "scroll" }, table),
    hops.length ? h("figure", { class: "figure", "data-testid": "mtr-chart" }, barChart(groups, { title: "Latency per hop", xLabel: "hop (TTL)", yLabel: "RTT (ms)" }), h("figcaption", {}, "Latency per hop: bar = mean of best, average and worst; dots = best, average, worst; * = no answer")) : null,
  ];
}
