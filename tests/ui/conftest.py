"""Fixtures of the UI tests: a real stack on the lab and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import IN_CI
from tests.integration.stack import Account, Stack, launch

CHROMIUM = os.environ.get("CLOUDIAG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Screenshots go to docs/screenshots when CLOUDIAG_SCREENSHOTS=1 (to refresh the README's),
#: else to the test's temporary directory (the same code runs either way).
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

try:
    from playwright.sync_api import (
        Browser,
        Locator,
        Page,
        ViewportSize,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

#: The window of every test's page unless it says otherwise.
CHROMIUM_VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def _browser_missing() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def ui_stack(lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack on the lab (SQLite: the UI does not depend on the database)."""
    with launch("sqlite", lab, tmp_path_factory.mktemp("ui-stack")) as st:
        yield st


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless; one per module, because while Playwright's sync API is
    open its event loop runs in this thread, where asyncio tests could not start theirs."""
    reason = _browser_missing()
    if reason:
        if IN_CI:
            pytest.fail(f"CI must run the UI tests: {reason}")
        pytest.skip(reason)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context at 1280x800; fails the test on any uncaught page error."""
    context = browser.new_context(viewport=CHROMIUM_VIEWPORT)
    context.set_default_timeout(20_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], f"errors in the page: {errors}"


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go."""
    if os.environ.get("CLOUDIAG_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def log_in(page: Page, stack: Stack, account: Account, *, open_ui: bool = True) -> None:
    """Log in through the UI's form (opening the UI first unless it shows the form already)."""
    if open_ui:
        page.goto(f"{stack.url}/")
    page.get_by_test_id("login-username").fill(account.username)
    page.get_by_test_id("login-password").fill(account.password)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("user").wait_for()


def vm_row(page: Page, name: str) -> Locator:
    """The row of a list that shows the VM (or host) of that name."""
    return page.locator(f'tr[data-name="{name}"]')


def open_vm_tab(page: Page, stack: Stack, role: str, tab: str) -> Locator:
    """The page of the lab VM of that role, at one of its tabs; the VM view."""
    page.goto(f"{stack.url}/#/vm/{stack.vm(role)['uuid']}/{tab}")
    return page.get_by_test_id("vm-view")


def run_form(panel: Locator, type_: str, address: str, params: str = "") -> None:
    """Fill the diagnostics form and send it from the keyboard."""
    panel.get_by_test_id("diag-type").select_option(type_)
    panel.get_by_test_id("diag-address").fill(address)
    panel.get_by_test_id("diag-params").fill(params)
    panel.get_by_test_id("diag-params").press("Enter")  # the form works from the keyboard


def open_run_dialog(page: Page, vm_name: str) -> Locator:
    """Run diagnostics from the row's hover menu; the dialog."""
    row = vm_row(page, vm_name)
    row.hover()
    row.get_by_test_id("row-actions").click()
    item = page.get_by_test_id("action-diagnostics")
    # The menu is on top of the page where it opened, not clipped by the table's box.
    box = item.bounding_box()
    assert box is not None
    centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    hit = page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.dataset.testid", centre)
    assert hit == "action-diagnostics"
    item.click()
    dialog = page.get_by_test_id("run-dialog")
    expect(dialog.get_by_test_id("diag-address")).to_be_focused()
    return dialog
