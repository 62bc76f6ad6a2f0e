// The History tab: every past diagnostic of one VM (listAsyncJobs instanceid=… listall=true),
// each re-openable with its full output and charts.

import { call } from "../api.js";
import { badge, duration, empty, failure, h, loading, pageButtons, replace, when } from "../dom.js";
import { outcome, resultView } from "./result.js";
import { summaryVerdict } from "./summary.js";

const PAGE_SIZE = 20;

/** The history view of `vm`; onRerun(request) switches to the form with those values. */
export function historyPanel(vm, { onRerun } = {}) {
  const root = h("div", { class: "history", "data-testid": "history" });
  const table = h("div", { class: "scroll" });
  const detail = h("div", { class: "history-detail", "aria-live": "polite" });
  const pager = h("div", { class: "pager" });
  root.append(table, pager, detail);
  let page = 1;

  async function load() {
    replace(table, loading("Loading history…"));
    replace(pager);
    try {
      const answer = await call("listAsyncJobs", { instanceid: vm.id, listall: "true", page, pagesize: PAGE_SIZE });
      const jobs = answer.asyncjobs || [];
      if (!jobs.length) {
        replace(table, empty("No diagnostics have run on this VM yet.", "Run one from the Diagnostics tab; every run is kept here."));
        return;
      }
      // What each run found comes from its type's summary module: load those first.
      const verdicts = await Promise.all(jobs.map((job) => summaryVerdict(job.jobresult?.diagnostics?.parsed, job.request?.type)));
      replace(table, render(jobs, verdicts));
      const count = answer.count ?? jobs.length;
      const last = Math.max(1, Math.ceil(count / PAGE_SIZE));
      replace(
        pager,
        h("span", { class: "muted" }, `${count} run${count === 1 ? "" : "s"}`),
        pageButtons(page, last, (next) => {
          page = next;
          load();
        }),
      );
    } catch (error) {
      replace(table, failure(error, load));
    }
  }

  function open(job, row) {
    for (const other of table.querySelectorAll("tr.selected")) other.classList.remove("selected");
    row.classList.add("selected");
    const request = job.request || {};
    replace(
      detail,
      h("h3", {}, `${request.type || "diagnostic"} ${request.ipaddress || ""} · started ${when(job.created)} by ${job.username || "?"}`),
      resultView(job, onRerun && !request.files ? { onAgain: () => onRerun(request) } : {}),
    );
    detail.scrollIntoView({ block: "nearest" });
  }

  function render(jobs, verdicts) {
    return h(
      "table",
      { class: "table", "data-testid": "history-table" },
      h("thead", {}, h("tr", {}, ["When", "Who", "Type", "Destination", "Params", "Exit", "Result", "Duration", ""].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        jobs.map((job, i) => {
          const request = job.request || {};
          const found = verdicts[i];
          const { label, tone, ms } = outcome(job, found);
          const button = h("button", { type: "button", class: "btn btn-small" }, "Open");
          const row = h(
            "tr",
            { "data-jobid": job.jobid },
            h("td", {}, when(job.created)),
            h("td", {}, job.username || "—"),
            h("td", {}, request.type || "—"),
            h("td", { class: "mono" }, request.ipaddress || "—"),
            // A getDiagnosticsData job has its items where a diagnostic has its options.
            h("td", { class: "mono" }, (request.params || request.files || []).join(" ") || "—"),
            h("td", {}, badge(label, tone)),
            h("td", { "data-testid": "verdict" }, found ? badge(found.text, found.tone) : "—"),
            h("td", { class: "num" }, job.jobstatus === 0 ? "…" : duration(ms)),
            h("td", {}, button),
          );
          button.addEventListener("click", () => open(job, row));
          return row;
        }),
      ),
    );
  }

  load();
  return root;
}
