"""Fixtures of the end-to-end tests: the lab and a real stack on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.stack import IN_CI, Stack, lab_ready, lab_zone, launch


@pytest.fixture(scope="session")
def lab() -> Iterator[dict[str, Any]]:
    """A lab zone with its own prefix, removed at the end even on failure."""
    reason = lab_ready()
    if reason:
        if IN_CI:
            pytest.fail(f"CI must run the lab tests: {reason}")
        pytest.skip(reason)
    with lab_zone("cdt" + secrets.token_hex(2)) as zone:
        yield zone


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The whole stack on the lab; once per database backend."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"stack-{backend}")
    failed_before = request.session.testsfailed
    with launch(backend, lab, data_dir) as st:
        yield st
        if request.session.testsfailed > failed_before:
            st.show_logs()
