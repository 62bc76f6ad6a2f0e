"""The systemd units shipped in the package: `systemd-analyze verify` accepts them with no
warning (an unknown key or a bad value is only a warning to systemd), and they keep the
hardening docs/deployment.md promises. Skipped where systemd-analyze is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

UNITS = resources.files("cloudiag") / "deploy" / "systemd"
#: Where the units expect cloudiag (docs/deployment.md installs it there).
INSTALLED = "/opt/cloudiag/bin/cloudiag"


def _unit(name: str) -> str:
    return (UNITS / name).read_text()


def _verify(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify of the unit, its ExecStart pointed at this venv's cloudiag
    (verify checks that the command exists)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    here = str(Path(sys.executable).parent / "cloudiag")
    path = tmp_path / name
    path.write_text(text.replace(INSTALLED, here))
    return subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("name", ["cloudiag-server.service", "cloudiag-agent.service"])
def test_systemd_accepts_the_unit(tmp_path: Path, name: str) -> None:
    verified = _verify(tmp_path, name, _unit(name))
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr


def test_systemd_accepts_the_agent_with_its_netns_drop_in(tmp_path: Path) -> None:
    # A drop-in's [Service] is read after the unit's: the same as one file holding both.
    merged = _unit("cloudiag-agent.service") + _unit("cloudiag-agent-netns.conf")
    verified = _verify(tmp_path, "cloudiag-agent-lab.service", merged)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr


def test_the_verification_sees_a_mistake(tmp_path: Path) -> None:
    # Guards the test: a misspelt option must not pass as clean.
    broken = _unit("cloudiag-server.service").replace("ProtectSystem=", "ProtectSytem=")
    verified = _verify(tmp_path, "cloudiag-server.service", broken)
    assert "ProtectSytem" in verified.stderr


def _settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize(
    ("name", "data_dir"),
    [
        ("cloudiag-server.service", "/var/lib/cloudiag"),
        ("cloudiag-agent.service", "/var/lib/cloudiag-agent"),
    ],
)
def test_the_unit_is_hardened_and_writes_only_its_data_dir(name: str, data_dir: str) -> None:
    unit = _settings(_unit(name))
    assert unit["Restart"] == ["on-failure"]
    assert unit["NoNewPrivileges"] == ["true"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["PrivateTmp"] == ["true"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["ReadWritePaths"] == [data_dir]
    assert f"CLOUDIAG_DATA_DIR={data_dir}" in unit["Environment"]
    assert unit["ExecStart"][0].startswith(INSTALLED)


def test_the_netns_drop_in_grants_exactly_what_entering_namespaces_needs() -> None:
    drop_in = _settings(_unit("cloudiag-agent-netns.conf"))
    assert drop_in["CapabilityBoundingSet"] == ["CAP_SYS_ADMIN CAP_NET_RAW"]
    assert drop_in["AmbientCapabilities"] == ["CAP_SYS_ADMIN CAP_NET_RAW"]
