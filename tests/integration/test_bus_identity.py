"""End to end on an authorized bus: the lab's agent runs diagnostics with credentials of its
own from `cloudiag host add` (`cloudiag agent --config FILE`), and `cloudiag host remove`
revokes it: the reloaded nats-server drops it and its host goes Disconnected."""

from __future__ import annotations

import os
import signal

from cloudiag.agent import config_file
from cloudiag.bus.nkey_files import public_key
from tests.integration.stack import (
    Stack,
    cloudiag,
    manager_seed_file,
    register_lab_host,
)


def _reload_nats(stack: Stack) -> None:
    assert stack.nats is not None
    stack.nats.send_signal(signal.SIGHUP)


def test_the_agent_runs_a_diagnostic_with_its_own_key(stack: Stack) -> None:
    config = config_file.load(stack.agent_config)
    manager = manager_seed_file(stack.data_dir).read_text().strip()
    assert public_key(config.nkey_seed) != public_key(manager)
    assert stack.agent_config.stat().st_mode & 0o777 == 0o600
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_a_removed_host_s_agent_is_dropped(stack: Stack) -> None:
    config = config_file.load(stack.agent_config)
    out = cloudiag(
        "host",
        "remove",
        config.host_id,
        "--authorization",
        str(stack.data_dir / "nats-authorization.conf"),
        "--database-url",
        stack.database_url,
        "--data-dir",
        str(stack.data_dir),
        env={
            **os.environ,
            "CLOUDIAG_NATS_URL": stack.nats_url,
            "CLOUDIAG_NATS_NKEY_SEED_FILE": str(manager_seed_file(stack.data_dir)),
        },
    )
    assert out.returncode == 0, out.stderr
    assert "install" in out.stdout  # An external NATS: its operator installs the file.
    try:
        _reload_nats(stack)
        stack.wait_for(lambda: stack.host_state() == "Disconnected", "the host to be cut off")
        log = (stack.data_dir / "agent.log").read_text()
        assert "uthorization" in log
    finally:
        stack.stop_agent()
        stack.agent_config = register_lab_host(
            stack.database_url, stack.data_dir, stack.nats_url, stack.prefix
        )
        _reload_nats(stack)
        stack.start_agent()
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"
