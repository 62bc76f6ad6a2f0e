// The summary of a ping (or ping6): figures, the round-trip time of each reply, and the
// unreachable messages.

import { h } from "../../dom.js";
import { lineChart } from "../charts.js";
import { ms, percent, tile, verdict as judge } from "../figures.js";

/** Reached when a reply came back; the loss as ping counted it. */
export function verdict(p) {
  return judge((p.received ?? 0) > 0, p.loss);
}

/** The nodes of the summary. */
export function view(p) {
  const rtt = p.rtt || {};
  const tiles = h(
    "div",
    { class: "tiles", "data-testid": "ping-summary" },
    tile("Sent", p.transmitted ?? "—"),
    tile("Received", p.received ?? "—"),
    tile("Loss", percent(p.loss) ?? "—", p.loss > 0 ? "bad" : "ok"),
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
