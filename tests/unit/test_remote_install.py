"""The remote commands of the SSH executor: fixed templates of a checked word and a hex hash."""

from __future__ import annotations

import shlex

import pytest

from cloudiag.agent.executors.remote_install import probe_command, remote_path, serve_command


def test_the_zipapp_path_names_its_hash() -> None:
    assert (
        remote_path("0123456789abcdef") == "/var/lib/cloudiag/cloudiag-sysvm-0123456789abcdef.pyz"
    )
    assert remote_path("0123456789abcdef", "/opt/x") == "/opt/x/cloudiag-sysvm-0123456789abcdef.pyz"


@pytest.mark.parametrize("stamp", ["", "0123456789ABCDEF", "01234567 89", "$(id)", "a/b", "abc"])
def test_a_stamp_is_lower_case_hex_only(stamp: str) -> None:
    with pytest.raises(ValueError, match="not a build stamp"):
        remote_path(stamp)


@pytest.mark.parametrize("folder", ["relative", "/a/../b", "/a b", "/a;b", "/", "/a/"])
def test_the_folder_is_a_plain_absolute_path(folder: str) -> None:
    with pytest.raises(ValueError, match="not a plain absolute folder"):
        remote_path("0123456789abcdef", folder)


def test_the_commands_are_fixed_templates() -> None:
    line = serve_command("/usr/bin/python3.11", "0123456789abcdef")
    assert shlex.split(line) == [
        "/usr/bin/python3.11",
        "-I",
        "-S",
        "/var/lib/cloudiag/cloudiag-sysvm-0123456789abcdef.pyz",
        "serve",
        "--max-jobs",
        "256",
    ]
    assert shlex.split(probe_command("python3"))[:4] == ["python3", "-I", "-S", "-c"]


@pytest.mark.parametrize("python", ["-c", "python3 -c", "py;id", "$(id)", "a//b", ""])
def test_the_interpreter_is_one_plain_word(python: str) -> None:
    with pytest.raises(ValueError, match="not an interpreter name"):
        serve_command(python, "0123456789abcdef")
    with pytest.raises(ValueError, match="not an interpreter name"):
        probe_command(python)
