"""Fixtures of the end-to-end tests: a real stack per database backend and executor (the
lab is shared with the UI tests, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.stack import Stack, launch

#: (database, executor): both databases on the netns executor, SQLite over SSH. The SSH
#: dimension reaches the VMs another way; the database does not change that way, so one
#: backend suffices for it (and CI does not double).
STACKS = [("sqlite", "netns"), ("postgresql", "netns"), ("sqlite", "ssh")]


@pytest.fixture(scope="session", params=STACKS, ids=[f"{db}-{ex}" for db, ex in STACKS])
def stack(
    request: pytest.FixtureRequest, lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The whole stack on the lab; once per (database backend, executor)."""
    backend, executor = request.param
    data_dir = tmp_path_factory.mktemp(f"stack-{backend}-{executor}")
    failed_before = request.session.testsfailed
    with launch(backend, lab, data_dir, executor=executor) as st:
        yield st
        if request.session.testsfailed > failed_before:
            st.show_logs()


@pytest.fixture
def netns_only(stack: Stack) -> Stack:
    """The stack, for a test whose point is the lab's namespaces themselves (skipped over
    SSH, where a VM is reached through its sshd)."""
    if stack.executor != "netns":
        pytest.skip("about the netns executor's namespaces, not the executor's result")
    return stack
