"""`cloudiag host add|remove` and `cloudiag agent --config FILE`: the agent's config file
(0600, its own seed), the bus's authorization made again from the registered hosts, a bad
or taken name refused with nothing written, and the file's settings below flags and env."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudiag.agent import config_file
from cloudiag.bus.embedded import AUTHORIZATION_FILE
from cloudiag.bus.nkey_files import public_key
from cloudiag.cli import agent as agent_command


def _host(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudiag", "host", *args, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("CLOUDIAG_")} | (env or {}),
    )


def _users(path: Path) -> list[dict[str, object]]:
    text = path.read_text().removeprefix("authorization ")
    users: list[dict[str, object]] = json.loads(text)["users"]
    return users


def test_add_writes_the_agents_config_and_allows_it_on_the_private_bus(tmp_path: Path) -> None:
    out = tmp_path / "kvm-1.toml"
    done = _host(
        tmp_path,
        "add",
        "kvm-1",
        "--host-id",
        "h-1",
        "--nats-url",
        "nats://192.0.2.5:4222",
        "--lab-prefix",
        "cdx",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "no private NATS runs" in done.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    config = config_file.load(out)
    assert (config.host_id, config.host_name, config.lab_prefix) == ("h-1", "kvm-1", "cdx")
    assert config.nats_url == "nats://192.0.2.5:4222"
    users = _users(tmp_path / "data" / AUTHORIZATION_FILE)
    manager = public_key((tmp_path / "data" / "nats-server.nk").read_text())
    assert users[0] == {"nkey": manager}
    assert users[1]["nkey"] == public_key(config.nkey_seed)
    assert config.nkey_seed not in (tmp_path / "data" / AUTHORIZATION_FILE).read_text()

    assert _host(tmp_path, "remove", "kvm-1").returncode == 0
    assert [u["nkey"] for u in _users(tmp_path / "data" / AUTHORIZATION_FILE)] == [manager]
    assert _host(tmp_path, "remove", "kvm-1").returncode == 1  # Gone already.


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("--host-id", "a.b"), "invalid host id"),  # A dot would split its subjects.
        (("--host-id", "h>"), "invalid host id"),
        (("--host-id", "h-1"), "registered already"),
    ],
)
def test_a_bad_or_taken_host_is_refused_and_nothing_written(
    tmp_path: Path, args: tuple[str, ...], why: str
) -> None:
    first = _host(
        tmp_path,
        "add",
        "kvm-1",
        "--host-id",
        "h-1",
        "--nats-url",
        "nats://x:1",
        "--out",
        str(tmp_path / "first.toml"),
    )
    assert first.returncode == 0, first.stderr
    out = tmp_path / "second.toml"
    done = _host(tmp_path, "add", "kvm-2", *args, "--nats-url", "nats://x:1", "--out", str(out))
    assert done.returncode == 1 and why in done.stderr
    assert not out.exists()
    assert len(_users(tmp_path / "data" / AUTHORIZATION_FILE)) == 2


def test_an_external_nats_gets_a_file_to_install(tmp_path: Path) -> None:
    auth = tmp_path / "for-the-operator.conf"
    done = _host(
        tmp_path,
        "add",
        "kvm-1",
        "--out",
        str(tmp_path / "a.toml"),
        "--authorization",
        str(auth),
        "--tls-ca",
        "ca.pem",
        env={"CLOUDIAG_NATS_URL": "tls://198.51.100.4:4222"},
    )
    assert done.returncode == 0, done.stderr
    assert f"install {auth}" in done.stdout
    assert len(_users(auth)) == 2
    config = config_file.load(tmp_path / "a.toml")
    assert config.nats_url == "tls://198.51.100.4:4222"
    assert config.tls_ca is not None and config.tls_ca.is_absolute()


def test_the_config_file_gives_what_neither_flags_nor_environment_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file.AgentConfig(
        nats_url="nats://192.0.2.1:4222",
        nkey_seed="SUseed",
        host_id="h-file",
        lab_prefix="cdfile",
        heartbeat_interval=7,
    )
    args = argparse.Namespace(
        nats_url=None,
        lab_prefix="cdflag",
        executor=None,
        heartbeat_interval=None,
        data_dir=None,
        inventory=None,
        host_id=None,
        host_name=None,
    )
    monkeypatch.setenv("CLOUDIAG_HEARTBEAT_INTERVAL", "3")
    agent_command._apply_file(args, config)
    assert args.nats_url == "nats://192.0.2.1:4222" and args.host_id == "h-file"
    assert args.lab_prefix == "cdflag"  # The flag wins.
    assert args.heartbeat_interval is None  # The environment's 3 will.


def test_a_config_file_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('nats_url = "nats://x:1"\nnkey_seed = "S"\nhost_id = "h"\ntoken = "t"\n')
    with pytest.raises(config_file.ConfigFileError, match="token"):
        config_file.load(path)
