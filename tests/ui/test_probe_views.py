"""The package's own checks in the UI: each type's form takes its kind of target (host:port,
a URL), checks it before sending, and shows the parsed summary of a real run in the lab."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.integration.stack import Stack
from tests.ui.conftest import log_in, open_vm_tab, run_form


def test_tcp_dns_http_and_route_summaries(page: Page, ui_stack: Stack, shots: Path) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    web = ui_stack.lab["targets"]["web"]

    run_form(view, "tcp", f"{web}:80", "-w 2")
    expect(view.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=30_000)
    expect(view.get_by_test_id("tcp-summary")).to_contain_text("Stateopen")

    run_form(view, "dns", "lab.test", "-t MX")
    expect(view.get_by_test_id("dns-summary")).to_contain_text("StatusNOERROR", timeout=30_000)
    expect(view.get_by_test_id("dns-answers")).to_contain_text("10 web.lab.test.")

    run_form(view, "http", "https://web.lab.test/", "")
    expect(view.get_by_test_id("http-summary")).to_contain_text("Status200 OK", timeout=30_000)
    expect(view.get_by_test_id("http-certificate")).to_contain_text("CN=web.lab.test")
    expect(view.get_by_test_id("http-timings")).to_contain_text("TLS handshake")
    page.screenshot(path=str(shots / "http.png"), full_page=True)

    run_form(view, "route", web, "")
    expect(view.get_by_test_id("route-summary")).to_contain_text("Interfaceeth2", timeout=30_000)
    expect(view.get_by_test_id("route-interfaces")).to_contain_text("192.0.2.1/24")


def test_the_form_checks_each_kind_of_target_first(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    jobs_before = ui_stack.ok("listAsyncJobs", listall="true").get("count", 0)
    for type_, target, says in (
        ("http", "file:///etc/passwd", "http:// or https://"),
        ("http", "http://user:pass@198.51.100.10/", "user name or password"),
        ("http", "http://198.51.100.10/a b", "a space"),
        ("tcp", "198.51.100.10", "host:port"),
        ("tcp", "198.51.100.10:70000", "1 to 65535"),
    ):
        run_form(view, type_, target, "")
        expect(view.get_by_test_id("error-ipaddress")).to_contain_text(says)
    assert ui_stack.ok("listAsyncJobs", listall="true").get("count", 0) == jobs_before
