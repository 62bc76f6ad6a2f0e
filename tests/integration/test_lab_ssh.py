"""The lab on SSH for real: sshd in each system VM, reached from the hypervisor namespace only,
each VM's own files through its mount namespace, the CloudStack-style script, the lifecycle.

Every lab here has its own prefix ("cdls" + hex) and its state in the default place
(/run/cloudiag-lab: sshd's StrictModes refuses keys below /tmp). Each is taken down at the
end even on failure, and then nothing may be left: no process naming its state dir, no
mount below it, no namespace. OpenSSH's own client is the client; packets only go to lab
addresses, from lab namespaces (the root namespace has a default route out of the machine,
so it is never used to connect: that it cannot reach sshd is read from its sockets).
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudiag.agent import config_file
from cloudiag.lab import diagnostics_script, manager, mountns, system, topology
from tests.integration.cli_process import CliProcess
from tests.integration.stack import cloudiag, lab_zone, ssh_argv

pytestmark = pytest.mark.lab

SYSTEM_VMS = ("r-1-VM", "s-2-VM", "v-3-VM")
WEB = "198.51.100.10"
SCRIPT = "/opt/cloud/bin/diagnostics.py"

# Runs in a VM over SSH: what that VM sees of its files.
_LOOK = """
import json, os
print(json.dumps({
    "script": os.access("/opt/cloud/bin/diagnostics.py", os.X_OK),
    "opt": sorted(os.listdir("/opt")),
    "ping": os.access("/usr/bin/ping", os.X_OK),
    "resolv": open("/etc/resolv.conf").read(),
    "nics": sorted(os.listdir("/sys/class/net")),
    "passwd": os.path.exists("/etc/passwd"),
}))
"""


def skip_unless_possible() -> None:
    if os.geteuid() != 0:
        reason = "the lab needs root (network namespaces)"
    else:
        reason = "; ".join(manager.check_requirements(ssh=True))
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the lab tests: {reason}")
        pytest.skip(reason)


def new_prefix() -> str:
    return "cdls" + secrets.token_hex(2)


def vm_pids(prefix: str) -> list[int]:
    """The processes of the lab's SSVM namespace."""
    return system.namespace_pids(f"{prefix}-s-2-VM")


def lab_namespaces(prefix: str) -> list[str]:
    return [n for n in system.list_namespaces() if n.startswith(f"{prefix}-")]


def leftovers(prefix: str) -> list[str]:
    """What a lab left behind: processes naming its state dir, mounts below it, namespaces."""
    state = str(manager.default_state_dir(prefix))
    found = subprocess.run(["pgrep", "-af", state], capture_output=True, text=True).stdout
    left = [f"process {line}" for line in found.splitlines()]
    left += [
        f"mount {line.split()[4]}"
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(state)
    ]
    left += [f"namespace {ns}" for ns in lab_namespaces(prefix)]
    return left


def clean_up(prefix: str) -> None:
    """Down, then fail if anything is left (killing it first, so no failure leaks it)."""
    manager.down(prefix)
    left = leftovers(prefix)
    if left:
        found = subprocess.run(
            ["pgrep", "-f", str(manager.default_state_dir(prefix))], capture_output=True, text=True
        )
        system.terminate(int(p) for p in found.stdout.split())
        pytest.fail(f"lab {prefix} left behind: {left}")


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, Any]]:
    """A lab with sshd, brought up by `cloudiag lab up --ssh` as a user would."""
    skip_unless_possible()
    prefix = new_prefix()
    try:
        with lab_zone(prefix, ssh=True) as zone:
            yield zone
    finally:
        clean_up(prefix)


def vm(lab: dict[str, Any], name: str) -> dict[str, Any]:
    now = manager.status(lab["prefix"]).to_dict()
    return next(ns for ns in now["namespaces"] if ns["name"] == name)


def control(name: str) -> str:
    return {"r-1-VM": "169.254.0.10", "s-2-VM": "169.254.0.20", "v-3-VM": "169.254.0.30"}[name]


def ssh(
    lab: dict[str, Any],
    name: str,
    *command: str,
    known_hosts: str | None = None,
    strict: str = "yes",
    namespace: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """OpenSSH's client, in the hypervisor namespace (or ``namespace``), to a VM's sshd."""
    argv = ssh_argv(
        lab["ssh"],
        control(name),
        shlex.join(command),
        known_hosts=known_hosts,
        strict=strict,
        namespace=namespace,
    )
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# --- what the status shows ---------------------------------------------------------------


def test_status_shows_sshd_keys_and_scripts(lab: dict[str, Any]) -> None:
    prefix = lab["prefix"]
    state = manager.default_state_dir(prefix)
    # Up but for the optional DNS server, when dnsmasq is not installed.
    assert lab["up"] is True or lab["warnings"], lab
    assert lab["ssh"] == {
        "hypervisor": f"{prefix}-host",
        "address": "169.254.0.1",
        "port": 3922,
        "user": "root",
        "key_file": f"{state}/ssh/id_rsa.cloud",
        "public_key": Path(f"{state}/ssh/id_rsa.cloud.pub").read_text().strip(),
        "known_hosts": f"{state}/ssh/known_hosts",
        "cloudstack_script_vm": "v-3-VM",
    }
    assert lab["ssh"]["public_key"].startswith("ssh-rsa ")
    entries = {ns["name"]: ns for ns in lab["namespaces"]}
    fingerprints = set()
    for name in SYSTEM_VMS:
        e = entries[name]
        assert e["running"] is True
        s = e["ssh"]
        assert (s["running"], s["port"], s["listen"]) == (True, 3922, f"{control(name)}:3922/tcp")
        assert system.alive(s["pid"]) and s["host_key"].startswith("SHA256:")
        fingerprints.add(s["host_key"])
        assert e["script"] == {
            "path": SCRIPT,
            "form": "python3",
            "interpreter": diagnostics_script.python3(),
            "emulated": False,
        }
    assert len(fingerprints) == 3  # a host key of its own per VM
    host = entries["host"]
    assert (host["role"], host["running"], host["ssh"], host["controladdress"]) == (
        "hypervisor",
        True,
        None,
        "169.254.0.1",
    )
    assert [(i["name"], i["address"]) for i in host["interfaces"]] == [("cloud0", "169.254.0.1")]
    assert entries["i-4-VM"]["ssh"] is None and entries["i-4-VM"]["script"] is None
    # Private: the directory 0700, the keys 0600.
    assert (state / "ssh").stat().st_mode & 0o777 == 0o700
    for key in [
        state / "ssh/id_rsa.cloud",
        *(state / f"ssh/{n}/ssh_host_ed25519_key" for n in SYSTEM_VMS),
    ]:
        assert key.stat().st_mode & 0o777 == 0o600, key


def test_sshd_runs_with_the_labs_configuration(lab: dict[str, Any]) -> None:
    cfg = manager.default_state_dir(lab["prefix"]) / "ssh/r-1-VM/sshd_config"
    out = subprocess.run(
        ["/usr/sbin/sshd", "-T", "-f", str(cfg)], capture_output=True, text=True, check=True
    ).stdout
    effective = set(out.splitlines())
    for line in (
        "port 3922",
        "listenaddress 169.254.0.10:3922",
        "permitrootlogin without-password",  # sshd -T's name for prohibit-password
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "usepam no",
        "usedns no",
        "strictmodes yes",
        "maxsessions 256",
        "maxstartups 256:30:512",
        "subsystem sftp internal-sftp",
    ):
        assert line in effective, line


# --- reachable from the hypervisor, and only from there ------------------------------------


@pytest.mark.parametrize("name", SYSTEM_VMS)
def test_ssh_from_the_hypervisor_with_the_host_key_pinned(
    lab: dict[str, Any], name: str, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    first = ssh(lab, name, "true", known_hosts=str(known), strict="accept-new")
    assert first.returncode == 0, first.stderr
    # The key it presented is the one the status shows.
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(known)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed[1] == vm(lab, name)["ssh"]["host_key"] and listed[-1] == "(ED25519)"
    # And the lab's own known_hosts holds it: strict checking passes with it.
    again = ssh(lab, name, "id", "-u")
    assert (again.returncode, again.stdout) == (0, "0\n"), again.stderr


def test_sshd_is_only_in_the_vm_and_the_key_only_from_the_hypervisor(
    lab: dict[str, Any],
) -> None:
    pid = vm(lab, "r-1-VM")["ssh"]["pid"]
    assert system.listening(pid, "tcp", "169.254.0.10", 3922)
    # Its socket is in the VM's namespace: the root namespace has none on port 3922.
    own = Path("/proc/self/net/tcp").read_text().splitlines()[1:]
    assert not [line for line in own if line.split()[1].endswith(":0F52")]
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    # And in the VM's own mount namespace, the one bound in the state dir.
    mnt = manager.default_state_dir(lab["prefix"]) / "mntns/r-1-VM"
    assert os.stat(f"/proc/{pid}/ns/mnt").st_ino == mnt.stat().st_ino
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    # Another system VM on the control segment reaches the port, but the key is refused
    # there (authorized from the hypervisor's address only); so from the user VM.
    for other in ("s-2-VM", "i-4-VM"):
        out = ssh(lab, "r-1-VM", "true", namespace=f"{lab['prefix']}-{other}")
        assert out.returncode == 255, (other, out.stdout)
        assert "Permission denied" in out.stderr or "timed out" in out.stderr, out.stderr


# --- each VM's own files -----------------------------------------------------------------


@pytest.mark.parametrize("name", SYSTEM_VMS)
def test_the_vm_sees_its_own_files_and_the_host_does_not(lab: dict[str, Any], name: str) -> None:
    out = ssh(lab, name, "python3", "-c", _LOOK)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["script"] is True and seen["ping"] is True and seen["passwd"] is True
    # /opt keeps the host's entries: only /opt/cloud is the VM's own.
    assert seen["opt"] == sorted([*os.listdir("/opt"), "cloud"])
    assert "nameserver 198.51.100.53" in seen["resolv"]
    # Its own sysfs: its NICs, not the host's.
    assert seen["nics"] == ["eth0", "eth1", "eth2", "lo"]
    assert not os.path.exists(SCRIPT) and not os.path.exists("/opt/cloud")


# --- the CloudStack-style script ---------------------------------------------------------


def set_form(lab: dict[str, Any], name: str, form: str) -> dict[str, Any]:
    out = cloudiag("lab", "script", "--prefix", lab["prefix"], name, form, "--json")
    assert out.returncode == 0, out.stderr
    return next(ns for ns in json.loads(out.stdout)["namespaces"] if ns["name"] == name)


def test_python3_form_framing_for_a_ping_to_the_web_server(lab: dict[str, Any]) -> None:
    out = ssh(lab, "v-3-VM", SCRIPT, "ping", WEB, "-c", "1")
    assert out.returncode == 0, out.stderr
    first, second, code, end = out.stdout.split("\n")
    assert first.startswith(f"b'PING {WEB} ({WEB}) 56(84) bytes of data.\\n64 bytes from {WEB}:")
    assert first.endswith(" ms'&&")
    printed = ast.literal_eval(first[: -len("&&")])
    assert isinstance(printed, bytes)
    assert b"\n1 packets transmitted, 1 received, 0% packet loss" in printed
    assert (second, code, end) == ("b''&&", "0", "")


def test_python2_form_framing_and_back(lab: dict[str, Any]) -> None:
    real = diagnostics_script.python2()
    try:
        entry = set_form(lab, "s-2-VM", "python2")
        assert entry["script"] == {
            "path": SCRIPT,
            "form": "python2",
            "interpreter": real or diagnostics_script.python3(),
            "emulated": real is None,
        }
        out = ssh(lab, "s-2-VM", SCRIPT, "ping", WEB, "-c", "1")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.split("\n")
        assert lines[0] == f"PING {WEB} ({WEB}) 56(84) bytes of data."
        assert lines[1].startswith(f"64 bytes from {WEB}: icmp_seq=1")
        assert lines[-5] == "1 packets transmitted, 1 received, 0% packet loss, time 0ms"
        assert lines[-4].startswith("rtt min/avg/max/mdev = ") and lines[-4].endswith(" ms&&")
        assert lines[-3:] == ["&&", "0", ""]
        # A ping nobody answers: exit code 1, still the same framing.
        lost = ssh(lab, "s-2-VM", SCRIPT, "ping", "198.51.100.99", "-c", "1", "-W", "1")
        tail = lost.stdout.split("\n")[-4:]
        assert tail[0].endswith("100% packet loss, time 0ms&&") and tail[1:] == ["&&", "1", ""]
    finally:
        assert set_form(lab, "s-2-VM", "python3")["script"]["form"] == "python3"
    back = ssh(lab, "s-2-VM", SCRIPT, "ping", WEB, "-c", "1")
    assert back.stdout.startswith("b'PING "), back.stdout


# --- lifecycle ---------------------------------------------------------------------------


def test_stop_and_start_a_vm_stop_and_start_its_sshd(lab: dict[str, Any]) -> None:
    prefix = lab["prefix"]
    before = vm(lab, "v-3-VM")
    mnt = manager.default_state_dir(prefix) / "mntns/v-3-VM"
    try:
        manager.stop_vm(prefix, "v-3-VM")
        stopped = vm(lab, "v-3-VM")
        assert stopped["ssh"]["running"] is False and stopped["ssh"]["pid"] is None
        assert not system.alive(before["ssh"]["pid"])
        assert str(mnt) not in Path("/proc/self/mountinfo").read_text()
        assert not manager.status(prefix).up
        # Its address is gone with it: nothing answers there.
        assert ssh(lab, "v-3-VM", "true").returncode == 255
    finally:
        manager.start_vm(prefix, "v-3-VM")
    started = vm(lab, "v-3-VM")
    assert started["ssh"]["running"] is True and started["ssh"]["pid"] != before["ssh"]["pid"]
    # The same VM again: same host key, same files.
    assert started["ssh"]["host_key"] == before["ssh"]["host_key"]
    assert started["script"] == before["script"]
    out = ssh(lab, "v-3-VM", "test", "-x", SCRIPT)
    assert out.returncode == 0, out.stderr


def test_up_again_restarts_a_dead_sshd(lab: dict[str, Any]) -> None:
    prefix = lab["prefix"]
    pid = vm(lab, "r-1-VM")["ssh"]["pid"]
    assert system.terminate([pid]) == []
    assert vm(lab, "r-1-VM")["ssh"]["running"] is False
    again = manager.up(prefix)  # no --ssh: a lab with sshd keeps it
    router = again.by_role("router")
    assert router.ssh is not None and router.ssh.running and router.ssh.pid != pid
    assert ssh(lab, "r-1-VM", "true").returncode == 0


def test_down_leaves_nothing_even_with_a_session_open() -> None:
    skip_unless_possible()
    prefix = new_prefix()
    client: subprocess.Popen[str] | None = None
    try:
        lab = manager.up(prefix, ssh=True).to_dict()
        client = subprocess.Popen(
            ssh_argv(lab["ssh"], "169.254.0.20", "sleep 60"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        state = manager.default_state_dir(prefix)
        # Wait for the session's command in the VM: a connection's processes are there.
        deadline = time.monotonic() + 10
        while not any("sleep 60" in " ".join(system.cmdline(p)) for p in vm_pids(prefix)):
            assert client.poll() is None, client.communicate()
            assert time.monotonic() < deadline, "the session did not start"
            time.sleep(0.05)
        manager.down(prefix)
        assert leftovers(prefix) == []
        assert not state.exists()
        client.wait(10)  # its connection went with the VM (raises if it did not)
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        clean_up(prefix)


def test_a_state_dir_below_tmp_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    skip_unless_possible()
    prefix = new_prefix()
    try:
        with pytest.raises(manager.LabError, match=r"sshd refuses keys below /tmp"):
            manager.up(prefix, tmp_path / "state", ssh=True)
        assert lab_namespaces(prefix) == []
        assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    finally:
        manager.down(prefix, tmp_path / "state")


def test_cli_status_shows_sshd(lab: dict[str, Any]) -> None:
    out = cloudiag("lab", "status", "--prefix", lab["prefix"], env={**os.environ, "COLUMNS": "400"})
    assert out.returncode == 0, out.stderr
    pid = vm(lab, "r-1-VM")["ssh"]["pid"]
    assert f"sshd 169.254.0.10:3922/tcp pid {pid}" in out.stdout
    assert f"{SCRIPT} python3" in out.stdout
    assert (
        f"ssh: from namespace {lab['prefix']}-host (169.254.0.1) as root, port 3922" in out.stdout
    )


def test_demo_with_the_ssh_executor(tmp_path: Path) -> None:
    skip_unless_possible()
    prefix = new_prefix()
    demo = CliProcess(
        *("demo", "--executor", "ssh", "--port", "0", "--lab-prefix", prefix),
        *("--data-dir", str(tmp_path / "data")),
        log=tmp_path / "demo.log",
    )
    try:
        demo.wait_for(rf"bringing the lab up \(prefix {prefix}, with sshd\)", timeout=60)
        demo.wait_for(r"^cloudiag demo is running$", timeout=180)
        lab = manager.status(prefix)
        assert lab.ssh is not None
        assert all(ns.ssh is not None and ns.ssh.running for ns in lab.system_vms())
        data = tmp_path / "data"
        agents = [
            system.cmdline(int(p))
            for p in subprocess.run(
                ["pgrep", "-f", f"cloudiag agent --config {data}/"],
                capture_output=True,
                text=True,
            ).stdout.split()
        ]
        # Each runs on its config file (`cloudiag host add`'s), which names the executor.
        configs = [config_file.load(Path(a[a.index("--config") + 1])) for a in agents]
        assert configs and all(c.executor == "ssh" for c in configs), agents
    finally:
        assert demo.stop() == 0, demo.output()
        clean_up(prefix)


def test_a_running_vm_gets_more_files_of_its_own(lab: dict[str, Any]) -> None:
    """The mechanism is general: a file the host has (bound over it) and one it has not
    (its mount point from an overlay of /var/lib/misc), added while the VM runs."""
    prefix = lab["prefix"]
    state = manager.default_state_dir(prefix)
    ssvm = topology.node("s-2-VM")
    root = mountns.vm_root(state, ssvm)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/hostname").write_text("s-2-VM\n")
    (root / "var/lib/misc").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/misc/dnsmasq.leases").write_text("leases of s-2-VM\n")
    host_name = Path("/etc/hostname").read_text()
    mountns.add(prefix, ssvm, state, "/etc/hostname")
    mountns.add(prefix, ssvm, state, "/var/lib/misc/dnsmasq.leases")
    out = ssh(lab, "s-2-VM", "cat", "/etc/hostname", "/var/lib/misc/dnsmasq.leases")
    assert (out.returncode, out.stdout) == (0, "s-2-VM\nleases of s-2-VM\n"), out.stderr
    # The host's are untouched, the rest of /var/lib/misc is still there, the other VMs
    # see theirs.
    assert Path("/etc/hostname").read_text() == host_name
    assert not Path("/var/lib/misc/dnsmasq.leases").exists()
    listing = ssh(lab, "s-2-VM", "ls", "/var/lib/misc")
    assert set(os.listdir("/var/lib/misc")) | {"dnsmasq.leases"} == set(listing.stdout.split())
    other = ssh(lab, "r-1-VM", "cat", "/etc/hostname")
    assert other.stdout == host_name
