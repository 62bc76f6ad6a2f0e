"""Files holding secrets end up readable by their owner only, new or already there."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cloudiag.bus.embedded import write_config
from cloudiag.datadir import read_private, write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_credentials_file_is_made_private_when_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_private(path, json.dumps({"password": "p"}))
    assert _mode(path) == 0o600
    assert json.loads(path.read_text()) == {"password": "p"}


def test_a_new_credentials_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "credentials.json"
    write_private(path, "{}")
    assert _mode(path) == 0o600


def test_reading_a_world_readable_credentials_file_makes_it_private(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text('{"secretkey": "s"}')
    path.chmod(0o644)
    assert json.loads(read_private(path)) == {"secretkey": "s"}
    assert _mode(path) == 0o600


def test_an_existing_nats_config_is_made_private(tmp_path: Path) -> None:
    config = tmp_path / "nats.conf"
    config.write_text("old")
    config.chmod(0o644)
    write_config(config, "127.0.0.1", 4222, tmp_path / "store")
    assert _mode(config) == 0o600
    assert "4222" in config.read_text()
