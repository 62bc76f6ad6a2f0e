"""Fixtures of the end-to-end tests: a real stack on SQLite and on PostgreSQL (the lab is
shared with the UI tests, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.stack import Stack, launch


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
