"""Fixtures shared by the end-to-end and UI tests: one lab zone for the whole session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from cloudiag.lab import manager
from tests.databases import IN_CI
from tests.integration.stack import lab_ready, lab_zone


@pytest.fixture(scope="session")
def lab() -> Iterator[dict[str, Any]]:
    """A lab zone with its own prefix and sshd in each system VM (`lab up --ssh`), so that
    the same zone serves the stacks of both executors; removed at the end even on failure."""
    reason = lab_ready()
    if reason:
        if IN_CI:
            pytest.fail(f"CI must run the lab tests: {reason}")
        pytest.skip(reason)
    # Without OpenSSH the lab has no sshd: the SSH stack is skipped (see ssh_missing).
    ssh = not manager.check_requirements(ssh=True)
    if not ssh and IN_CI:
        pytest.fail(f"CI must run the SSH tests: {ssh_missing()}")
    with lab_zone("cdt" + secrets.token_hex(2), ssh=ssh) as zone:
        yield zone


def ssh_missing() -> str | None:
    """Why the lab cannot run sshd in its VMs here, or None."""
    return "; ".join(manager.check_requirements(ssh=True)) or None
