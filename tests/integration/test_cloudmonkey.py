"""The legacy Python 2 cloudmonkey (5.3.3.1 from PyPI), driven for real: sync, list, run.

It runs only under Python 2.7; `scripts/setup.sh --test` installs it into .py2/ when a
python2.7 interpreter exists (pyenv on these machines). Without one, this file skips and
test_api_surface checks the listApis shape that `sync` reads.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
PY2_LIB = ROOT / ".py2" / "lib"
PY2 = (ROOT / ".py2" / "python").resolve() if (ROOT / ".py2" / "python").exists() else None

pytestmark = pytest.mark.skipif(
    PY2 is None or not (PY2_LIB / "cloudmonkey").is_dir(),
    reason="no Python 2.7 with cloudmonkey in .py2/ (scripts/setup.sh --test makes it)",
)


def _cloudmonkey(stack: Stack, tmp: Path, *args: str, password_login: bool = False) -> str:
    account = stack.admin
    config = tmp / "config"
    config.write_text(
        "[core]\nprofile = lab\nasyncblock = true\nparamcompletion = true\n"
        f"cache_file = {tmp / 'cache'}\nhistory_file = {tmp / 'history'}\n"
        f"log_file = {tmp / 'log'}\n\n"
        "[ui]\ncolor = false\nprompt = > \ndisplay = json\n\n"
        f"[lab]\nurl = {stack.api}\ntimeout = 120\nexpires = 600\n"
        f"username = {account.username}\npassword = {account.password}\ndomain = /\n"
        f"apikey = {'' if password_login else account.apikey}\n"
        f"secretkey = {'' if password_login else account.secretkey}\n"
        "verifysslcert = false\nsignatureversion = 3\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PY2_LIB), "HOME": str(tmp)}
    out = subprocess.run(
        [str(PY2), "-m", "cloudmonkey.cloudmonkey", "-c", str(config), "-d", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_sync_learns_every_command(stack: Stack, tmp_path: Path) -> None:
    out = _cloudmonkey(stack, tmp_path, "sync")
    assert "discovered" in out.lower(), out
    cache = json.loads((tmp_path / "cache").read_text())
    assert "diagnostics" in cache["run"]
    params = {p["name"] for p in cache["run"]["diagnostics"]["params"]}
    assert {"targetid", "type", "ipaddress", "params"} <= params
    assert cache["run"]["diagnostics"]["isasync"] is True


def test_run_diagnostics_with_api_keys(stack: Stack, tmp_path: Path) -> None:
    _cloudmonkey(stack, tmp_path, "sync")
    out = _cloudmonkey(
        stack,
        tmp_path,
        "run",
        "diagnostics",
        f"targetid={stack.vm('router')['uuid']}",
        "type=ping",
        f"ipaddress={stack.lab['targets']['web']}",
        "params=-c 1",
    )
    assert out.strip(), "cloudmonkey printed nothing"
    result = json.loads(out[out.index("{") :])
    diag = result["diagnostics"] if "diagnostics" in result else result["jobresult"]["diagnostics"]
    assert diag["exitcode"] == "0"
    assert "1 received" in diag["stdout"]


def test_list_with_password_login(stack: Stack, tmp_path: Path) -> None:
    out = _cloudmonkey(stack, tmp_path, "list", "routers", password_login=True)
    routers = json.loads(out)["router"]
    assert routers[0]["name"] == stack.vm("router")["name"]


def test_get_diagnostics_data_with_api_keys(stack: Stack, tmp_path: Path) -> None:
    _cloudmonkey(stack, tmp_path, "sync")
    out = _cloudmonkey(
        stack,
        tmp_path,
        "get",
        "diagnosticsdata",
        f"targetid={stack.vm('router')['uuid']}",
        "files=ipaddr,/etc/hosts",
    )
    result = json.loads(out[out.index("{") :])
    diag = result["diagnostics"] if "diagnostics" in result else result["jobresult"]["diagnostics"]
    assert diag["url"].startswith(stack.url + "/client/diagnosticsdata/")
