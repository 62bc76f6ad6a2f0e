// The Diagnostics panel of one VM: the form (types from the server, checked here with the
// server's rules and again by the server), the live run with Cancel, then the result.

import { allowed, call, followJob } from "../api.js";
import { empty, failure, h, loading, prose, replace } from "../dom.js";
import { resultView } from "./result.js";
import { declareSummaries, summaryReady } from "./summary.js";
import { checkParams, checkTarget, optionsHint, paramsExample, targetHint } from "./validate.js";

const FIELDS = ["type", "ipaddress", "params"];

/** Why this VM cannot run diagnostics for this user, or null. */
export function cannotRun(vm) {
  if (!allowed("runDiagnostics")) return "Your role cannot run diagnostics.";
  if (vm.state !== "Running") return `Diagnostics run only on a Running VM; ${vm.name} is ${vm.state}.`;
  return null;
}

function field(name, label, control, hint) {
  const id = `f-${name}`;
  control.id = id;
  control.name = name;
  control.setAttribute("aria-describedby", `${id}-error ${id}-hint`);
  return h(
    "div",
    { class: "field", "data-field": name },
    h("label", { for: id }, label),
    control,
    h("p", { class: "hint", id: `${id}-hint` }, hint || ""),
    h("p", { class: "field-error", id: `${id}-error`, role: "alert", "data-testid": `error-${name}` }),
  );
}

/** Build the panel into `root` for `vm` (a listRouters/listSystemVms row). */
export function diagnosticsPanel(vm, { initial = {} } = {}) {
  const root = h("div", { class: "diag-panel", "data-testid": "diagnostics-panel" });
  const why = cannotRun(vm);
  if (why) {
    root.append(empty(why, vm.state !== "Running" ? "Start the VM (or its agent's host) and come back." : "Ask an administrator for a role that may call runDiagnostics."));
    return root;
  }
  const formArea = h("div", {}, loading("Loading diagnostic types…"));
  const runArea = h("div", { class: "run-area", "aria-live": "polite" });
  root.append(formArea, runArea);
  let types = [];
  let rules = null;

  const typeSelect = h("select", { "data-testid": "diag-type" });
  // The demo lab's web server, by address and by name (lab/topology.py): both answer there.
  const address = h("input", { type: "text", autocomplete: "off", spellcheck: "false", placeholder: "198.51.100.10 or web.lab.test", "data-testid": "diag-address", maxlength: "253" });
  const params = h("input", { type: "text", autocomplete: "off", spellcheck: "false", "data-testid": "diag-params" });
  const runButton = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "diag-run" }, "Run");
  const form = h(
    "form",
    { class: "diag-form", novalidate: true },
    field("type", "Type", typeSelect),
    field("ipaddress", "Destination", address, "IPv4/IPv6 address or host name"),
    field("params", "Parameters (optional)", params),
    h("div", { class: "form-actions" }, runButton),
  );
  const current = () => types.find((t) => t.name === typeSelect.value);
  const showHint = () => {
    const dtype = current();
    const hint = form.querySelector("#f-params-hint");
    if (!dtype) return replace(hint);
    const [what, example] = targetHint(dtype);
    replace(form.querySelector("#f-ipaddress-hint"), what);
    address.placeholder = example;
    address.maxLength = dtype.target?.kind === "url" ? rules.urlmaxlength : rules.maxlength;
    params.placeholder = paramsExample(dtype);
    const options = optionsHint(dtype).flatMap((option, i) => [i ? " · " : "", h("span", { class: "opt", title: option.title }, option.text)]);
    replace(hint, `${dtype.description}. Options: `, options, `. Limit ${dtype.time_limit} s.`);
  };
  const setError = (name, text) => {
    const box = form.querySelector(`[data-field="${name}"]`);
    replace(box.querySelector(".field-error"), text ? prose(text) : "");
    box.querySelector("input, select").setAttribute("aria-invalid", text ? "true" : "false");
    box.classList.toggle("invalid", Boolean(text));
  };
  const clearErrors = () => FIELDS.forEach((name) => setError(name, ""));
  const checkField = (name) => {
    if (!rules) return null;
    const problem = name === "ipaddress" ? checkTarget(address.value.trim(), current(), rules) : name === "params" && current() ? checkParams(params.value.trim(), current()) : null;
    setError(name, problem);
    return problem;
  };
  typeSelect.addEventListener("change", () => {
    showHint();
    if (address.value) checkField("ipaddress");
    if (params.value) checkField("params");
  });
  address.addEventListener("blur", () => address.value && checkField("ipaddress"));
  params.addEventListener("blur", () => checkField("params"));
  address.addEventListener("input", () => setError("ipaddress", ""));
  params.addEventListener("input", () => setError("params", ""));

  let busy = false;
  let stopFollowing = () => {};
  // Whoever removes the panel (a closed dialog) ends its live stream with it.
  root.stopFollowing = () => stopFollowing();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    clearErrors();
    // A new request replaces what the last one showed, whether it runs or is refused.
    replace(runArea);
    const problems = ["ipaddress", "params"].map(checkField).filter(Boolean);
    if (problems.length) {
      form.querySelector('[aria-invalid="true"]')?.focus();
      return;
    }
    busy = true;
    runButton.disabled = true;
    runButton.textContent = "Starting…";
    try {
      const answer = await call("runDiagnostics", { targetid: vm.id, type: typeSelect.value, ipaddress: address.value.trim(), params: params.value.trim() });
      runButton.textContent = "Running…";
      live(answer.jobid);
    } catch (error) {
      if (error.param && FIELDS.includes(error.param.toLowerCase())) {
        setError(error.param.toLowerCase(), error.message);
        form.querySelector(`#f-${error.param.toLowerCase()}`).focus();
      } else {
        replace(runArea, failure(error));
      }
      runButton.disabled = false;
      runButton.textContent = "Run";
      busy = false;
    }
  });

  function live(jobid) {
    const started = Date.now();
    const out = h("pre", { class: "output live", "data-testid": "live-output", tabindex: "0" });
    const elapsed = h("span", { class: "muted", "data-testid": "elapsed" }, "0.0 s");
    const cancel = h("button", { type: "button", class: "btn btn-danger", "data-testid": "cancel" }, "Cancel");
    const status = h("span", { class: "badge badge-run", "data-testid": "run-status" }, h("span", { class: "spinner small", "aria-hidden": "true" }), " Running");
    replace(runArea, h("div", { class: "live-run", "data-jobid": jobid }, h("div", { class: "result-head" }, status, elapsed, h("span", { class: "spacer" }), cancel), out));
    const timer = setInterval(() => {
      elapsed.textContent = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    }, 100);
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
      try {
        await call("cancelDiagnostics", { jobid });
      } catch (error) {
        cancel.textContent = "Cancel";
        cancel.disabled = false;
        out.append(h("span", { class: "stderr" }, `\n[${error.message}]\n`));
      }
    });
    const done = () => {
      clearInterval(timer);
      busy = false;
      runButton.disabled = false;
      runButton.textContent = "Run";
    };
    stopFollowing = followJob(jobid, {
      line(line) {
        const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
        const text = `${line.text.replace(/\r?\n$/, "")}\n`;
        out.append(line.stream === "stderr" ? h("span", { class: "stderr" }, text) : text);
        if (atBottom) out.scrollTop = out.scrollHeight;
      },
      async end(job) {
        // The result appears whole: its summary's module is loaded first (the form stays
        // busy meanwhile, so no new run can be replaced by this one's result).
        await summaryReady(job.jobresult?.diagnostics?.parsed, job.request?.type);
        done();
        replace(runArea, resultView(job, { onAgain: () => form.requestSubmit() }));
      },
      error(error) {
        done();
        replace(runArea, failure(error));
      },
    });
  }

  (async () => {
    try {
      const answer = await call("listDiagnosticsTypes", { targetid: vm.id });
      types = answer.diagnosticstype || [];
      declareSummaries(types);
      rules = answer.addressrules;
      replace(typeSelect, types.map((t) => h("option", { value: t.name }, t.name)));
      if (initial.type && types.some((t) => t.name === initial.type)) typeSelect.value = initial.type;
      address.value = initial.ipaddress || "";
      params.value = initial.params || "";
      showHint();
      replace(formArea, form);
      if (!types.length) replace(formArea, empty("This VM offers no diagnostic types."));
      else address.focus();
    } catch (error) {
      replace(formArea, failure(error));
    }
  })();
  return root;
}
