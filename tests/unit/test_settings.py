"""Settings from CLOUDIAG_* variables, checked at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloudiag.services.quotas import Quotas
from cloudiag.settings import Settings


def test_per_type_time_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDIAG_TYPE_TIME_LIMITS", '{"traceroute": 900, "ping": 30}')
    assert Settings().type_time_limits == {"traceroute": 900.0, "ping": 30.0}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ('{"nmap": 10}', "unknown diagnostics type"),
        ('{"ping": 0}', "(0, 3600]"),
        ('{"ping": 99999}', "(0, 3600]"),
    ],
)
def test_bad_per_type_limits_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, text: str
) -> None:
    monkeypatch.setenv("CLOUDIAG_TYPE_TIME_LIMITS", value)
    with pytest.raises(ValidationError, match=text.replace("(", r"\(").replace("]", r"\]")):
        Settings()


def test_limits_become_quotas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDIAG_LIMIT_PER_VM", "3")
    monkeypatch.setenv("CLOUDIAG_RATE_LIMIT", "0")
    q = Quotas.from_settings(Settings())
    assert (q.per_vm, q.rate) == (3, 0)


def test_the_default_traceroute_limit_fits_a_long_trace() -> None:
    from cloudiag.sysvm import validate

    req = validate.validate("traceroute", "198.51.100.10", "-m 30 -q 3 -w 5")
    assert req.estimated_seconds <= req.type.time_limit
