// The parsed summary of a result (jobresult.diagnostics.parsed, made on the server by one
// parser per type): figures, tables and charts. Every value is shown as text.

import { h } from "../dom.js";
import { barChart, lineChart } from "./charts.js";

function tile(label, value, tone) {
  return h("div", { class: `tile${tone ? ` tile-${tone}` : ""}` }, h("span", { class: "tile-label" }, label), h("span", { class: "tile-value" }, value));
}

function ms(value) {
  return value === null || value === undefined ? "—" : `${value} ms`;
}

function pingSummary(p) {
  const rtt = p.rtt || {};
  const tiles = h(
    "div",
    { class: "tiles", "data-testid": "ping-summary" },
    tile("Sent", p.transmitted ?? "—"),
    tile("Received", p.received ?? "—"),
    tile("Loss", p.loss === null || p.loss === undefined ? "—" : `${p.loss} %`, p.loss > 0 ? "bad" : "ok"),
    tile("min", ms(rtt.min)),
    tile("avg", ms(rtt.avg)),
    tile("max", ms(rtt.max)),
    tile("mdev", ms(rtt.mdev)),
  );
  const parts = [tiles];
  if (p.replies?.length || p.transmitted > 0) {
    const replies = p.replies || [];
    const bySeq = new Map(replies.filter((r) => !r.dup).map((r) => [r.seq, r]));
    const last = Math.max(...replies.map((r) => r.seq), p.transmitted || 0);
    const first = Math.min(...replies.map((r) => r.seq), 1);
    const points = [];
    for (let seq = first; seq <= last && points.length < 1000; seq += 1) {
      const reply = bySeq.get(seq);
      points.push({ x: seq, y: reply ? reply.time : null, tip: reply ? `icmp_seq ${seq}: ${reply.time} ms, ttl ${reply.ttl}` : `icmp_seq ${seq}: no reply` });
    }
    parts.push(h("figure", { class: "figure", "data-testid": "rtt-chart" }, lineChart(points, { title: "Round-trip time of each reply", xLabel: "icmp_seq", yLabel: "RTT (ms)" }), h("figcaption", {}, "Round-trip time of each reply (× = no reply)")));
  }
  if (p.unreachable?.length) {
    parts.push(h("ul", { class: "notes" }, p.unreachable.slice(0, 20).map((u) => h("li", {}, `icmp_seq ${u.seq}: ${u.message} (from ${u.from})`))));
  }
  return parts;
}

function hopCell(probes) {
  const seen = [];
  for (const probe of probes) {
    if (probe.address && !seen.some((x) => x.address === probe.address)) seen.push(probe);
  }
  return seen;
}

function tracerouteSummary(t) {
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

function arpingSummary(a) {
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

const VIEWS = { ping: pingSummary, traceroute: tracerouteSummary, arping: arpingSummary };

/** The summary view of a parsed result, or null when there is none for its type. */
export function summaryView(parsed) {
  const view = parsed && VIEWS[parsed.type];
  return view ? h("section", { class: "summary", "aria-label": "Parsed result" }, view(parsed)) : null;
}
