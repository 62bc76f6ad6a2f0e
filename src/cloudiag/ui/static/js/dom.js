// Building the page from data: text always goes in as text nodes, never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function put(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.setAttribute("class", value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** An HTML element: h("td", {class: "x"}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  put(el, children);
  return el;
}

/** An SVG element, same call shape as h(). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  put(el, children);
  return el;
}

/** Replace the children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  put(el, children);
  return el;
}

/** A small spinner with a text for screen readers and eyes. */
export function loading(text = "Loading…") {
  return h("div", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text);
}

/** An empty state: what is (not) here and what to do about it. */
export function empty(title, hint) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), hint ? h("p", {}, hint) : null);
}

// A command-line option ("-I", "--", "-c") where it starts a word: "r-1-VM" holds none.
const OPTION = /(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9-]*|--)(?![\w-])/g;

/** Text (an error, a hint) as nodes whose option names never break across lines. */
export function prose(value) {
  const text = String(value);
  const nodes = [];
  let from = 0;
  for (const match of text.matchAll(OPTION)) {
    if (match.index > from) nodes.push(text.slice(from, match.index));
    nodes.push(h("code", { class: "flag" }, match[0]));
    from = match.index + match[0].length;
  }
  if (from < text.length) nodes.push(text.slice(from));
  return nodes;
}

/** A name (a VM's "s-2-VM", a host's) that never breaks at its hyphens. */
export function name(text) {
  return h("span", { class: "name" }, text);
}

/** An error box with an optional retry. */
export function failure(error, retry) {
  return h(
    "div",
    { class: "failure", role: "alert" },
    h("p", {}, prose(error.message || String(error))),
    retry ? h("button", { type: "button", class: "btn", onclick: retry }, "Try again") : null,
  );
}

/** A state badge: Running/Up green, Stopped/Disconnected grey/red. */
export function badge(text, kind) {
  const tone = kind || { Running: "ok", Up: "ok", Enabled: "ok", Stopped: "off", Disconnected: "bad" }[text] || "off";
  return h("span", { class: `badge badge-${tone}` }, text);
}

/** A CloudStack date ("2026-11-25T09:24:37+0000") as a Date; null when there is none. */
export function parseStamp(stamp) {
  if (!stamp) return null;
  const date = new Date(stamp.replace(/([+-]\d\d)(\d\d)$/, "$1:$2"));
  return Number.isNaN(date.getTime()) ? null : date;
}

const pad = (n) => String(n).padStart(2, "0");

/** The browser's offset from UTC at `date`, as "UTC" or "UTC+01:00". */
function zone(date) {
  const minutes = -date.getTimezoneOffset();
  if (minutes === 0) return "UTC";
  const abs = Math.abs(minutes);
  return `UTC${minutes > 0 ? "+" : "-"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** "2026-11-25T09:24:37+0000" -> local time with its zone, "2026-11-25 10:24:37 UTC+01:00". */
export function when(stamp) {
  if (!stamp) return "—";
  const date = parseStamp(stamp);
  if (!date) return stamp;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone(date)}`;
}

/** "12 s ago" for a recent time stamp. */
export function ago(stamp) {
  if (!stamp) return "never";
  const date = parseStamp(stamp);
  if (!date) return stamp;
  const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return when(stamp);
}

/** Previous · Page n of last · Next; go(page) loads another page. */
export function pageButtons(page, last, go) {
  return [
    h("button", { type: "button", class: "btn", disabled: page <= 1, onclick: () => go(page - 1) }, "Previous"),
    h("span", {}, `Page ${page} of ${last}`),
    h("button", { type: "button", class: "btn", disabled: page >= last, onclick: () => go(page + 1) }, "Next"),
  ];
}

/** Milliseconds as "850 ms" or "3.2 s". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
