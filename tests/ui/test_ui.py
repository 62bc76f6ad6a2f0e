"""The web UI against a real stack on the lab, in Debian's chromium (Playwright).

Each test drives the UI as an operator would and checks what the page shows against what
the lab really is (addresses, MACs, processes in the VM's namespace).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.integration.stack import Account, Stack, cloudiag, tool_pids
from tests.ui.conftest import log_in, open_run_dialog, open_vm_tab, run_form, vm_row

HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def _jobs(stack: Stack, role: str) -> int:
    body = stack.ok("listAsyncJobs", instanceid=stack.vm(role)["uuid"], listall="true")
    return int(body.get("count", 0))


def _account(stack: Stack, name: str, role: str) -> Account:
    """A new account made with `cloudiag user create`, as an operator makes one."""
    out = cloudiag(
        "user", "create", name, "--role", role, "--json",
        "--database-url", stack.database_url, "--data-dir", str(stack.data_dir),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    return Account(made["username"], made["password"], made["apikey"], made["secretkey"], role)


def _mac_of(stack: Stack, address: str) -> str:
    """The MAC of the lab interface that holds `address`."""
    for ns in stack.lab["namespaces"]:
        for iface in ns.get("interfaces", []):
            if iface.get("address") == address:
                return str(iface["mac"])
    raise AssertionError(f"no lab interface has {address}")


def test_login_shows_user_and_role_then_logout(page: Page, ui_stack: Stack, shots: Path) -> None:
    page.goto(f"{ui_stack.url}/")
    page.get_by_test_id("login-username").fill(ui_stack.admin.username)
    page.get_by_test_id("login-password").fill("wrong password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("Failed to authenticate")
    page.screenshot(path=str(shots / "login.png"))
    log_in(page, ui_stack, ui_stack.admin)
    expect(page.get_by_test_id("user")).to_contain_text(ui_stack.admin.username)
    expect(page.get_by_test_id("role")).to_have_text("Admin")
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-notice")).to_contain_text("logged out")
    page.reload()  # the session is gone on the server and in the tab
    expect(page.get_by_test_id("login-submit")).to_be_visible()


def test_expired_session_gives_the_login_page(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    expect(vm_row(page, ui_stack.vm("router")["name"])).to_be_visible()
    # The server forgets the session (as after its timeout): the next call answers 401.
    page.context.clear_cookies()
    page.get_by_role("link", name="Hosts").click()
    expect(page.get_by_test_id("login-notice")).to_contain_text("session has expired")
    # Logging in again goes on where the session ended.
    log_in(page, ui_stack, ui_stack.admin, open_ui=False)
    expect(page.get_by_test_id("list-listHosts")).to_contain_text("Up")


def test_lists_search_filter_and_host_heartbeat(page: Page, ui_stack: Stack, shots: Path) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    page.get_by_role("link", name="System VMs").click()
    listing = page.get_by_test_id("list-listSystemVms")
    ssvm, cpvm = ui_stack.vm("secondarystoragevm")["name"], ui_stack.vm("consoleproxy")["name"]
    expect(vm_row(page, ssvm)).to_be_visible()
    expect(vm_row(page, cpvm)).to_be_visible()
    expect(listing.get_by_test_id("count")).to_have_text("1\u20132 of 2")
    listing.get_by_test_id("filter-systemvmtype").select_option("consoleproxy")
    expect(vm_row(page, ssvm)).to_have_count(0)
    expect(vm_row(page, cpvm)).to_be_visible()
    listing.get_by_test_id("filter-systemvmtype").select_option("")
    listing.get_by_test_id("search").fill("no-such-vm")
    expect(listing).to_contain_text("No system vms match")
    page.get_by_role("link", name="Hosts").click()
    hosts = page.get_by_test_id("list-listHosts")
    expect(hosts.locator("tbody tr")).to_have_count(1)
    expect(hosts).to_contain_text("Up")
    expect(hosts).to_contain_text(re.compile(r"\d+ s ago"))
    page.screenshot(path=str(shots / "hosts.png"))


def test_ping_from_the_router_menu_live_parsed_and_plotted(
    page: Page, ui_stack: Stack, shots: Path
) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    router = ui_stack.vm("router")["name"]
    page.screenshot(path=str(shots / "routers.png"))
    dialog = open_run_dialog(page, router)
    run_form(dialog, "ping", ui_stack.lab["targets"]["web"], "-c 5 -i 0.5")
    live = dialog.get_by_test_id("live-output")
    expect(live).to_contain_text("icmp_seq=1")
    # The first reply is on screen while the job is still running on the VM.
    jobid = dialog.locator(".live-run").get_attribute("data-jobid")
    assert jobid
    assert ui_stack.ok("queryAsyncJobResult", jobid=jobid)["jobstatus"] == 0
    expect(dialog.get_by_test_id("exit-badge")).to_have_count(0)
    expect(dialog.get_by_test_id("cancel")).to_be_enabled()
    page.screenshot(path=str(shots / "ping-live.png"))
    expect(dialog.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=30_000)
    summary = dialog.get_by_test_id("ping-summary")
    expect(summary).to_contain_text("Sent5")
    expect(summary).to_contain_text("Received5")
    expect(summary).to_contain_text("Loss0 %")
    expect(summary).to_contain_text(re.compile(r"avg\s*\d+\.\d+ ms"))
    chart = dialog.get_by_test_id("rtt-chart")
    expect(chart.locator("circle.dot")).to_have_count(5)
    expect(dialog.get_by_test_id("stdout")).to_contain_text("5 packets transmitted, 5 received")
    page.screenshot(path=str(shots / "ping-result.png"))


def test_a_ping_without_replies_plots_its_losses(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    run_form(view, "ping", ui_stack.lab["targets"]["unreachable"], "-c 2 -W 1")
    expect(view.get_by_test_id("exit-badge")).to_have_text(re.compile(r"exit [12]"))
    expect(view.get_by_test_id("ping-summary")).to_contain_text("Loss100 %")
    chart = view.get_by_test_id("rtt-chart")
    expect(chart.locator("text.miss")).to_have_count(2)
    expect(chart).to_contain_text("no reply")


def test_traceroute_from_the_ssvm_shows_hops(page: Page, ui_stack: Stack, shots: Path) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "secondarystoragevm", "diagnostics")
    web = ui_stack.lab["targets"]["web"]
    run_form(view, "traceroute", web, "-n -q 2")
    expect(view.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=60_000)
    hops = view.get_by_test_id("hop-table").locator("tbody tr")
    assert hops.count() >= 2
    expect(hops.last.locator("td").nth(1)).to_have_text(web)
    expect(hops.first.locator("td").first).to_have_text("1")
    expect(view.get_by_test_id("hop-chart").locator("rect.bar")).to_have_count(hops.count())
    page.screenshot(path=str(shots / "traceroute.png"), full_page=True)


def test_arping_from_the_cpvm_shows_the_gateway_mac(
    page: Page, ui_stack: Stack, shots: Path
) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "consoleproxy", "diagnostics")
    gateway = ui_stack.lab["targets"]["gateway"]
    run_form(view, "arping", gateway, "-c 2")
    expect(view.get_by_test_id("exit-badge")).to_have_text("exit 0", timeout=30_000)
    mac = _mac_of(ui_stack, gateway)
    replies = view.get_by_test_id("arping-replies")
    expect(replies.locator("td.mac").first).to_have_text(re.compile(mac, re.IGNORECASE))
    expect(view.get_by_test_id("arping-summary")).to_contain_text("MACs seen1")
    expect(view.get_by_test_id("duplicate-warning")).to_have_count(0)
    page.screenshot(path=str(shots / "arping.png"), full_page=True)


def test_bad_input_is_shown_at_its_field_and_runs_nothing(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    before = _jobs(ui_stack, "router")
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    web = ui_stack.lab["targets"]["web"]
    # The browser's own check (the server's rules, from listDiagnosticsTypes).
    run_form(view, "ping", f"{web};reboot", "")
    expect(view.get_by_test_id("error-ipaddress")).to_contain_text('cannot contain ";"')
    expect(view.get_by_test_id("diag-address")).to_have_attribute("aria-invalid", "true")
    # What only the server knows: its text appears beside the field it concerns.
    run_form(view, "ping6", web, "")
    expect(view.get_by_test_id("error-ipaddress")).to_contain_text("ping6 needs an IPv6 address")
    run_form(view, "ping", web, "-c 100 -i 60")
    expect(view.get_by_test_id("error-params")).to_contain_text("more than the limit of 120 s")
    expect(view.get_by_test_id("error-ipaddress")).to_be_empty()
    expect(view.get_by_test_id("live-output")).to_have_count(0)
    assert _jobs(ui_stack, "router") == before


def test_user_and_domain_admin_get_no_run_action(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.user)
    expect(page.get_by_test_id("role")).to_have_text("User")
    # A User lists no system VMs: only the zones, without actions.
    expect(page.get_by_role("link", name="Virtual Routers")).to_have_count(0)
    expect(page.get_by_test_id("list-listZones").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("row-actions")).to_have_count(0)
    open_vm_tab(page, ui_stack, "router", "diagnostics")
    expect(page.get_by_test_id("vm-view")).to_contain_text("No system VM or router")
    expect(page.get_by_test_id("diag-run")).to_have_count(0)
    page.get_by_test_id("logout").click()
    # A DomainAdmin sees the routers but may not call runDiagnostics.
    domain_admin = _account(ui_stack, "uidomainadmin", "domainadmin")
    log_in(page, ui_stack, domain_admin)
    row = vm_row(page, ui_stack.vm("router")["name"])
    row.hover()
    row.get_by_test_id("row-actions").click()
    expect(page.get_by_test_id("action-open")).to_be_visible()
    expect(page.get_by_test_id("action-diagnostics")).to_have_count(0)
    open_vm_tab(page, ui_stack, "router", "diagnostics")
    expect(page.get_by_test_id("diagnostics-panel")).to_contain_text(
        "Your role cannot run diagnostics"
    )
    expect(page.get_by_test_id("diag-run")).to_have_count(0)


def _no_markup_ran(page: Page) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("#app script").count() == 0


def test_hostile_text_is_shown_as_text(page: Page, ui_stack: Stack) -> None:
    # 1. Echoed by the server: the login error repeats the username it was given.
    page.goto(f"{ui_stack.url}/")
    page.get_by_test_id("login-username").fill(HOSTILE)
    page.get_by_test_id("login-password").fill("nope")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_contain_text(HOSTILE)
    _no_markup_ran(page)
    # 2. Stored: a user whose name is markup runs a diagnostic; its name is shown in the
    # top bar and in the VM's history.
    name = '<img/src=x/onerror="window.__xss=3">'
    hostile_admin = _account(ui_stack, name, "admin")
    log_in(page, ui_stack, hostile_admin)
    expect(page.get_by_test_id("user")).to_contain_text(name)
    r = ui_stack.call(
        "runDiagnostics",
        hostile_admin,
        targetid=ui_stack.vm("router")["uuid"],
        type="ping",
        ipaddress=ui_stack.lab["targets"]["web"],
        params="-c 1",
    )
    assert r.status_code == 200, r.text
    ui_stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])
    view = open_vm_tab(page, ui_stack, "router", "history")
    expect(view.get_by_test_id("history-table")).to_contain_text(name)
    _no_markup_ran(page)
    # 3. Tool output: whatever a run prints (a reverse name, a banner) is rendered as text,
    # here through the UI's own result view with output no lab tool can be made to print.
    hostile_job: dict[str, Any] = {
        "jobstatus": 1,
        "created": "2026-11-25T09:00:00+0000",
        "completed": "2026-11-25T09:00:01+0000",
        "request": {"type": "traceroute", "ipaddress": "198.51.100.10", "params": []},
        "jobresult": {
            "diagnostics": {
                "stdout": f"1  {HOSTILE} (203.0.113.1)  0.1 ms",
                "stderr": HOSTILE,
                "exitcode": "0",
                "durationms": 10,
                "parsed": {
                    "type": "traceroute",
                    "dst_addr": "198.51.100.10",
                    "dst_name": HOSTILE,
                    "result": [
                        {
                            "hop": 1,
                            "result": [
                                {
                                    "from": "203.0.113.1",
                                    "name": HOSTILE,
                                    "rtt": 0.1,
                                    "annotation": HOSTILE,
                                }
                            ],
                        }
                    ],
                    "reached": False,
                },
            }
        },
    }
    page.evaluate(
        """async (job) => {
            const { resultView } = await import("/js/diag/result.js");
            const box = document.createElement("div");
            box.id = "hostile";
            box.append(resultView(job));
            document.getElementById("app").append(box);
        }""",
        hostile_job,
    )
    hostile = page.locator("#hostile")
    expect(hostile.get_by_test_id("stdout")).to_contain_text(HOSTILE)
    expect(hostile.get_by_test_id("stderr")).to_have_text(HOSTILE)
    expect(hostile.get_by_test_id("hop-table")).to_contain_text(HOSTILE)
    page.wait_for_timeout(300)  # an injected onerror would have fired by now
    _no_markup_ran(page)


def test_cancel_stops_the_traceroute_on_the_vm(page: Page, ui_stack: Stack, shots: Path) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    vm = ui_stack.vm("router")
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    run_form(view, "traceroute", ui_stack.lab["targets"]["unreachable"], "-n -q 3 -w 5 -m 30")
    ui_stack.wait_for(lambda: bool(tool_pids(vm["namespace"], "traceroute")), "traceroute to run")
    expect(view.get_by_test_id("run-status")).to_contain_text("Running")
    view.get_by_test_id("cancel").click()
    expect(view.get_by_test_id("exit-badge")).to_have_text("Cancelled", timeout=15_000)
    expect(view.get_by_test_id("job-error")).to_contain_text(
        f"Cancelled by {ui_stack.admin.username}"
    )
    assert tool_pids(vm["namespace"], "traceroute") == []
    page.screenshot(path=str(shots / "cancelled.png"), full_page=True)


def test_history_reopens_a_past_run_with_its_charts(
    page: Page, ui_stack: Stack, shots: Path
) -> None:
    done = ui_stack.run("consoleproxy", "ping", ui_stack.lab["targets"]["web"], "-c 3")
    assert done["jobstatus"] == 1
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "consoleproxy", "history")
    row = view.locator(f'tr[data-jobid="{done["jobid"]}"]')
    expect(row).to_contain_text("ping")
    expect(row).to_contain_text(ui_stack.admin.username)
    expect(row).to_contain_text("exit 0")
    row.get_by_role("button", name="Open").click()
    result = view.get_by_test_id("result")
    expect(result.get_by_test_id("stdout")).to_contain_text("3 packets transmitted, 3 received")
    expect(result.get_by_test_id("rtt-chart").locator("circle.dot")).to_have_count(3)
    page.screenshot(path=str(shots / "history.png"), full_page=True)
    # Run again with the same request from the history.
    result.get_by_test_id("run-again").click()
    expect(view.get_by_test_id("diag-address")).to_have_value(ui_stack.lab["targets"]["web"])
    expect(view.get_by_test_id("diag-params")).to_have_value("-c 3")


def test_readable_at_800_pixels(page: Page, ui_stack: Stack, shots: Path) -> None:
    page.set_viewport_size({"width": 800, "height": 900})
    log_in(page, ui_stack, ui_stack.admin)
    expect(vm_row(page, ui_stack.vm("router")["name"])).to_be_visible()
    view = open_vm_tab(page, ui_stack, "router", "diagnostics")
    expect(view.get_by_test_id("diag-run")).to_be_visible()
    # Nothing wider than the window: no sideways scrolling of the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    page.screenshot(path=str(shots / "narrow.png"), full_page=True)
