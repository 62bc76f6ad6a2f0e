// The app: login gate, top bar with the user and role, and the hash routes.

import { allowed, loadApis, logout, onExpired, session } from "./api.js";
import { empty, failure, h, replace } from "./dom.js";
import { hostsView, routersView, systemVmsView, zonesView } from "./views/infra.js";
import { loginView } from "./views/login.js";
import { vmView } from "./views/vm.js";

const app = document.getElementById("app");
// Each view with the list command it needs: a role sees only the views it may call.
const NAV = [
  ["routers", "Virtual Routers", "listRouters"],
  ["systemvms", "System VMs", "listSystemVms"],
  ["hosts", "Hosts", "listHosts"],
  ["zones", "Zones", "listZones"],
];

function views() {
  return NAV.filter(([, , command]) => allowed(command));
}

function showLogin(notice) {
  replace(app, loginView(route, notice));
}

onExpired(() => showLogin("Your session has expired. Log in again to continue."));

function topBar(user, current) {
  const out = h("button", { type: "button", class: "btn btn-ghost", "data-testid": "logout" }, "Log out");
  out.addEventListener("click", async () => {
    out.disabled = true;
    await logout();
    showLogin("You have logged out.");
  });
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/" }, h("img", { src: "favicon.svg", alt: "", width: 22, height: 22 }), "cloudiag"),
    h("nav", { class: "nav", "aria-label": "Main" }, views().map(([key, label]) => h("a", { href: `#/${key}`, class: "nav-link", "aria-current": key === current ? "page" : false }, label))),
    h("span", { class: "spacer" }),
    h("span", { class: "user", "data-testid": "user" }, h("span", { class: "user-name" }, user.username), h("span", { class: "role", "data-testid": "role" }, user.role)),
    out,
  );
}

function view(parts) {
  const [id, tab] = [parts[1], parts[2]];
  const name = parts[0] === "vm" ? "vm" : views().find(([key]) => key === parts[0])?.[0] || views()[0]?.[0];
  switch (name) {
    case "systemvms":
      return systemVmsView({});
    case "hosts":
      return hostsView({});
    case "zones":
      return zonesView({});
    case "vm":
      return vmView(decodeURIComponent(id || ""), tab);
    case "routers":
      return routersView({});
    default:
      return empty("There is nothing this role can list.", "Ask an administrator for a role with access to the infrastructure.");
  }
}

async function route() {
  const user = session();
  if (!user) return showLogin();
  if (!user.apis?.length) {
    // A reload: the session key survived in this tab; check it is still good.
    try {
      await loadApis();
    } catch (error) {
      // A 401 has already brought the login page back (onExpired).
      if (error.code !== 401) replace(app, failure(error, route));
      return;
    }
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const current = parts[0] === "vm" ? null : views().find(([key]) => key === parts[0])?.[0] || views()[0]?.[0];
  replace(app, topBar(session(), current), h("main", { id: "main", class: "content" }, view(parts)));
}

window.addEventListener("hashchange", route);
route();
