// A list view over one list command: search, filters, pagination, loading/empty/error
// states, and an action menu per row.

import { call } from "../api.js";
import { empty, failure, h, loading, pageButtons, replace } from "../dom.js";

const PAGE_SIZES = [10, 20, 50, 100];

/**
 * spec: {title, command, key, columns: [{label, cell(row)}], filters: [{name, label,
 * options: [[value, label]] | async () => [[value, label]]}], actions(row) -> [{label,
 * run()}], open(row), emptyHint}
 */
export function listView(spec, query = {}) {
  const state = { keyword: query.keyword || "", page: 1, pagesize: 20, filters: {} };
  const root = h("section", { class: "view", "data-testid": `list-${spec.command}` });
  const search = h("input", { type: "search", placeholder: `Search ${spec.title.toLowerCase()}…`, value: state.keyword, "aria-label": `Search ${spec.title}`, "data-testid": "search" });
  const filterBar = h("div", { class: "filters" }, search);
  const body = h("div", { class: "scroll" });
  const pager = h("div", { class: "pager" });
  root.append(h("div", { class: "view-head" }, h("h1", {}, spec.title), filterBar), body, pager);

  for (const filter of spec.filters || []) {
    const select = h("select", { "aria-label": filter.label, "data-testid": `filter-${filter.name}` }, h("option", { value: "" }, `${filter.label}: all`));
    filterBar.append(select);
    Promise.resolve(typeof filter.options === "function" ? filter.options() : filter.options)
      .then((options) => select.append(...options.map(([value, label]) => h("option", { value }, `${filter.label}: ${label}`))))
      .catch(() => {});
    select.addEventListener("change", () => {
      state.filters[filter.name] = select.value;
      state.page = 1;
      load();
    });
  }
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.keyword = search.value.trim();
      state.page = 1;
      load();
    }, 250);
  });

  let generation = 0;
  async function load() {
    const mine = ++generation;
    replace(body, loading(`Loading ${spec.title.toLowerCase()}…`));
    try {
      const answer = await call(spec.command, { keyword: state.keyword, page: state.page, pagesize: state.pagesize, ...state.filters });
      if (mine !== generation) return; // A newer search is on its way.
      const rows = answer[spec.key] || [];
      const count = answer.count ?? rows.length;
      if (!rows.length) {
        const filtered = state.keyword || Object.values(state.filters).some(Boolean);
        replace(body, filtered ? empty(`No ${spec.title.toLowerCase()} match.`, "Clear the search or the filters.") : empty(`No ${spec.title.toLowerCase()} yet.`, spec.emptyHint));
        replace(pager);
        return;
      }
      replace(body, table(rows));
      paginate(count);
    } catch (error) {
      if (mine === generation) replace(body, failure(error, load));
    }
  }

  function paginate(count) {
    const last = Math.max(1, Math.ceil(count / state.pagesize));
    const first = (state.page - 1) * state.pagesize + 1;
    const size = h("select", { "aria-label": "Rows per page" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.pagesize }, `${n} per page`)));
    size.addEventListener("change", () => {
      state.pagesize = Number(size.value);
      state.page = 1;
      load();
    });
    replace(
      pager,
      h("span", { class: "muted", "data-testid": "count" }, `${first}–${Math.min(count, first + state.pagesize - 1)} of ${count}`),
      pageButtons(state.page, last, (page) => {
        state.page = page;
        load();
      }),
      size,
    );
  }

  function table(rows) {
    return h(
      "table",
      { class: "table rows" },
      h("thead", {}, h("tr", {}, spec.columns.map((c) => h("th", {}, c.label)), h("th", { class: "actions-col" }, h("span", { class: "sr-only" }, "Actions")))),
      h(
        "tbody",
        {},
        rows.map((row) => {
          const tr = h("tr", { "data-id": row.id, "data-name": row.name }, spec.columns.map((c, i) => h("td", { "data-label": c.label }, i === 0 && spec.open ? h("a", { href: spec.open(row) }, c.cell(row)) : c.cell(row))));
          tr.append(h("td", { class: "actions-col" }, actionMenu(row, spec.actions ? spec.actions(row) : [])));
          return tr;
        }),
      ),
    );
  }

  load();
  return root;
}

/** The "⋯" menu of a row: shown on hover and on keyboard focus. */
export function actionMenu(row, actions) {
  if (!actions.length) return "";
  const button = h("button", { type: "button", class: "btn btn-icon row-menu", "aria-haspopup": "menu", "aria-expanded": "false", "aria-label": `Actions for ${row.name}`, "data-testid": "row-actions" }, "⋯");
  // A layer above the page (not inside the table, whose scroll box would clip it).
  const menu = h("div", { class: "menu", role: "menu", hidden: true, "aria-label": `Actions for ${row.name}` });
  const close = () => {
    menu.hidden = true;
    menu.remove();
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("click", outside, true);
    window.removeEventListener("scroll", close, true);
    window.removeEventListener("resize", close);
  };
  const place = () => {
    const at = button.getBoundingClientRect();
    menu.style.right = `${Math.max(8, window.innerWidth - at.right)}px`;
    const below = window.innerHeight - at.bottom;
    // Open upwards when the menu would not fit below the button.
    if (below < menu.offsetHeight + 8 && at.top > below) {
      menu.style.top = "";
      menu.style.bottom = `${window.innerHeight - at.top + 4}px`;
    } else {
      menu.style.bottom = "";
      menu.style.top = `${at.bottom + 4}px`;
    }
  };
  const outside = (event) => {
    if (!menu.contains(event.target) && event.target !== button) close();
  };
  for (const action of actions) {
    const item = h("button", { type: "button", role: "menuitem", class: "menu-item", "data-testid": `action-${action.id}` }, action.label);
    item.addEventListener("click", () => {
      close();
      action.run();
    });
    menu.append(item);
  }
  button.addEventListener("click", () => {
    if (!menu.hidden) return close();
    document.body.append(menu);
    menu.hidden = false;
    place();
    button.setAttribute("aria-expanded", "true");
    menu.querySelector("button")?.focus();
    document.addEventListener("click", outside, true);
    window.addEventListener("scroll", close, true);
    window.addEventListener("resize", close);
  });
  menu.addEventListener("keydown", (event) => {
    const items = [...menu.querySelectorAll("button")];
    const at = items.indexOf(document.activeElement);
    if (event.key === "Escape") {
      close();
      button.focus();
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      items[(at + 1) % items.length].focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      items[(at - 1 + items.length) % items.length].focus();
    }
  });
  return h("div", { class: "menu-wrap" }, button);
}
