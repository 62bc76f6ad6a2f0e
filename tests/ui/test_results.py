"""What the UI says about finished runs: whether they reached their destination, when (with
the time zone), and never a stale result beside a refused request.

Each test checks what the page shows against what the lab did (the job the API returns).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from playwright.sync_api import Browser, Page, expect

from cloudiag.parsers import parse
from tests.integration.stack import Stack
from tests.ui.conftest import CHROMIUM_VIEWPORT, log_in, open_vm_tab, run_form
from tests.unit.test_parsers import REAL_LAB_PING_UNREACHABLE, REAL_LAB_TRACE_PARTIAL


def test_history_says_whether_each_run_reached_its_destination(page: Page, ui_stack: Stack) -> None:
    targets = ui_stack.lab["targets"]
    lost = ui_stack.run("router", "traceroute", targets["unreachable"], "-n -q 1 -w 1 -m 2")
    reached = ui_stack.run("router", "ping", targets["web"], "-c 2 -i 0.2")
    # traceroute exits 0 whether or not the destination answered.
    assert str(lost["jobresult"]["diagnostics"]["exitcode"]) == "0"
    assert lost["jobresult"]["diagnostics"]["parsed"]["reached"] is False
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "history")
    expect(view.get_by_test_id("history-table").locator("thead")).to_contain_text("Result")
    lost_row = view.locator(f'tr[data-jobid="{lost["jobid"]}"]')
    expect(lost_row.get_by_test_id("verdict")).to_have_text(re.compile(r"^not reached"))
    expect(lost_row.get_by_test_id("verdict").locator(".badge")).to_have_class(
        re.compile(r"\bbadge-bad\b")
    )
    # Its exit code is shown as it is, but not as a success.
    exit_badge = lost_row.locator(".badge", has_text="exit 0")
    expect(exit_badge).to_have_count(1)
    expect(exit_badge).not_to_have_class(re.compile(r"\bbadge-ok\b"))
    reached_row = view.locator(f'tr[data-jobid="{reached["jobid"]}"]')
    expect(reached_row.get_by_test_id("verdict")).to_have_text("reached · 0 % loss")
    expect(reached_row.get_by_test_id("verdict").locator(".badge")).to_have_class(
        re.compile(r"\bbadge-ok\b")
    )
    expect(reached_row.locator(".badge", has_text="exit 0")).to_have_class(
        re.compile(r"\bbadge-ok\b")
    )


def test_times_say_their_time_zone(browser: Browser, ui_stack: Stack) -> None:
    done = ui_stack.run("consoleproxy", "ping", ui_stack.lab["targets"]["web"], "-c 1")
    created = datetime.strptime(done["created"], "%Y-%m-%dT%H:%M:%S%z")
    for zone, offset, label in (
        ("Asia/Kolkata", timedelta(hours=5, minutes=30), "UTC+05:30"),
        ("America/Caracas", timedelta(hours=-4), "UTC-04:00"),
        ("UTC", timedelta(0), "UTC"),
    ):
        context = browser.new_context(viewport=CHROMIUM_VIEWPORT, timezone_id=zone)
        try:
            page = context.new_page()
            log_in(page, ui_stack, ui_stack.admin)
            view = open_vm_tab(page, ui_stack, "consoleproxy", "history")
            local = created.astimezone(timezone(offset)).strftime("%Y-%m-%d %H:%M:%S")
            cell = view.locator(f'tr[data-jobid="{done["jobid"]}"] td').first
            expect(cell).to_have_text(f"{local} {label}")
        finally:
            context.close()


def test_a_refused_request_leaves_no_earlier_result_beneath(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    web = ui_stack.lab["targets"]["web"]
    # Refused by the server (the time the options add up to), then by the browser's check.
    for refused in ("-c 100 -i 60", "-c 0"):
        run_form(view, "ping", web, "-c 1")
        expect(view.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=30_000)
        run_form(view, "ping", web, refused)
        expect(view.get_by_test_id("error-params")).not_to_be_empty()
        expect(view.get_by_test_id("result")).to_have_count(0)
        expect(view.get_by_test_id("stdout")).to_have_count(0)


def test_the_destination_placeholder_suggests_what_the_lab_answers(
    page: Page, ui_stack: Stack
) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    placeholder = view.get_by_test_id("diag-address").get_attribute("placeholder")
    assert placeholder
    suggestions = placeholder.split(" or ")
    assert len(suggestions) == 2, placeholder
    for destination in suggestions:
        done = ui_stack.run("router", "ping", destination, "-c 1 -W 2")
        diagnostics = done["jobresult"]["diagnostics"]
        assert str(diagnostics["exitcode"]) == "0", (destination, diagnostics["stderr"])


#: Puts resultView(job) of the UI's own module on the page, after declaring the types'
#: summary modules as listDiagnosticsTypes would.
SHOW_RESULT_JS = """async ([job, types, id]) => {
    const { resultView } = await import("/js/diag/result.js");
    const { declareSummaries } = await import("/js/diag/summary.js");
    declareSummaries(types);
    const box = document.createElement("div");
    box.id = id;
    box.append(resultView(job));
    document.getElementById("app").append(box);
}"""


def _job(type_: str, parsed: dict[str, Any]) -> dict[str, Any]:
    return {
        "jobstatus": 1,
        "created": "2026-11-25T09:00:00+0000",
        "completed": "2026-11-25T09:00:01+0000",
        "request": {"type": type_, "ipaddress": "198.51.100.10", "params": []},
        "jobresult": {
            "diagnostics": {"stdout": "", "stderr": "", "exitcode": "0", "parsed": parsed}
        },
    }


def test_a_type_gets_its_declared_summary_or_the_generic_one(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    # A type no module is named for: its fields, plainly; the verdict from reached and loss.
    parsed = {"type": "nmap", "destination": "198.51.100.10", "reached": False, "loss": 50.0}
    page.evaluate(SHOW_RESULT_JS, [_job("nmap", parsed), [], "generic"])
    generic = page.locator("#generic")
    expect(generic.get_by_test_id("generic-summary")).to_contain_text("destination198.51.100.10")
    expect(generic.get_by_test_id("generic-summary")).to_contain_text("reachedfalse")
    expect(generic.get_by_test_id("exit-badge")).to_have_class(re.compile(r"\bbadge-bad\b"))
    # A type that declares another type's module (as ping6 could ping's) gets that one.
    ping = {"type": "ping9", "sent": 2, "rcvd": 2, "loss": 0.0, "result": []}
    page.evaluate(
        SHOW_RESULT_JS, [_job("ping9", ping), [{"name": "ping9", "uisummary": "ping"}], "declared"]
    )
    declared = page.locator("#declared")
    expect(declared.get_by_test_id("ping-summary")).to_contain_text("Received2")
    expect(declared.get_by_test_id("exit-badge")).to_have_class(re.compile(r"\bbadge-ok\b"))


def test_summaries_of_real_lab_output_show_timeouts_names_and_no_rtt(
    page: Page, ui_stack: Stack
) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    # What the server stores for a traceroute the VM ran to the address it pinned the
    # name to, with probes the routers did not answer (Atlas's {"x": "*"}).
    trace = parse("traceroute", REAL_LAB_TRACE_PARTIAL, target="web.lab.test")
    page.evaluate(SHOW_RESULT_JS, [_job("traceroute", trace), [], "trace"])
    shown = page.locator("#trace")
    rows = shown.get_by_test_id("hop-table").locator("tbody tr")
    expect(rows).to_have_count(7)
    # TTL, Address, RTTs (no Name column: -n).
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("203.0.113.1")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text(re.compile(r"^0\.044 ms\s+\*\s+\*$"))
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("*")
    expect(rows.nth(6).locator("td").nth(1)).to_have_text("198.51.100.10")
    expect(shown).to_contain_text("web.lab.test (198.51.100.10)")
    # A bar for each hop that answered, "*" for the five that did not; a dot per answer.
    chart = shown.get_by_test_id("hop-chart")
    expect(chart.locator("rect.bar")).to_have_count(2)
    expect(chart.locator("text.miss")).to_have_count(5)
    expect(chart.locator("circle.dot")).to_have_count(3)
    # A ping nothing answered: Atlas's -1 statistics are shown as no value, each probe
    # as a miss, and the router's messages.
    lost = parse("ping", REAL_LAB_PING_UNREACHABLE)
    page.evaluate(SHOW_RESULT_JS, [_job("ping", lost), [], "lost"])
    summary = page.locator("#lost").get_by_test_id("ping-summary")
    expect(summary).to_contain_text("min—")
    expect(summary).not_to_contain_text("-1")
    expect(page.locator("#lost").get_by_test_id("rtt-chart").locator("text.miss")).to_have_count(4)
    expect(page.locator("#lost")).to_contain_text(
        "icmp_seq 1: Destination Host Unreachable (from 203.0.113.1)"
    )
    expect(page.locator("#lost").get_by_test_id("exit-badge")).to_have_class(
        re.compile(r"\bbadge-bad\b")
    )
