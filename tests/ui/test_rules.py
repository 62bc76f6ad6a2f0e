"""The browser's input checks agree with the server's: never stricter, and they catch the
hostile corpus before it leaves the page.

The browser side is the UI's own module (js/diag/validate.js) fed with what
listDiagnosticsTypes returns; the server side is the rule the API and the system-VM script
run (cloudiag.sysvm.validate).
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from cloudiag.sysvm import errors, validate
from tests.integration.stack import Stack
from tests.integration.test_hostile_input import _address_cases, _params_cases

GOOD_ADDRESSES = [
    "198.51.100.10",
    "203.0.113.1",
    "0.0.0.0",
    "255.255.255.255",
    "web.lab.test",
    "web.lab.test.",
    "a",
    "a-b.example",
    "x" * 63 + ".example",
    ".".join(["a" * 62] * 4),
    "2001:db8::1",
    "::1",
    "::",
    "fe80::1",
    "2001:db8:0:0:0:0:0:1",
    "::ffff:198.51.100.10",
    "1e100.net",
]
GOOD_PARAMS = [
    "",
    "-c 4",
    "-c 1 -i 0.2 -W 1",
    "-4 -n -q",
    "-s 65507",
    "-s 0 -t 255",
    "-I eth0",
    "-I 203.0.113.10",
    "-w 10 -c 3",
]
#: What only the server can judge: the time the options add up to (it knows its limits).
SERVER_ONLY = {"-c 100 -i 60", "-c 100 -W 60"}


def _browser(page: Page, addresses: list[str], params: list[str], types: dict[str, Any]) -> Any:
    return page.evaluate(
        """async ([addresses, params, types, rules]) => {
            const v = await import("/js/diag/validate.js");
            const ping = types.find((t) => t.name === "ping");
            return {
                addresses: addresses.map((a) => v.checkAddress(a, rules)),
                params: params.map((p) => v.checkParams(p, ping)),
            };
        }""",
        [addresses, params, types["diagnosticstype"], types["addressrules"]],
    )


def _server_refuses(address: str, params: str) -> bool:
    try:
        validate.validate("ping", address, params)
    except errors.DiagnosticsInputError:
        return True
    return False


def test_the_browser_accepts_what_the_server_accepts(page: Page, ui_stack: Stack) -> None:
    page.goto(f"{ui_stack.url}/")
    found = _browser(page, GOOD_ADDRESSES, GOOD_PARAMS, ui_stack.ok("listDiagnosticsTypes"))
    for address, problem in zip(GOOD_ADDRESSES, found["addresses"], strict=True):
        assert not _server_refuses(address, "")
        assert problem is None, (address, problem)
    for params, problem in zip(GOOD_PARAMS, found["params"], strict=True):
        assert not _server_refuses("198.51.100.10", params)
        assert problem is None, (params, problem)


def test_the_browser_refuses_the_hostile_corpus(page: Page, ui_stack: Stack) -> None:
    addresses = [a.strip() for a in _address_cases()]  # the form trims the destination
    params = [p.strip() for p in _params_cases()] + sorted(SERVER_ONLY)
    page.goto(f"{ui_stack.url}/")
    found = _browser(page, addresses, params, ui_stack.ok("listDiagnosticsTypes"))
    missed = [
        a
        for a, problem in zip(addresses, found["addresses"], strict=True)
        if _server_refuses(a, "") and problem is None
    ]
    assert missed == []
    missed = [
        p
        for p, problem in zip(params, found["params"], strict=True)
        if _server_refuses("198.51.100.10", p) and problem is None
    ]
    assert set(missed) == SERVER_ONLY
