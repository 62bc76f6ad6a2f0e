// The infrastructure lists: Zones, Hosts, System VMs and Virtual Routers.

import { call } from "../api.js";
import { ago, badge, h, name, when } from "../dom.js";
import { cannotRun, diagnosticsPanel } from "../diag/panel.js";
import { listView } from "./list.js";

const VM_STATES = [["Running", "Running"], ["Stopped", "Stopped"]];
const SYSTEM_VM_TYPES = { secondarystoragevm: "Secondary storage VM", consoleproxy: "Console proxy VM", domainrouter: "Virtual router" };

async function zoneOptions() {
  const answer = await call("listZones", { pagesize: 500, page: 1 });
  return (answer.zone || []).map((zone) => [zone.id, zone.name]);
}

function addresses(vm) {
  const parts = [
    ["public", vm.publicip],
    ["guest", vm.guestipaddress],
    ["link-local", vm.linklocalip],
  ].filter(([, ip]) => ip);
  return h("span", { class: "addresses" }, parts.map(([kind, ip]) => h("span", { class: "addr" }, h("span", { class: "addr-kind" }, kind), " ", h("span", { class: "mono" }, ip))));
}

/** Open the Run diagnostics dialog over the current page. */
export function runDialog(vm) {
  const closeButton = h("button", { type: "button", class: "btn btn-icon", "aria-label": "Close" }, "✕");
  const panel = diagnosticsPanel(vm);
  const dialog = h(
    "dialog",
    { class: "dialog", "aria-label": `Run diagnostics on ${vm.name}`, "data-testid": "run-dialog" },
    h("div", { class: "dialog-head" }, h("h2", {}, "Run diagnostics · ", name(vm.name)), closeButton),
    panel,
  );
  closeButton.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    panel.stopFollowing?.();
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
}

function vmActions(vm) {
  const actions = [{ id: "open", label: "View details", run: () => { location.hash = `#/vm/${vm.id}`; } }];
  if (!cannotRun(vm)) actions.push({ id: "diagnostics", label: "Run diagnostics", run: () => runDialog(vm) });
  actions.push({ id: "history", label: "Diagnostics history", run: () => { location.hash = `#/vm/${vm.id}/history`; } });
  return actions;
}

const vmHint = "Start an agent on a host (cloudiag agent) or the lab (cloudiag demo): its system VMs appear here.";

/** Virtual routers. */
export function routersView(query) {
  return listView(
    {
      title: "Virtual Routers",
      command: "listRouters",
      key: "router",
      open: (vm) => `#/vm/${vm.id}`,
      columns: [
        { label: "Name", cell: (vm) => name(vm.name) },
        { label: "State", cell: (vm) => badge(vm.state) },
        { label: "Addresses", cell: addresses },
        { label: "Host", cell: (vm) => (vm.hostname ? name(vm.hostname) : "—") },
        { label: "Zone", cell: (vm) => (vm.zonename ? name(vm.zonename) : "—") },
      ],
      filters: [
        { name: "state", label: "State", options: VM_STATES },
        { name: "zoneid", label: "Zone", options: zoneOptions },
      ],
      actions: vmActions,
      emptyHint: vmHint,
    },
    query,
  );
}

/** Secondary storage and console proxy VMs. */
export function systemVmsView(query) {
  return listView(
    {
      title: "System VMs",
      command: "listSystemVms",
      key: "systemvm",
      open: (vm) => `#/vm/${vm.id}`,
      columns: [
        { label: "Name", cell: (vm) => name(vm.name) },
        { label: "State", cell: (vm) => badge(vm.state) },
        { label: "Type", cell: (vm) => SYSTEM_VM_TYPES[vm.systemvmtype] || vm.systemvmtype },
        { label: "Addresses", cell: addresses },
        { label: "Host", cell: (vm) => (vm.hostname ? name(vm.hostname) : "—") },
        { label: "Zone", cell: (vm) => (vm.zonename ? name(vm.zonename) : "—") },
      ],
      filters: [
        { name: "systemvmtype", label: "Type", options: [["secondarystoragevm", "Secondary storage"], ["consoleproxy", "Console proxy"]] },
        { name: "state", label: "State", options: VM_STATES },
        { name: "zoneid", label: "Zone", options: zoneOptions },
      ],
      actions: vmActions,
      emptyHint: vmHint,
    },
    query,
  );
}

/** Hosts, with the state their agents' heartbeats give them. */
export function hostsView(query) {
  return listView(
    {
      title: "Hosts",
      command: "listHosts",
      key: "host",
      columns: [
        { label: "Name", cell: (host) => name(host.name) },
        { label: "State", cell: (host) => badge(host.state) },
        { label: "Last heartbeat", cell: (host) => h("span", { title: when(host.lastpinged) }, ago(host.lastpinged)) },
        { label: "Address", cell: (host) => h("span", { class: "mono" }, host.ipaddress || "—") },
        { label: "Zone", cell: (host) => (host.zonename ? name(host.zonename) : "—") },
        { label: "Agent", cell: (host) => host.version || "—" },
      ],
      filters: [
        { name: "state", label: "State", options: [["Up", "Up"], ["Disconnected", "Disconnected"]] },
        { name: "zoneid", label: "Zone", options: zoneOptions },
      ],
      emptyHint: "Start an agent (cloudiag agent) pointed at this server's NATS: its host registers itself.",
    },
    query,
  );
}

/** Zones. */
export function zonesView(query) {
  return listView(
    {
      title: "Zones",
      command: "listZones",
      key: "zone",
      columns: [
        { label: "Name", cell: (zone) => name(zone.name) },
        { label: "State", cell: (zone) => badge(zone.allocationstate) },
        { label: "Network", cell: (zone) => zone.networktype || "—" },
        { label: "Description", cell: (zone) => zone.description || "" },
        { label: "Created", cell: (zone) => when(zone.created) },
      ],
      emptyHint: "Zones come from the agents' reports: start an agent or the lab.",
    },
    query,
  );
}
