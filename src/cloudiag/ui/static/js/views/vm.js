// The detail view of one system VM or router: tabs Details, Diagnostics, History and
// Diagnostics data (getDiagnosticsData).

import { allowed, call } from "../api.js";
import { badge, empty, failure, h, loading, name, replace, when } from "../dom.js";
import { historyPanel } from "../diag/history.js";
import { dataPanel } from "../diag/data.js";
import { diagnosticsPanel } from "../diag/panel.js";

const TABS = [
  ["details", "Details"],
  ["diagnostics", "Diagnostics"],
  ["history", "History"],
  ["data", "Diagnostics data"],
];

const KIND = { secondarystoragevm: "Secondary storage VM", consoleproxy: "Console proxy VM" };

async function findVm(id) {
  if (allowed("listRouters")) {
    const routers = await call("listRouters", { id });
    if (routers.router?.length) return { ...routers.router[0], kind: "Virtual router" };
  }
  if (allowed("listSystemVms")) {
    const vms = await call("listSystemVms", { id });
    if (vms.systemvm?.length) return { ...vms.systemvm[0], kind: KIND[vms.systemvm[0].systemvmtype] || "System VM" };
  }
  return null;
}

function details(vm) {
  const rows = [
    ["Name", name(vm.name)],
    ["ID", vm.id],
    ["Kind", vm.kind],
    ["State", badge(vm.state)],
    ["Public IP", vm.publicip],
    ["Guest IP", vm.guestipaddress],
    ["Link-local IP", vm.linklocalip],
    ["Private IP", vm.privateip],
    ["Host", vm.hostname],
    ["Zone", vm.zonename],
    ["Diagnostics", vm.diagnosticstypes?.split(",").join(", ")],
    ["Created", when(vm.created)],
  ].filter(([, value]) => value);
  return h("dl", { class: "details" }, rows.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

/** The VM page for route #/vm/<id>[/<tab>]. */
export function vmView(id, tab = "details") {
  const root = h("section", { class: "view", "data-testid": "vm-view" }, loading("Loading the VM…"));
  (async () => {
    let vm;
    try {
      vm = await findVm(id);
    } catch (error) {
      replace(root, failure(error, () => replace(root, vmView(id, tab))));
      return;
    }
    if (!vm) {
      replace(root, empty("No system VM or router with this id that you may see.", "It may have been removed, or your role cannot list it; go back to the lists."));
      return;
    }
    const panel = h("div", { class: "tab-panel", role: "tabpanel" });
    const tabButtons = TABS.map(([key, label]) => h("a", { href: `#/vm/${vm.id}/${key}`, role: "tab", class: "tab", "aria-selected": String(key === tab), "data-testid": `tab-${key}` }, label));
    const show = (key, initial) => {
      if (key === "details") replace(panel, details(vm));
      else if (key === "diagnostics") replace(panel, diagnosticsPanel(vm, { initial }));
      else if (key === "data") replace(panel, allowed("getDiagnosticsData") ? dataPanel(vm) : empty("Only root admins may get a VM's diagnostics data."));
      else replace(panel, historyPanel(vm, { onRerun: (request) => show("diagnostics", { type: request.type, ipaddress: request.ipaddress, params: (request.params || []).join(" ") }) }));
      tabButtons.forEach((button, i) => button.setAttribute("aria-selected", String(TABS[i][0] === key)));
    };
    replace(
      root,
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: vm.kind === "Virtual router" ? "#/routers" : "#/systemvms" }, vm.kind === "Virtual router" ? "Virtual Routers" : "System VMs"), " / ", name(vm.name)),
      h("div", { class: "view-head" }, h("h1", {}, name(vm.name)), badge(vm.state), h("span", { class: "muted" }, `${vm.kind} on ${vm.hostname || "?"} · ${vm.zonename || ""}`)),
      h("div", { class: "tabs", role: "tablist" }, tabButtons),
      panel,
    );
    show(TABS.some(([key]) => key === tab) ? tab : "details");
  })();
  return root;
}
