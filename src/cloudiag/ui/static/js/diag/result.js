// A finished job: exit-code badge, what the run found, duration, stdout and stderr as text,
// the parsed summary, copy to clipboard and Run again.

import { duration, h, parseStamp, prose, when } from "../dom.js";
import { downloadHref } from "./data.js";
import { summaryVerdict, summaryView } from "./summary.js";

/**
 * What a job's result says, whichever way it ended. found: the verdict of its parsed
 * summary ({text, tone} or null): an exit 0 that did not reach its destination is no success.
 */
export function outcome(job, found = null) {
  const result = job.jobresult || {};
  const diag = result.diagnostics || null;
  let label;
  let tone;
  if (job.jobstatus === 0) {
    label = "Running";
    tone = "run";
  } else if (job.jobstatus === 2) {
    label = result.cancelled ? "Cancelled" : "Failed";
    tone = result.cancelled ? "off" : "bad";
  } else if (typeof diag?.url === "string") {
    label = "zip ready";
    tone = "ok";
  } else if (diag?.timedout) {
    label = `Timed out · exit ${diag.exitcode}`;
    tone = "bad";
  } else {
    label = `exit ${diag?.exitcode ?? "?"}`;
    tone = diag?.exitcode === "0" ? (found?.tone ?? "ok") : "bad";
  }
  let ms = diag?.durationms;
  const [created, completed] = [parseStamp(job.created), parseStamp(job.completed)];
  if (ms === undefined && created && completed) ms = completed - created;
  return { label, tone, diag, error: job.jobstatus === 2 ? result.errortext : null, ms };
}

function outputBlock(title, text, testid) {
  return h("section", { class: "output-block" }, h("h4", {}, title), h("pre", { class: `output${title === "stderr" ? " stderr" : ""}`, "data-testid": testid, tabindex: "0" }, text));
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => {
    button.textContent = "Copy output";
  }, 1500);
}

// A getDiagnosticsData job: what it collected and the link of its zip.
function dataResult(job, exitBadge, url) {
  const files = (job.request?.files || []).join(", ");
  return h(
    "div",
    { class: "result", "data-testid": "result" },
    h("div", { class: "result-head" }, h("div", { class: "result-facts" }, exitBadge, h("span", { class: "muted mono" }, files), job.completed ? h("span", { class: "muted" }, `finished ${when(job.completed)}`) : null)),
    h("p", {}, h("a", { href: downloadHref(url), download: "", "data-testid": "data-download" }, "Download the zip")),
  );
}

/**
 * The view of a finished job. onAgain: () => void for "Run again" (omitted in history).
 */
export function resultView(job, { onAgain } = {}) {
  const { label, tone, diag, error, ms } = outcome(job);
  const request = job.request || {};
  const exitBadge = h("span", { class: `badge badge-${tone} badge-big`, "data-testid": "exit-badge" }, label);
  if (typeof diag?.url === "string") return dataResult(job, exitBadge, diag.url);
  // Recoloured once the summary's module says what the run found (and titled with it); a
  // module that cannot load leaves the exit code's colour.
  summaryVerdict(diag?.parsed, request.type)
    .then((verdict) => {
      if (!verdict) return;
      exitBadge.className = `badge badge-${outcome(job, verdict).tone} badge-big`;
      exitBadge.title = verdict.text;
    })
    .catch(() => {});
  const stdout = diag?.stdout ?? "";
  const stderr = diag?.stderr ?? "";
  const copyButton = h("button", { type: "button", class: "btn", "data-testid": "copy-output" }, "Copy output");
  copyButton.addEventListener("click", () => copy(stderr ? `${stdout}\n${stderr}` : stdout, copyButton));
  const flags = [];
  if (diag?.truncated) flags.push(h("span", { class: "badge badge-off" }, "output truncated"));
  return h(
    "div",
    { class: "result", "data-testid": "result" },
    // The facts wrap among themselves; the buttons keep their line at the right.
    h(
      "div",
      { class: "result-head" },
      h(
        "div",
        { class: "result-facts" },
        exitBadge,
        h("span", { class: "muted" }, `${request.type || ""} ${request.ipaddress || ""} ${(request.params || []).join(" ")}`.trim()),
        h("span", { class: "muted", "data-testid": "duration" }, `took ${duration(ms)}`),
        job.completed ? h("span", { class: "muted" }, `finished ${when(job.completed)}`) : null,
        flags,
      ),
      h("div", { class: "result-actions" }, copyButton, onAgain ? h("button", { type: "button", class: "btn", onclick: onAgain, "data-testid": "run-again" }, "Run again") : null),
    ),
    error ? h("p", { class: "failure", role: "alert", "data-testid": "job-error" }, prose(error)) : null,
    summaryView(diag?.parsed, request.type),
    diag ? outputBlock("stdout", stdout || "(empty)", "stdout") : null,
    stderr ? outputBlock("stderr", stderr, "stderr") : null,
  );
}
