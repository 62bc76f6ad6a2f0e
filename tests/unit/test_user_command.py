"""`cloudiag user create --password-stdin`: the password never goes through argv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cloudiag.accounts import passwords
from tests.databases import stored_password_hash

PASSWORD = "correct horse battery staple"


def _create(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudiag", "user", "create", *args, "--data-dir", str(tmp_path)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_password_is_read_from_standard_input(tmp_path: Path) -> None:
    out = _create(tmp_path, "alice", "--password-stdin", "--json", stdin=f"{PASSWORD}\n")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["password"] == PASSWORD
    assert "warning" not in out.stderr
    assert passwords.verify_password(
        stored_password_hash(tmp_path, "alice"), PASSWORD
    )  # spaces kept


def test_an_empty_standard_input_is_refused(tmp_path: Path) -> None:
    out = _create(tmp_path, "bob", "--password-stdin", stdin="")
    assert out.returncode == 1
    assert "no password on standard input" in out.stderr


def test_password_in_argv_still_works_but_warns(tmp_path: Path) -> None:
    out = _create(tmp_path, "carol", "--password", PASSWORD)
    assert out.returncode == 0, out.stderr
    assert "--password-stdin" in out.stderr


def test_both_ways_at_once_are_refused(tmp_path: Path) -> None:
    out = _create(tmp_path, "dave", "--password", PASSWORD, "--password-stdin", stdin=PASSWORD)
    assert out.returncode == 2
    assert "not allowed with" in out.stderr


def _reset(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudiag", "user", "reset-password", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_reset_password_prints_a_new_generated_password(tmp_path: Path) -> None:
    assert _create(tmp_path, "erin", "--password-stdin", stdin=f"{PASSWORD}\n").returncode == 0
    out = _reset(tmp_path, "erin", "--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    new = dict(line.split(maxsplit=1) for line in out.stdout.splitlines())["password"]
    assert new != PASSWORD
    assert passwords.verify_password(stored_password_hash(tmp_path, "erin"), new)


def test_reset_password_from_standard_input(tmp_path: Path) -> None:
    assert _create(tmp_path, "frank").returncode == 0
    out = _reset(tmp_path, "frank", "--password-stdin", "--data-dir", str(tmp_path), stdin=PASSWORD)
    assert out.returncode == 0, out.stderr
    assert PASSWORD not in out.stdout
    assert passwords.verify_password(stored_password_hash(tmp_path, "frank"), PASSWORD)


def test_reset_password_of_an_unknown_user_is_refused(tmp_path: Path) -> None:
    out = _reset(tmp_path, "nobody", "--data-dir", str(tmp_path))
    assert out.returncode == 1
    assert "no user 'nobody'" in out.stderr


def test_a_secrets_key_that_does_not_open_the_database_is_refused(tmp_path: Path) -> None:
    assert _create(tmp_path, "gina").returncode == 0
    (tmp_path / "secrets.key").unlink()  # Another key is made in its place.
    out = _create(tmp_path, "hank")
    assert out.returncode == 1
    assert "does not open with this secrets key" in out.stderr
    assert "Traceback" not in out.stderr
