"""The operator's forbidden destinations: literals at the API, names on the VM."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from cloudiag.settings import Settings
from cloudiag.sysvm import diagnostics as d

NETS = d.parse_networks(["169.254.0.0/16", "203.0.113.0/24", "2001:db8::/32"])


@pytest.mark.parametrize(
    "address",
    ["169.254.0.10", "203.0.113.1", "2001:db8::1", "::ffff:169.254.0.10", "::ffff:203.0.113.9"],
)
def test_literals_in_a_denied_network_are_refused(address: str) -> None:
    reason = d.denied_destination(address, NETS, resolve=False)
    assert reason is not None and address in reason and "does not allow" in reason


@pytest.mark.parametrize("address", ["198.51.100.10", "192.0.2.1", "2001:db9::1"])
def test_other_literals_pass(address: str) -> None:
    assert d.denied_destination(address, NETS, resolve=False) is None


def test_names_are_judged_by_what_they_resolve_to() -> None:
    loopback = d.parse_networks(["127.0.0.0/8", "::1/128"])
    assert d.denied_destination("localhost", loopback, resolve=False) is None
    reason = d.denied_destination("localhost", loopback, resolve=True)
    assert reason is not None and reason.startswith("Destination localhost (")


def test_no_policy_allows_everything() -> None:
    assert d.denied_destination("169.254.0.10", [], resolve=True) is None


def _script(env_value: str, address: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, d.DENIED_NETWORKS_ENV: env_value}
    return subprocess.run(
        [sys.executable, "-I", "-S", d.__file__, "ping", address, "-c", "1", "-W", "1"],
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_the_script_checks_names_after_resolving_them() -> None:
    done = _script("127.0.0.0/8,::1/128", "localhost")
    assert done.returncode == 2
    assert b"which the operator does not allow" in done.stdout
    assert _script("", "localhost").returncode == 0


def test_an_unreadable_policy_denies_everything() -> None:
    done = _script("not-a-network", "127.0.0.1")
    assert done.returncode == 2 and b"does not allow" in done.stdout


def test_settings_take_and_check_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDIAG_DENIED_NETWORKS", '["169.254.0.0/16", "10.1.2.3/8"]')
    assert Settings().denied_networks == ["169.254.0.0/16", "10.0.0.0/8"]
    monkeypatch.setenv("CLOUDIAG_DENIED_NETWORKS", '["nonsense"]')
    with pytest.raises(ValidationError, match="not a network"):
        Settings()
