// The parsed summary of a result (jobresult.diagnostics.parsed, made on the server by one
// parser per type), shown by one module per type in summaries/: summaries/<name>.js, where
// the name is the type's ui summary, or the parsed summary's type; summaries/generic.js
// serves a type without a module of its own. Every module exports view(parsed) -> nodes and
// verdict(parsed) -> {text, tone} | null. Adding a type needs a new module there, or none.

import { h, replace } from "../dom.js";

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const GENERIC = "generic";
const loaded = new Map();
// The ui summary each type declares (listDiagnosticsTypes), once someone has read them.
const declared = new Map();

/** Remember which summary module each type asks for (listDiagnosticsTypes' entries). */
export function declareSummaries(types) {
  for (const dtype of types) {
    const name = dtype.uisummary ?? dtype.ui_summary;
    if (name) declared.set(dtype.name, name);
  }
}

function nameOf(parsed, type) {
  const name = declared.get(type) ?? parsed.uisummary ?? parsed.ui_summary ?? parsed.type;
  // Only a plain name becomes part of a module's URL.
  return NAME.test(name || "") ? name : GENERIC;
}

/** The summary module for a parsed result of a type (generic when it has none of its own). */
function summaryModule(parsed, type) {
  const name = nameOf(parsed, type);
  if (!loaded.has(name)) {
    const module = import(`./summaries/${name}.js`);
    loaded.set(name, name === GENERIC ? module : module.catch(() => import(`./summaries/${GENERIC}.js`)));
  }
  return loaded.get(name);
}

/** Resolves once the summary module of a type's parsed result is loaded (or cannot be). */
export function summaryReady(parsed, type) {
  return parsed ? summaryModule(parsed, type).catch(() => null) : Promise.resolve(null);
}

/** The verdict ({text, tone}) of a type's parsed result, or null when there is none. */
export async function summaryVerdict(parsed, type) {
  if (!parsed) return null;
  return (await summaryModule(parsed, type)).verdict(parsed);
}

/** The summary view of a type's parsed result (filled once its module is loaded), or null. */
export function summaryView(parsed, type) {
  if (!parsed) return null;
  const section = h("section", { class: "summary", "aria-label": "Parsed result" });
  summaryModule(parsed, type).then(
    (module) => replace(section, module.view(parsed)),
    () => replace(section, h("p", { class: "muted" }, "The summary could not be loaded; the output is below.")),
  );
  return section;
}
