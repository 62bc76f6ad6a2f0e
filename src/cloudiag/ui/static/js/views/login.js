// The login page: username, password, optional domain; the server's answer shown as is.

import { login } from "../api.js";
import { h } from "../dom.js";

/** The login form; onDone() after a successful login. notice: a line above the form. */
export function loginView(onDone, notice) {
  const username = h("input", { id: "login-user", name: "username", autocomplete: "username", required: true, "data-testid": "login-username" });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true, "data-testid": "login-password" });
  const domain = h("input", { id: "login-domain", name: "domain", placeholder: "/", autocomplete: "off" });
  const error = h("p", { class: "field-error", role: "alert", "data-testid": "login-error" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "login-submit" }, "Log in");
  const form = h(
    "form",
    { class: "login-card" },
    h("div", { class: "brand big" }, h("img", { src: "favicon.svg", alt: "", width: 28, height: 28 }), "cloudiag"),
    h("p", { class: "muted" }, "Network diagnostics inside your system VMs"),
    notice ? h("p", { class: "notice", role: "status", "data-testid": "login-notice" }, notice) : null,
    h("div", { class: "field" }, h("label", { for: "login-user" }, "Username"), username),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
    h("div", { class: "field" }, h("label", { for: "login-domain" }, "Domain (optional)"), domain),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    submit.textContent = "Logging in…";
    try {
      await login(username.value.trim(), password.value, domain.value.trim());
      onDone();
    } catch (failure) {
      error.textContent = failure.message;
      submit.disabled = false;
      submit.textContent = "Log in";
      password.select();
    }
  });
  queueMicrotask(() => username.focus());
  return h("main", { id: "main", class: "login-page" }, form);
}
