// The summary of a ping (or ping6), in RIPE Atlas's ping result format: figures, the
// round-trip time of each reply, and the unreachable messages.

import { h } from "../../dom.js";
import { lineChart } from "../charts.js";
import { ms, percent, tile, verdict as judge } from "../figures.js";

/** An Atlas min/avg/max: -1 means no reply came back. */
function rtt(value) {
  return typeof value === "number" && value >= 0 ? value : null;
}

/** Reached when a reply came back; the loss as ping counted it. */
export function verdict(p) {
  return judge((p.rcvd ?? 0) > 0, p.loss);
}

/** The nodes of the summary. */
export function view(p) {
  const tiles = h(
    "div",
    { class: "tiles", "data-testid": "ping-summary" },
    tile("Sent", p.sent ?? "—"),
    tile("Received", p.rcvd ?? "—"),
    tile("Loss", percent(p.loss) ?? "—", p.loss > 0 ? "bad" : "ok"),
    tile("min", ms(rtt(p.min))),
    tile("avg", ms(rtt(p.avg))),
    tile("max", ms(rtt(p.max))),
    tile("mdev", ms(p.mdev)),
  );
  const parts = [tiles];
  // One entry per probe: a reply ({rtt, ttl, seq}, "dup": 1 on a duplicate) or {"x": "*"}.
  // With -q ping prints no replies and there is nothing to plot.
  const entries = (p.result || []).filter((r) => Number.isInteger(r.seq));
  if (entries.length) {
    const bySeq = new Map(entries.filter((r) => !r.x && !r.dup).map((r) => [r.seq, r]));
    const last = Math.max(...entries.map((r) => r.seq), p.sent || 0);
    const first = Math.min(...entries.map((r) => r.seq), 1);
    const points = [];
    for (let seq = first; seq <= last && points.length < 1000; seq += 1) {
      const reply = bySeq.get(seq);
      const time = typeof reply?.rtt === "number" ? reply.rtt : null;
      const tip = !reply ? `icmp_seq ${seq}: no reply` : time === null ? `icmp_seq ${seq}: reply without a time` : `icmp_seq ${seq}: ${time} ms, ttl ${reply.ttl}`;
      points.push({ x: seq, y: time, tip });
    }
    parts.push(h("figure", { class: "figure", "data-testid": "rtt-chart" }, lineChart(points, { title: "Round-trip time of each reply", xLabel: "icmp_seq", yLabel: "RTT (ms)" }), h("figcaption", {}, "Round-trip time of each reply (× = no reply)")));
  }
  if (p.unreachable?.length) {
    parts.push(h("ul", { class: "notes" }, p.unreachable.slice(0, 20).map((u) => h("li", {}, `icmp_seq ${u.seq}: ${u.message} (from ${u.from})`))));
  }
  return parts;
}
