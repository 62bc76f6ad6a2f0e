"""Host key policies: trust on first use pinned in the state dir, a known_hosts file, a
pinned fingerprint; a changed key refused with the VM, both fingerprints and the file."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import asyncssh
import pytest

from cloudiag.agent import wiring
from cloudiag.agent.executors.host_keys import HostKeys, fingerprint, known_hosts_name
from cloudiag.agent.executors.ssh import SshExecutor
from cloudiag.bus.messages import SshAccess

ACCESS = SshAccess(address="169.254.0.10", key_file="/root/.ssh/id_rsa.cloud")


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519").convert_to_public()


def line(name: str, key: asyncssh.SSHKey) -> str:
    return f"{name} {key.export_public_key().decode().strip()}\n"


def test_known_hosts_names_are_openssh_s() -> None:
    assert known_hosts_name("169.254.0.10", 3922) == "[169.254.0.10]:3922"
    assert known_hosts_name("169.254.0.10", 22) == "169.254.0.10"


async def test_the_first_key_is_pinned_privately_then_only_it_is_accepted(
    tmp_path: Path,
) -> None:
    key, other = new_key(), new_key()
    check = await HostKeys(tmp_path).check(ACCESS, "r-1-VM")
    assert check.known_hosts == ([], [], [])
    assert check.validate(key)
    await check.confirm()

    pins = tmp_path / "ssh" / "known_hosts"
    assert pins.read_text() == line("[169.254.0.10]:3922", key)
    assert stat.S_IMODE(pins.stat().st_mode) == 0o600
    assert stat.S_IMODE(pins.parent.stat().st_mode) == 0o700

    # A new agent process reads the pin: asyncssh trusts it, any other key is refused.
    again = await HostKeys(tmp_path).check(ACCESS, "r-1-VM")
    assert again.known_hosts[0] == [key]
    assert not again.validate(other)
    for part in ("r-1-VM", fingerprint(key), fingerprint(other), str(pins), "changed"):
        assert part in again.refusal
    await again.confirm()
    assert pins.read_text() == line("[169.254.0.10]:3922", key)  # Never replaced.


async def test_pins_of_several_vms_at_once_all_land(tmp_path: Path) -> None:
    keys = HostKeys(tmp_path)
    accesses = [ACCESS.model_copy(update={"address": f"169.254.0.{n}"}) for n in range(10, 20)]
    checks = [await keys.check(access, "vm") for access in accesses]
    found = [new_key() for _ in checks]
    for check, key in zip(checks, found, strict=True):
        assert check.validate(key)
    await asyncio.gather(*(check.confirm() for check in checks))
    text = (tmp_path / "ssh" / "known_hosts").read_text()
    assert sorted(text.splitlines()) == sorted(
        line(known_hosts_name(a.address, a.port), k).strip()
        for a, k in zip(accesses, found, strict=True)
    )
    assert not list((tmp_path / "ssh").glob(".known_hosts.*"))  # No partial file left.


async def test_without_a_state_dir_the_pins_last_as_long_as_the_agent() -> None:
    keys = HostKeys(None)
    key, other = new_key(), new_key()
    first = await keys.check(ACCESS, "r-1-VM")
    assert first.validate(key)
    await first.confirm()
    second = await keys.check(ACCESS, "r-1-VM")
    assert second.known_hosts[0] == [key]
    assert not second.validate(other)
    assert "restart the agent" in second.refusal


async def test_an_operators_known_hosts_file_is_the_only_truth(tmp_path: Path) -> None:
    key, other = new_key(), new_key()
    known = tmp_path / "known_hosts"
    known.write_text(line("[169.254.0.10]:3922", key) + line("[169.254.0.99]:3922", other))
    access = ACCESS.model_copy(update={"known_hosts": str(known)})

    check = await HostKeys(tmp_path / "state").check(access, "r-1-VM")
    assert check.known_hosts[0] == [key]
    assert not check.validate(other)
    assert str(known) in check.refusal and fingerprint(other) in check.refusal
    await check.confirm()
    assert not (tmp_path / "state" / "ssh").exists()  # TOFU pins nothing here.

    unknown = access.model_copy(update={"address": "169.254.0.50"})
    check = await HostKeys(tmp_path / "state").check(unknown, "s-2-VM")
    assert not check.validate(key)
    assert f"{known} has no key for [169.254.0.50]:3922" in check.refusal


async def test_an_unreadable_known_hosts_file_says_so(tmp_path: Path) -> None:
    access = ACCESS.model_copy(update={"known_hosts": str(tmp_path / "absent")})
    with pytest.raises(ValueError, match="cannot read the known_hosts file"):
        await HostKeys(None).check(access, "r-1-VM")


async def test_a_pinned_fingerprint_wins_over_everything(tmp_path: Path) -> None:
    key, other = new_key(), new_key()
    known = tmp_path / "known_hosts"
    known.write_text(line("[169.254.0.10]:3922", other))
    access = ACCESS.model_copy(update={"host_key": fingerprint(key), "known_hosts": str(known)})
    check = await HostKeys(tmp_path).check(access, "r-1-VM")
    assert check.known_hosts == ([], [], [])
    assert check.validate(key)
    assert not check.validate(other)
    assert fingerprint(key) in check.refusal and fingerprint(other) in check.refusal
    assert "host_key" in check.refusal


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host_key", "MD5:aa"),
        ("python", "-c"),
        ("python", "python3 -c x"),
        ("python", "py;rm"),
        ("netns", "../x"),
    ],
)
def test_access_fields_that_reach_a_command_line_are_plain_words(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        SshAccess.model_validate({**ACCESS.model_dump(), field: value})


def test_an_older_agents_ssh_access_still_reads() -> None:
    old = {
        "kind": "ssh",
        "address": "169.254.0.10",
        "port": 3922,
        "user": "root",
        "key_file": "/root/.ssh/id_rsa.cloud",
    }
    access = SshAccess.model_validate(old)
    assert (access.script, access.python, access.netns) == ("cloudiag", "python3", None)
    assert SshAccess.model_validate({**old, "python": "/usr/bin/python3.11"}).python


def test_the_agent_runs_ssh_vms_with_its_state_dirs_pins(tmp_path: Path) -> None:
    found = wiring.executors(tmp_path).for_access(ACCESS)
    assert isinstance(found, SshExecutor)
    assert found.connections.host_keys.store.path == tmp_path / "ssh" / "known_hosts"
