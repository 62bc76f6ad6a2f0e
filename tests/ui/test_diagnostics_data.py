"""getDiagnosticsData from the web UI, in Debian's chromium: the VM's defaults offered as a
file picker, the job run on the lab VM, the zip downloaded from the page's link and its
members checked; a hostile item refused in the page; the link refused to another user."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from playwright.sync_api import Page, expect

from cloudiag.sysvm import collect
from tests.integration.stack import Stack
from tests.ui.conftest import log_in, open_vm_tab


def test_get_diagnostics_data_picks_files_and_downloads_the_zip(
    page: Page, ui_stack: Stack, shots: Path
) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "data")
    form = view.get_by_test_id("data-form")
    # The picker offers the router's defaults, every one chosen.
    for item in collect.ROUTER_DEFAULTS:
        expect(form.get_by_test_id(f"data-file-{item}")).to_be_checked()
    # Keep only the network state and one file, and add one by hand.
    for item in collect.ROUTER_DEFAULTS:
        if item not in ("ipaddr", "iproute"):
            form.get_by_test_id(f"data-file-{item}").uncheck()
    form.get_by_test_id("data-extra").fill("/etc/hosts, /etc/no-such-file")
    form.get_by_test_id("data-get").click()
    link = form.get_by_test_id("data-download")
    expect(link).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "diagnostics-data.png"))
    with page.expect_download() as waited:
        link.click()
    download = waited.value
    archive = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes()))
    assert set(archive.namelist()) == {"ipaddr.txt", "iproute.txt", "etc/hosts", "fileinfo.txt"}
    assert str(ui_stack.vm("router")["publicaddress"]) in archive.read("ipaddr.txt").decode()
    assert "/etc/no-such-file: MISSING (not found)" in archive.read("fileinfo.txt").decode()


def test_a_hostile_item_is_refused_in_the_page(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    form = open_vm_tab(page, ui_stack, "router", "data").get_by_test_id("data-form")
    form.get_by_test_id("data-extra").fill("/etc/../root/.ssh/id_rsa")
    form.get_by_test_id("data-get").click()
    expect(form.get_by_test_id("data-error")).to_contain_text("'..'")
    expect(form.get_by_test_id("data-download")).to_have_count(0)


def test_the_download_link_is_refused_to_another_user(page: Page, ui_stack: Stack) -> None:
    log_in(page, ui_stack, ui_stack.admin)
    form = open_vm_tab(page, ui_stack, "router", "data").get_by_test_id("data-form")
    for item in collect.ROUTER_DEFAULTS:
        if item != "iprule":
            form.get_by_test_id(f"data-file-{item}").uncheck()
    form.get_by_test_id("data-get").click()
    href = form.get_by_test_id("data-download").get_attribute("href", timeout=60_000)
    assert href
    # Another browser, logged in as a user who is no root admin: the same link is refused.
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        theirs = other.new_page()
        log_in(theirs, ui_stack, ui_stack.user)
        key = theirs.evaluate("JSON.parse(sessionStorage.getItem('cloudiag.session')).sessionkey")
        assert key
        # Their session (cookie and key) with the admin's link.
        answer = theirs.request.get(href.split("&sessionkey=")[0] + f"&sessionkey={key}")
        assert answer.status == 432
        # And the admin's link as it is (the admin's key, their cookie): no session at all.
        assert theirs.request.get(href).status == 401
    finally:
        other.close()


def test_the_history_reopens_a_collection_with_its_link(page: Page, ui_stack: Stack) -> None:
    jobid = ui_stack.ok(
        "getDiagnosticsData", targetid=ui_stack.vm("router")["uuid"], files="iprule"
    )["jobid"]
    assert ui_stack.wait_job(jobid)["jobstatus"] == 1
    log_in(page, ui_stack, ui_stack.admin)
    view = open_vm_tab(page, ui_stack, "router", "history")
    row = view.locator(f'tr[data-jobid="{jobid}"]')
    expect(row).to_contain_text("iprule")
    row.get_by_role("button", name="Open").click()
    result = view.get_by_test_id("result")
    expect(result.get_by_test_id("exit-badge")).to_have_text("zip ready")
    with page.expect_download() as waited:
        result.get_by_test_id("data-download").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(waited.value.path()).read_bytes()))
    assert set(archive.namelist()) == {"iprule.txt", "fileinfo.txt"}
