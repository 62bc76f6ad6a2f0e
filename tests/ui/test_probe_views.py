"""The package's own checks in the UI: each type's form takes its kind of target (host:port,
a URL), checks it before sending, and shows the parsed summary of a real run in the lab."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from cloudiag.sysvm import errors, validate
from tests.integration.stack import Stack
from tests.ui.conftest import log_in, open_vm_tab, run_form
from tests.unit.test_probe_validation import HOSTILE_URLS


def test_tcp_dns_http_and_route_summaries(page: Page, ui_stack: Stack, shots: Path) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    web = ui_stack.lab["targets"]["web"]

    run_form(view, "tcp", f"{web}:80", "-w 2")
    expect(view.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=30_000)
    expect(view.get_by_test_id("tcp-summary")).to_contain_text("Stateopen")

    view.get_by_test_id("diag-type").select_option("dns")
    expect(view.locator("#f-params-hint")).to_contain_text("-t A|AAAA|MX|TXT|PTR|NS|SOA")
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


GOOD_TARGETS = [
    ("http", "http://198.51.100.10/"),
    ("http", "https://web.lab.test:8443/a?b=c#d"),
    ("http", "HTTP://[2001:db8::1]:8080/x"),
    ("http", "http://web.lab.test"),
    ("http", "https://web.lab.test/%7Euser/;p=1&q=(2)*"),
    ("tcp", "198.51.100.10:80"),
    ("tcp", "web.lab.test:65535"),
    ("tcp", "[2001:db8::1]:443"),
]


def _checked(page: Page, ui_stack: Stack, cases: list[tuple[str, str]]) -> list[str | None]:
    page.goto(f"{ui_stack.url}/")
    types = ui_stack.ok("listDiagnosticsTypes")
    problems: list[str | None] = page.evaluate(
        """async ([cases, types, rules]) => {
            const v = await import("/js/diag/validate.js");
            return cases.map(([name, target]) =>
                v.checkTarget(target, types.find((t) => t.name === name), rules));
        }""",
        [cases, types["diagnosticstype"], types["addressrules"]],
    )
    return problems


def _server_refuses(type_: str, target: str) -> bool:
    try:
        validate.validate(type_, target, "")
    except errors.DiagnosticsInputError:
        return True
    return False


def test_the_browser_and_the_server_agree_on_targets(page: Page, ui_stack: Stack) -> None:
    assert not any(_server_refuses(*case) for case in GOOD_TARGETS)
    assert _checked(page, ui_stack, GOOD_TARGETS) == [None] * len(GOOD_TARGETS)
    # The form trims the destination: what is still hostile once trimmed.
    candidates = [("http", url.strip()) for url in HOSTILE_URLS] + [
        ("tcp", target) for target in ("198.51.100.10", "2001:db8::1:80", "a:0", "-a:1", "a b:1")
    ]
    hostile = [case for case in candidates if _server_refuses(*case)]
    assert len(hostile) >= 25
    missed = [
        case
        for case, problem in zip(hostile, _checked(page, ui_stack, hostile), strict=True)
        if problem is None
    ]
    assert missed == []
