"""Fixtures of the end-to-end tests: a real stack per database backend and executor (the
lab is shared with the UI tests, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloudiag.lab.inventory import Executor
from tests.conftest import ssh_missing
from tests.integration.stack import Stack, launch

#: (database, executor): both databases on the netns executor, SQLite over SSH. The SSH
#: dimension reaches the VMs another way; the database does not change that way, so one
#: backend suffices for it (and CI does not double).
STACKS: list[tuple[str, Executor]] = [
    ("sqlite", "netns"),
    ("postgresql", "netns"),
    ("sqlite", "ssh"),
]


@pytest.fixture(scope="session", params=STACKS, ids=[f"{db}-{ex}" for db, ex in STACKS])
def stack(
    request: pytest.FixtureRequest, lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The whole stack on the lab; once per (database backend, executor)."""
    backend, executor = request.param
    if executor == "ssh" and lab.get("ssh") is None:
        pytest.skip(f"the lab has no sshd: {ssh_missing()}")
    data_dir = tmp_path_factory.mktemp(f"stack-{backend}-{executor}")
    failed_before = request.session.testsfailed
    with launch(backend, lab, data_dir, executor=executor) as st:
        yield st
        if request.session.testsfailed > failed_before:
            st.show_logs()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``executor("ssh")`` is deselected on the stacks of the other executor
    (rather than skipped: no stack is started for it)."""
    kept, dropped = [], []
    for item in items:
        mark = item.get_closest_marker("executor")
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("stack") if callspec is not None else None
        if mark is not None and param is not None and param[1] not in mark.args:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
