"""Host state from heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloudiag.db.models import Host
from cloudiag.services.inventory import host_state

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _host(connected: bool, age: float | None) -> Host:
    beat = None if age is None else NOW - timedelta(seconds=age)
    return Host(id="h", name="h", zone_id="z", connected=connected, last_heartbeat=beat)


def test_fresh_heartbeat_is_up() -> None:
    assert host_state(_host(True, 4), 5, NOW) == "Up"


def test_three_missed_beats_is_disconnected() -> None:
    assert host_state(_host(True, 16), 5, NOW) == "Disconnected"


def test_goodbye_or_never_seen_is_disconnected() -> None:
    assert host_state(_host(False, 0), 5, NOW) == "Disconnected"
    assert host_state(_host(True, None), 5, NOW) == "Disconnected"
