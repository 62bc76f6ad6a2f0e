// The summary of a route check: the interface, source and gateway for the destination, then
// the VM's interfaces, routes and neighbours.

import { h } from "../../dom.js";
import { tile } from "../figures.js";

/** Routed when ip route get found a route. */
export function verdict(r) {
  return r.reached ? { text: `via ${r.dev ?? "?"}${r.gateway ? ` and ${r.gateway}` : ""}`, tone: "ok" } : { text: "no route", tone: "bad" };
}

function table(label, testid, heads, rows) {
  return h(
    "table",
    { class: "table", "data-testid": testid, "aria-label": label },
    h("thead", {}, h("tr", {}, heads.map((name) => h("th", {}, name)))),
    h("tbody", {}, rows.slice(0, 500).map((cells) => h("tr", {}, cells.map((c) => h("td", { class: "mono" }, c ?? "—"))))),
  );
}

const list = (value) => (Array.isArray(value) ? value : []);

/** The nodes of the summary. */
export function view(r) {
  const parts = [
    h(
      "div",
      { class: "tiles", "data-testid": "route-summary" },
      tile("Destination", r.dst_addr ?? "—"),
      tile("Interface", r.dev ?? "—", r.reached ? "ok" : "bad"),
      tile("Source", r.src_addr ?? "—"),
      tile("Gateway", r.gateway ?? "direct"),
    ),
  ];
  for (const error of list(r.errors)) parts.push(h("p", { class: "muted" }, error));
  const interfaces = list(r.interfaces);
  if (interfaces.length) parts.push(h("h4", {}, "Interfaces"), table("Interfaces", "route-interfaces", ["Name", "State", "MAC", "Addresses"], interfaces.map((i) => [i.name, i.state, i.mac, (i.addresses || []).join(" ")])));
  const routes = [...list(r.routes), ...list(r.routes6)];
  if (routes.length) parts.push(h("h4", {}, "Routes"), table("Routes", "route-routes", ["Destination", "Gateway", "Device", "Source", "Table"], routes.map((x) => [x.dst, x.gateway, x.dev, x.prefsrc, x.table])));
  const rules = list(r.rules);
  if (rules.length) parts.push(h("h4", {}, "Rules"), table("Rules", "route-rules", ["Priority", "From", "Table"], rules.map((x) => [String(x.priority ?? ""), x.src ?? "all", x.table])));
  const neighbours = list(r.neighbours);
  if (neighbours.length) parts.push(h("h4", {}, "Neighbours"), table("Neighbours", "route-neighbours", ["Address", "Device", "MAC", "State"], neighbours.map((n) => [n.dst, n.dev, n.lladdr, Array.isArray(n.state) ? n.state.join(",") : n.state])));
  return parts;
}
