"""Text that must stay whole: option names in error text, VM names in narrow lists.

A break is found as the browser lays the text out: the client rectangles of a piece of text
on more than one line.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.integration.stack import Stack, tool_pids
from tests.ui.conftest import log_in, open_run_dialog, open_vm_tab, run_form

#: The pieces of an element's text (matching a pattern) laid out on more than one line, for
#: each width the element is given: the text nodes are walked so markup inside is no matter.
BROKEN_PIECES_JS = """(el, [pattern, widths]) => {
    const nodes = [];
    let length = 0;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        nodes.push([walker.currentNode, length]);
        length += walker.currentNode.length;
    }
    const at = (offset) => {
        const [node, start] = nodes.findLast(([, start]) => start <= offset);
        return [node, offset - start];
    };
    const lines = (from, to) => {
        const range = document.createRange();
        range.setStart(...at(from));
        const [node, offset] = at(to - 1);
        range.setEnd(node, offset + 1);
        const tops = [...range.getClientRects()].filter((r) => r.width > 0).map((r) => r.top);
        return new Set(tops.map((top) => Math.round(top / 4))).size;
    };
    const broken = [];
    for (const width of widths) {
        if (width) el.style.width = `${width}px`;
        for (const match of el.textContent.matchAll(new RegExp(pattern, "g"))) {
            if (lines(match.index, match.index + match[0].length) > 1) {
                broken.push(`${match[0]} at ${width || el.clientWidth} px`);
            }
        }
    }
    return broken;
}"""
OPTION = r"(?<![\w-])--?[A-Za-z0-9][A-Za-z0-9-]*"


def _broken(element: Locator, pattern: str, widths: list[int]) -> list[str]:
    """The pieces of the element's text broken across lines (0 in widths: as it is)."""
    found: list[str] = element.evaluate(BROKEN_PIECES_JS, [pattern, widths])
    return found


def test_option_names_in_error_text_never_break(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    # The browser's refusal lists every allowed option; the server's refusal is shown alike.
    run_form(view, "ping", ui_stack.lab["targets"]["web"], "-z")
    error = view.get_by_test_id("error-params")
    expect(error).to_contain_text("allowed: -4, -6, -I")
    assert _broken(error, OPTION, [0, *range(120, 420, 3)]) == []
    run_form(view, "traceroute", ui_stack.lab["targets"]["web"], "-I -T")
    expect(error).to_contain_text("cannot be used together")
    assert _broken(error, OPTION, [0, *range(120, 420, 3)]) == []


def test_vm_names_never_break_at_800_pixels(page: Page, ui_stack: Stack) -> None:
    page.set_viewport_size({"width": 800, "height": 900})
    log_in(page, ui_stack, ui_stack.admin)
    roles = ("router", "secondarystoragevm", "consoleproxy")
    pattern = "|".join(re.escape(ui_stack.vm(role)["name"]) for role in roles)
    for link, listing in (("Virtual Routers", "listRouters"), ("System VMs", "listSystemVms")):
        page.get_by_role("link", name=link).click()
        table = page.get_by_test_id(f"list-{listing}").locator("table")
        expect(table.locator("tbody tr").first).to_be_visible()
        assert _broken(table, pattern, [0]) == [], link
        assert page.evaluate("document.documentElement.scrollWidth") <= 800


def _on_one_line(view: Locator) -> None:
    """The result's buttons sit whole on the line of its badge."""
    badge = view.get_by_test_id("exit-badge").bounding_box()
    again = view.get_by_test_id("run-again").bounding_box()
    copy = view.get_by_test_id("copy-output").bounding_box()
    assert badge and again and copy
    assert again["y"] < badge["y"] + badge["height"], (badge, again)
    assert again["height"] == copy["height"], (again, copy)


def _cancel_a_traceroute(view: Locator, stack: Stack) -> None:
    vm = stack.vm("router")
    run_form(view, "traceroute", stack.lab["targets"]["unreachable"], "-n -q 3 -w 5 -m 30")
    stack.wait_for(lambda: bool(tool_pids(vm["namespace"], "traceroute")), "traceroute to run")
    view.get_by_test_id("cancel").click()
    expect(view.get_by_test_id("exit-badge")).to_have_text("Cancelled", timeout=15_000)


def test_run_again_stays_on_the_result_line_after_a_cancel(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    # In the dialog over the list (960 px wide at most), then in the VM's tab.
    dialog = open_run_dialog(page, ui_stack.vm("router")["name"])
    _cancel_a_traceroute(dialog, ui_stack)
    _on_one_line(dialog)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    tab = open_vm_tab(page, ui_stack, "router", "diagnostics")
    _cancel_a_traceroute(tab, ui_stack)
    _on_one_line(tab)
