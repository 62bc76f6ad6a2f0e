"""`cloudiag serve` as an operator starts it: ports, the first admin, the data directory."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cloudiag.accounts import passwords
from cloudiag.bus.embedded import free_port
from tests.databases import stored_password_hash
from tests.integration.cli_process import CliProcess

URL_LINE = r"web UI at (http://127\.0\.0\.1:(\d+))/"


@dataclass
class Served:
    """A running `cloudiag serve --port 0` and what it printed."""

    process: CliProcess
    data_dir: Path
    url: str
    password: str
    apikey: str
    secretkey: str


def _serve(data_dir: Path, *args: str, env: dict[str, str] | None = None, port: int = 0) -> Served:
    process = CliProcess(
        "serve", "--port", str(port), "--data-dir", str(data_dir), *args,
        log=data_dir.parent / f"{data_dir.name}.log", env=env,
    )  # fmt: skip
    url = process.wait_for(URL_LINE).group(1)
    password = process.wait_for(r"^\s+password:\s+(\S+)$").group(1)
    apikey = process.wait_for(r"^\s+apikey:\s+(\S+)$").group(1)
    secretkey = process.wait_for(r"^\s+secretkey:\s+(\S+)$").group(1)
    return Served(process, data_dir, url, password, apikey, secretkey)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server on a fresh data directory, for the tests that only look at it."""
    data_dir = tmp_path_factory.mktemp("serve") / "data"
    running = _serve(data_dir)
    yield running
    assert running.process.stop() == 0, running.process.output()


def _cloudiag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudiag", *args],
        capture_output=True, text=True, check=False, timeout=120, env=env,
    )  # fmt: skip


def _login(url: str, password: str, forwarded_for: str) -> None:
    reply = httpx.post(
        f"{url}/client/api",
        data={"command": "login", "username": "admin", "password": password, "response": "json"},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text


def test_port_0_prints_the_port_really_listened_on(served: Served) -> None:
    assert not served.url.endswith(":0")
    assert httpx.get(f"{served.url}/client/api", timeout=10).status_code == 401


def test_a_call_signed_with_the_sealed_secret_key_is_accepted(served: Served) -> None:
    from cs import CloudStack

    api = CloudStack(f"{served.url}/client/api", key=served.apikey, secret=served.secretkey)
    assert api.listZones() == {}


def test_the_data_directory_and_its_files_are_private(served: Served) -> None:
    assert stat.S_IMODE(served.data_dir.stat().st_mode) == 0o700
    files = ("cloudiag.db", "cloudiag.db-wal", "cloudiag.db-shm", "credentials.json", "secrets.key")
    for name in files:
        assert stat.S_IMODE((served.data_dir / name).stat().st_mode) == 0o600, name


def test_a_second_server_on_the_same_data_directory_is_refused(served: Served) -> None:
    out = _cloudiag("serve", "--port", "0", "--data-dir", str(served.data_dir))
    assert out.returncode == 1
    assert "another cloudiag server is running on the data directory" in out.stderr
    assert httpx.get(f"{served.url}/client/api", timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("trusted", "seen"),
    [(None, "127.0.0.1"), ('["127.0.0.1"]', "198.51.100.77")],
    ids=["untrusted-peer", "trusted-proxy"],
)
def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: str | None, seen: str
) -> None:
    env = {"CLOUDIAG_TRUSTED_PROXIES": trusted} if trusted else {}
    running = _serve(tmp_path / "data", env=env, port=free_port())
    try:
        _login(running.url, running.password, "198.51.100.77")
    finally:
        assert running.process.stop() == 0
    assert f"login user=admin from={seen}\n" in running.process.log.read_text()


def test_a_busy_port_is_one_clear_line_and_the_admin_password_is_not_lost(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _cloudiag("serve", "--port", str(port), "--data-dir", str(data_dir))
    assert out.returncode == 1
    assert f"cloudiag: cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr
    assert "Traceback" not in out.stderr and "\\n" not in out.stderr
    # The next start still shows a password that logs in as admin.
    running = _serve(data_dir)
    assert running.process.stop() == 0
    assert passwords.verify_password(stored_password_hash(data_dir, "admin"), running.password)


def test_the_admin_password_is_shown_on_every_start_until_it_changes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = _serve(data_dir)
    assert first.process.stop() == 0
    again = _serve(data_dir)
    assert again.process.stop() == 0
    assert again.password == first.password
    reset = _cloudiag("user", "reset-password", "admin", "--data-dir", str(data_dir))
    assert reset.returncode == 0, reset.stderr
    after = CliProcess("serve", "--port", "0", "--data-dir", str(data_dir), log=tmp_path / "x")
    after.wait_for(URL_LINE)
    assert after.stop() == 0
    assert not any("password" in line for line in after.lines)


@pytest.mark.parametrize(
    ("args", "env", "text"),
    [
        (["--port", "99999"], {}, "argument --port: 99999 is not a port"),
        (["--port", "-1"], {}, "argument --port: -1 is not a port"),
        (["--port", "http"], {}, "argument --port: 'http' is not a port number"),
        ([], {"CLOUDIAG_PORT": "99999"}, "invalid CLOUDIAG_PORT '99999'"),
    ],
)
def test_a_bad_port_is_one_clear_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], text: str
) -> None:
    out = _cloudiag("serve", *args, "--data-dir", str(tmp_path), env={**os.environ, **env})
    assert out.returncode == 2
    assert text in out.stderr
    errors = [line for line in out.stderr.splitlines() if not line.startswith(("usage", " "))]
    assert len(errors) == 1, out.stderr
    assert not re.search(r"pydantic|validation error|Traceback", out.stderr)


def test_a_secrets_key_that_does_not_open_the_database_refuses_the_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert _serve(data_dir).process.stop() == 0
    (data_dir / "secrets.key").unlink()  # Another key is made in its place.
    out = _cloudiag("serve", "--port", "0", "--data-dir", str(data_dir))
    assert out.returncode == 1
    assert "give the key file the database was sealed with" in out.stderr
