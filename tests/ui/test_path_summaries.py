"""The tracepath and mtr summaries in the web UI, from real runs on the lab (chromium)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.integration.stack import Stack
from tests.ui.conftest import log_in, open_vm_tab, run_form


def test_tracepath_shows_hops_and_the_path_mtu(page: Page, ui_stack: Stack, shots: Path) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    web6 = ui_stack.lab["targets"]["web6"]
    run_form(view, "tracepath", web6, "-n -m 5")
    expect(view.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=60_000)
    rows = view.get_by_test_id("tracepath-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    cells = rows.last.locator("td")
    expect(cells.nth(0)).to_have_text("2")
    # The destination's reply, after the gateway's "fragmentation needed" unless the VM's
    # kernel knew the path MTU already (from an earlier run).
    expect(cells.nth(1)).to_have_text(re.compile(rf"^(\S+, )?{re.escape(web6)}$"))
    # -n: no Name column; Hop, Address, PMTU, Replies.
    expect(cells.nth(2)).to_have_text("1400")
    expect(view).to_contain_text("Path MTU1400")
    expect(view.get_by_test_id("tracepath-chart").locator("rect.bar")).to_have_count(2)
    page.screenshot(path=str(shots / "tracepath.png"), full_page=True)


def test_mtr_shows_loss_and_latency_per_hop(page: Page, ui_stack: Stack, shots: Path) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "secondarystoragevm", "diagnostics")
    web = ui_stack.lab["targets"]["web"]
    run_form(view, "mtr", web, "-n -c 3 -i 0.2")
    expect(view.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=60_000)
    rows = view.get_by_test_id("mtr-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    cells = rows.last.locator("td")
    expect(cells.nth(1)).to_have_text(web)
    # -n: no Name column; Loss, then Sent.
    expect(cells.nth(2)).to_have_text("0 %")
    expect(cells.nth(3)).to_have_text("3")
    expect(view).to_contain_text("Cycles3")
    expect(view.get_by_test_id("mtr-chart").locator("circle.dot")).to_have_count(6)
    page.screenshot(path=str(shots / "mtr.png"), full_page=True)
