// The summary of an http check: status, timings step by step, size, the certificate.

import { h } from "../../dom.js";
import { ms, tile } from "../figures.js";

/** 2xx good, 3xx a redirect (a warning), 4xx/5xx and failures bad. */
export function verdict(r) {
  if (r.res === null || r.res === undefined) return { text: r.err ? "failed" : "not reached", tone: "bad" };
  const tone = r.res < 300 ? "ok" : r.res < 400 ? "warn" : "bad";
  return { text: `HTTP ${r.res}${r.redirect ? " redirect" : ""}`, tone };
}

function timings(r) {
  const steps = [
    ["Name lookup", r.ttr],
    ["Connect", r.ttc],
    ["TLS handshake", r.tls_time],
    ["First byte", r.ttfb],
    ["Total", r.rt],
  ];
  return h(
    "table",
    { class: "table", "data-testid": "http-timings", "aria-label": "Timings" },
    h("tbody", {}, steps.map(([name, value]) => h("tr", {}, h("th", {}, name), h("td", { class: "num" }, ms(value))))),
  );
}

/** The nodes of the summary. */
export function view(r) {
  const tls = r.tls;
  const parts = [
    h(
      "div",
      { class: "tiles", "data-testid": "http-summary" },
      tile("Status", r.res ? `${r.res} ${r.reason ?? ""}` : "—", verdict(r).tone),
      tile("Address", r.dst_addr ?? "—"),
      tile("Headers", r.hsize !== null && r.hsize !== undefined ? `${r.hsize} B` : "—"),
      tile("Body", r.bsize !== null && r.bsize !== undefined ? `${r.bsize} B` : "—"),
    ),
    timings(r),
  ];
  if (r.location) parts.push(h("p", { "data-testid": "http-location" }, "Redirects to ", h("span", { class: "mono" }, r.location)));
  if (tls) {
    const rows = tls.verified
      ? [
          ["Subject", tls.subject],
          ["Issuer", tls.issuer],
          ["Expires", `${tls.not_after ?? "—"} (${tls.days_left ?? "?"} days left)`],
          ["Protocol", `${tls.version ?? ""} ${tls.cipher ?? ""}`],
        ]
      : [["Not trusted", tls.error || "not verified (-k)"]];
    parts.push(h("dl", { class: "details", "data-testid": "http-certificate" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, v ?? "—")])));
  }
  if (r.err) parts.push(h("p", { class: "warning", role: "alert", "data-testid": "http-error" }, r.err));
  if (r.headers?.length) {
    parts.push(
      h(
        "table",
        { class: "table", "data-testid": "http-headers", "aria-label": "Response headers" },
        h("tbody", {}, r.headers.map(([k, v]) => h("tr", {}, h("th", { class: "mono" }, k), h("td", { class: "mono" }, v)))),
      ),
    );
  }
  return parts;
}
