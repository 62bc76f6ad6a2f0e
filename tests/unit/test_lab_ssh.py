"""The lab on SSH without a lab: its inventory, sshd's configuration, keys, the script.

The CloudStack-style script runs for real here (its own process, a ping to loopback); the
lab with sshd itself is tests/integration/test_lab_ssh.py.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

from cloudiag.agent import wiring
from cloudiag.agent.executors import netns
from cloudiag.agent.sources.lab import LabSource
from cloudiag.bus.messages import SshAccess
from cloudiag.lab import diagnostics_script, sshd
from cloudiag.lab import topology as t
from cloudiag.lab.errors import LabError
from cloudiag.lab.inventory import inventory

STATE = Path("/run/cloudiag-lab/cdq")


def test_the_ssh_inventory_reaches_each_system_vm_from_the_hypervisor() -> None:
    inv = inventory("cdq", "ssh", state_dir=STATE)
    access = {vm["name"]: vm["access"] for vm in inv["vms"]}
    assert access["v-3-VM"] == {
        "kind": "ssh",
        "address": "169.254.0.30",
        "port": 3922,
        "user": "root",
        "key_file": "/run/cloudiag-lab/cdq/ssh/id_rsa.cloud",
        "netns": "cdq-host",
        "script": "cloudstack",
        "known_hosts": "/run/cloudiag-lab/cdq/ssh/known_hosts",
        "python": "python3",
    }
    for name, address in (("r-1-VM", "169.254.0.10"), ("s-2-VM", "169.254.0.20")):
        assert access[name] == {**access["v-3-VM"], "address": address, "script": "cloudiag"}
    # The user VM has no sshd: still its namespace.
    assert access["i-4-VM"] == {"kind": "netns", "namespace": "cdq-i-4-VM"}
    # Everything else is the netns inventory's.
    plain = inventory("cdq", state_dir=STATE)
    assert [{**vm, "access": None} for vm in plain["vms"]] == [
        {**vm, "access": None} for vm in inv["vms"]
    ]
    assert (plain["zone"], plain["host"]) == (inv["zone"], inv["host"])
    assert all(vm["access"]["kind"] == "netns" for vm in plain["vms"])


def test_the_default_state_dir_and_bad_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDIAG_LAB_STATE_DIR", raising=False)
    vm = inventory("cdq", "ssh")["vms"][0]
    assert vm["access"]["key_file"] == "/run/cloudiag-lab/cdq/ssh/id_rsa.cloud"
    with pytest.raises(ValueError, match="unknown executor 'telnet'"):
        inventory("cdq", "telnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid lab prefix"):
        inventory("no-dash", "ssh")


async def test_a_vm_over_ssh_runs_while_its_namespace_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "netns" not in SshAccess.model_fields:
        pytest.skip("SshAccess gains its netns field with the SSH executor")
    monkeypatch.setattr(netns, "NETNS_DIR", str(tmp_path))
    source = wiring.source(
        wiring.AgentOptions("nats://x", lab_inventory=inventory("cdq", "ssh", state_dir=STATE))
    )
    assert isinstance(source, LabSource)
    (tmp_path / "cdq-v-3-VM").touch()
    (tmp_path / "cdq-i-4-VM").touch()
    states = {vm.name: vm.state for vm in await source.vms()}
    assert states == {
        "r-1-VM": "Stopped",
        "s-2-VM": "Stopped",
        "v-3-VM": "Running",
        "i-4-VM": "Running",
    }


def test_sshd_config_is_the_labs_own() -> None:
    router = t.node("router")
    text = sshd.config_text(STATE, router)
    lines = set(text.splitlines())
    vm = "/run/cloudiag-lab/cdq/ssh/r-1-VM"
    for line in (
        "Port 3922",
        "ListenAddress 169.254.0.10",
        f"HostKey {vm}/ssh_host_ed25519_key",
        f"PidFile {vm}/sshd.pid",
        "AuthorizedKeysFile /run/cloudiag-lab/cdq/ssh/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "UseDNS no",
        "StrictModes yes",
        "Subsystem sftp internal-sftp",
        "MaxSessions 256",
        "MaxStartups 256:30:512",
    ):
        assert line in lines, line
    assert sshd.argv(STATE, router) == ["/usr/sbin/sshd", "-D", "-e", "-f", f"{vm}/sshd_config"]
    with pytest.raises(LabError, match="no control address"):
        sshd.config_text(STATE, t.node("uservm"))


def test_fingerprints_are_ssh_keygens(tmp_path: Path) -> None:
    key = tmp_path / "k"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key}.pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert sshd.fingerprint(Path(f"{key}.pub").read_text()) == listed


def test_keys_below_a_world_writable_dir_are_refused_before_sshd_would(tmp_path: Path) -> None:
    # pytest's tmp_path lies below /tmp (mode 1777): StrictModes would refuse every login.
    with pytest.raises(LabError, match=r"sshd refuses keys below /tmp .*drwxrwxrwt"):
        sshd.ensure_keys(tmp_path / "state", [])


# --- the CloudStack-style script ------------------------------------------------------------


def run_script(path: Path, *words: str) -> list[str]:
    out = subprocess.run([str(path), *words], capture_output=True, timeout=30, check=False)
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    return out.stdout.decode().split("\n")


def test_python3_form_prints_byte_reprs(tmp_path: Path) -> None:
    path = tmp_path / "diagnostics.py"
    info = diagnostics_script.write(path, "python3")
    assert (info.form, info.emulated) == ("python3", False)
    assert diagnostics_script.read(path) == info
    assert path.read_text().startswith(f"#!{diagnostics_script.python3()}\n")
    out, err, code, end = run_script(path, "ping", "127.0.0.1", "-c", "1")
    assert out.startswith("b'PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\\n64 bytes from")
    assert out.endswith("'&&") and "\n" not in out
    text = ast.literal_eval(out[: -len("&&")])
    assert isinstance(text, bytes) and b"1 packets transmitted, 1 received" in text
    assert (err, code, end) == ("b''&&", "0", "")


def test_defaults_are_added_and_unknown_types_print_nothing(tmp_path: Path) -> None:
    path = tmp_path / "diagnostics.py"
    diagnostics_script.write(path, "python3")
    out = run_script(path, "ping", "127.0.0.1", "-i", "0.2")
    assert "4 packets transmitted" in out[0]  # -c 4 added, as CloudStack's script does
    assert run_script(path, "dig", "web.lab.test") == [""]


def python2_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real: bool) -> Path:
    if real and diagnostics_script.python2() is None:
        pytest.skip("no python2.7 on this machine")
    if not real:
        monkeypatch.setattr(diagnostics_script, "python2", lambda: None)
    path = tmp_path / "diagnostics.py"
    info = diagnostics_script.write(path, "python2")
    assert (info.form, info.emulated) == ("python2", not real)
    assert diagnostics_script.read(path) == info
    return path


@pytest.mark.parametrize("real", [True, False], ids=["python2.7", "emulated"])
def test_python2_form_prints_raw_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real: bool
) -> None:
    path = python2_form(tmp_path, monkeypatch, real)
    lines = run_script(path, "ping", "127.0.0.1", "-c", "1")
    assert lines[0] == "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data."
    assert lines[1].startswith("64 bytes from 127.0.0.1")
    assert lines[-4].startswith("rtt min/avg/max/mdev") and lines[-4].endswith(" ms&&")
    assert lines[-3:] == ["&&", "0", ""]


def test_unknown_forms_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown script form 'perl'"):
        diagnostics_script.write(tmp_path / "d.py", "perl")
    assert diagnostics_script.read(tmp_path / "d.py") is None


# --- the executor setting and the flags that carry it ---------------------------------------


def test_the_executor_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from cloudiag.settings import Settings

    monkeypatch.delenv("CLOUDIAG_EXECUTOR", raising=False)
    assert Settings().executor == "netns"
    monkeypatch.setenv("CLOUDIAG_EXECUTOR", "ssh")
    assert Settings().executor == "ssh"
    with pytest.raises(ValidationError):
        Settings(executor="telnet")


def test_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudiag.cli import build_parser
    from cloudiag.cli.options import settings_from

    monkeypatch.delenv("CLOUDIAG_EXECUTOR", raising=False)
    parser = build_parser()
    for argv in (["demo", "--executor", "ssh"], ["agent", "--executor", "ssh"]):
        assert settings_from(parser.parse_args(argv)).executor == "ssh"
    assert settings_from(parser.parse_args(["agent"])).executor == "netns"
    up = parser.parse_args(["lab", "up", "--ssh", "--prefix", "cdq"])
    assert (up.lab_command, up.ssh, up.prefix) == ("up", True, "cdq")
    script = parser.parse_args(["lab", "script", "v-3-VM", "python2"])
    assert (script.vm, script.form) == ("v-3-VM", "python2")
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "script", "v-3-VM", "perl"])


def test_requirements_with_ssh_name_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudiag.lab import manager, system

    monkeypatch.setattr(manager.os, "geteuid", lambda: 0)
    monkeypatch.setattr(manager.os, "access", lambda path, mode: False)
    monkeypatch.setattr(system, "which", lambda tool: None if tool == "nsenter" else f"/x/{tool}")
    assert manager.check_requirements() == []
    assert manager.check_requirements(ssh=True) == [
        "missing: /usr/sbin/sshd (apt-get install openssh-server)",
        "missing: nsenter (apt-get install util-linux)",
    ]


def test_a_new_host_key_replaces_the_old_and_leaves_known_hosts(tmp_path: Path) -> None:
    """What `lab rekey` does to the files (the sshd restart needs a lab)."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    router = t.node("router")
    vm_dir = sshd.vm_dir(tmp_path, router)
    vm_dir.mkdir(parents=True)
    sshd.known_hosts(tmp_path).write_text("[169.254.0.10]:3922 ssh-ed25519 OLD\n")
    sshd.new_host_key(tmp_path, router)
    first = sshd.host_key_fingerprint(tmp_path, router)
    sshd.new_host_key(tmp_path, router)
    second = sshd.host_key_fingerprint(tmp_path, router)
    assert first and second and first != second
    assert sshd.known_hosts(tmp_path).read_text() == "[169.254.0.10]:3922 ssh-ed25519 OLD\n"
