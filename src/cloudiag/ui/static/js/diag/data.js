// getDiagnosticsData from the UI: the VM's default items as a file picker, more items by
// hand, the job followed to its end, and a download link for the zip.

import { call, session } from "../api.js";
import { h, replace } from "../dom.js";

// queryAsyncJobResult's wait (s): answered as soon as the job is final.
const WAIT = 30;

async function finalJob(jobid) {
  for (;;) {
    const job = await call("queryAsyncJobResult", { jobid, wait: WAIT });
    if (job.jobstatus !== 0) return job;
  }
}

function splitItems(text) {
  return text.split(",").map((item) => item.trim()).filter(Boolean);
}

/** The link of a zip: its signed URL with the session's key (the download is this user's). */
export function downloadHref(url) {
  const separator = url.includes("?") ? "&" : "?";
  return `${url}${separator}sessionkey=${encodeURIComponent(session()?.sessionkey || "")}`;
}

/** The "Get diagnostics data" panel of a VM. */
export function dataPanel(vm) {
  const defaults = splitItems(vm.diagnosticsdatafiles || "");
  const boxes = defaults.map((item) => h("input", { type: "checkbox", value: item, checked: true, "data-testid": `data-file-${item}` }));
  const extra = h("input", { type: "text", id: "data-extra", class: "mono", placeholder: "/var/log/other.log, [script.sh]", "data-testid": "data-extra", autocomplete: "off" });
  const button = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "data-get" }, "Get diagnostics data");
  const status = h("div", { class: "data-status", role: "status", "aria-live": "polite", "data-testid": "data-status" });
  const form = h(
    "form",
    { class: "data-form", "data-testid": "data-form" },
    h("h2", {}, "Get diagnostics data"),
    h("p", { class: "muted" }, "A zip of the VM's files and network state (iptables, ipaddr, iprule, iproute; [name] runs /opt/cloud/bin/name), with fileinfo.txt saying what was found."),
    h("fieldset", { class: "file-picker" }, h("legend", {}, "Files"), boxes.map((box) => h("label", { class: "file-choice" }, box, " ", h("span", { class: "mono" }, box.value)))),
    h("label", { for: "data-extra" }, "More items (comma-separated)"),
    extra,
    h("div", { class: "form-actions" }, button),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = [...boxes.filter((box) => box.checked).map((box) => box.value), ...splitItems(extra.value)];
    if (!files.length) {
      replace(status, h("p", { class: "error" }, "Choose at least one item."));
      return;
    }
    button.disabled = true;
    replace(status, h("p", {}, "Collecting on ", vm.name, "…"));
    try {
      const { jobid } = await call("getDiagnosticsData", { targetid: vm.id, files: files.join(",") });
      const job = await finalJob(jobid);
      const url = job.jobresult?.diagnostics?.url;
      if (job.jobstatus === 1 && url) {
        replace(status, h("p", {}, "Ready: ", h("a", { href: downloadHref(url), download: "", "data-testid": "data-download" }, "Download the zip")));
      } else {
        replace(status, h("p", { class: "error", "data-testid": "data-error" }, job.jobresult?.errortext || "The collection failed."));
      }
    } catch (error) {
      replace(status, h("p", { class: "error", "data-testid": "data-error" }, error.message));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
