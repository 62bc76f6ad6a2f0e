"""The SSH executor against a real sshd standing in for a system VM.

The "VM" is 127.0.0.1 through an sshd of the test's own, whose /opt is a folder of the test
(a mount namespace): the zipapp goes to /opt/cloudiag, the CloudStack-style script to
/opt/cloud/bin/diagnostics.py. Tools really run (ping to 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloudiag.agent.executors.base import Outcome, Stream
from cloudiag.agent.executors.ssh import SshExecutor
from cloudiag.bus.messages import RunRequest, SshAccess, VmReport
from cloudiag.domain import VmType
from cloudiag.sysvm import build
from tests.ssh_server import SSHD, SshServer, running

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd needs root"),
    pytest.mark.skipif(not os.path.exists(SSHD), reason="openssh-server is not installed"),
]

REMOTE_DIR = "/opt/cloudiag"
PYTHON2 = Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python2.7"

# CloudStack's diagnostics.py as it runs the command and prints its answer (the type's
# defaults it adds are left out). One deviation for the tests: /opt/fakebin, when it is
# there, comes first on PATH, so that a test can give a "tool" output of its choice.
CLOUDSTACK_SCRIPT = """\
#!{python}
import os
import subprocess
import sys


def run_cmd(command):
    if command is not None:
        p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             shell=True)
        stdout, stderr = p.communicate()
        return_code = p.returncode
    else:
        return_code = 1
        stdout = "Missing command"
        stderr = ""
    print('%s&&' % stdout.strip())
    print('%s&&' % stderr.strip())
    print('%s' % return_code)


def get_command():
    arguments = sys.argv
    cmd = " ".join(arguments[1:])
    if 'ping' in arguments[1] and '-c' not in cmd:
        cmd = cmd + ' -c 4'
    return cmd


if os.path.isdir('/opt/fakebin'):
    os.environ['PATH'] = '/opt/fakebin:' + os.environ['PATH']
run_cmd(get_command())
"""


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    with running(tmp_path / "vm") as server:
        yield server


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[SshExecutor]:
    ex = SshExecutor(tmp_path / "state", remote_dir=REMOTE_DIR)
    try:
        yield ex
    finally:
        await ex.close()


def vm(server: SshServer, **changes: object) -> VmReport:
    access = SshAccess(
        address="127.0.0.1", port=server.port, key_file=str(server.client_key)
    ).model_copy(update=changes)
    return VmReport(
        id="vm-r1", name="r-1-VM", vm_type=VmType.DOMAIN_ROUTER, state="Running", access=access
    )


def request(job_id: str = "j1", **changes: object) -> RunRequest:
    base = RunRequest(
        job_id=job_id,
        start_by=time.time() + 60,
        vm_id="vm-r1",
        type="ping",
        address="127.0.0.1",
        params=["-c", "1"],
        time_limit=20,
    )
    return base.model_copy(update=changes)


async def run(
    ex: SshExecutor, target: VmReport, req: RunRequest, stop: asyncio.Event | None = None
) -> tuple[Outcome, list[tuple[Stream, str]]]:
    lines: list[tuple[Stream, str]] = []

    async def on_record(stream: Stream, text: str) -> None:
        lines.append((stream, text))

    out = await ex.execute(target, req, on_record=on_record, stop=stop or asyncio.Event())
    return out, lines


def install_script(server: SshServer, python: str, fake_tool: str | None = None) -> None:
    bin_dir = server.opt / "cloud" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "diagnostics.py"
    script.write_text(CLOUDSTACK_SCRIPT.format(python=python))
    script.chmod(0o755)
    if fake_tool is not None:
        fake = server.opt / "fakebin"
        fake.mkdir(exist_ok=True)
        (fake / "ping").write_text("#!/bin/sh\n" + textwrap.dedent(fake_tool))
        (fake / "ping").chmod(0o755)


# --- our zipapp in a warm session -------------------------------------------------------


async def test_the_zipapp_is_installed_once_and_every_job_shares_one_session(
    sshd: SshServer, executor: SshExecutor
) -> None:
    target = vm(sshd)
    first, lines = await run(executor, target, request("j1"))
    assert first.exitcode == "0", first
    assert "bytes from 127.0.0.1" in first.stdout and first.error == ""
    assert ("stdout", first.stdout.splitlines(keepends=True)[0]) in lines
    installed = sshd.opt / "cloudiag" / build.archive_name(build.current_stamp())
    assert installed.is_file()

    outcomes = await asyncio.gather(*(run(executor, target, request(f"j{n}")) for n in range(5)))
    assert [o.exitcode for o, _ in outcomes] == ["0"] * 5
    # One upload, one session, one SSH connection; one process on the VM per diagnostic.
    assert executor.installs == 1 and executor.pool.opened() == 1
    assert executor.connections.opened == 1
    assert executor.tools_started() == 6 and executor.spawned() == 7


async def test_an_outdated_or_replaced_zipapp_is_installed_again(
    sshd: SshServer, executor: SshExecutor, tmp_path: Path
) -> None:
    folder = sshd.opt / "cloudiag"
    folder.mkdir()
    (folder / "cloudiag-sysvm-0123456789abcdef.pyz").write_bytes(b"an older build")
    out, _ = await run(executor, vm(sshd), request())
    assert out.exitcode == "0" and executor.installs == 1

    # Same name and size, another build inside: its ready line says so, and ours goes back.
    ours = folder / build.archive_name(build.current_stamp())
    stamp = build.current_stamp().encode()
    data = ours.read_bytes()
    assert data.count(b'stamp="' + stamp + b'"') == 1
    ours.write_bytes(data.replace(b'stamp="' + stamp, b'stamp="' + b"f" * len(stamp)))
    await executor.pool.close()
    out, _ = await run(executor, vm(sshd), request("j2"))
    assert out.exitcode == "0", out
    assert executor.installs == 2 and ours.read_bytes() == data


async def test_a_vm_without_python_says_so(sshd: SshServer, executor: SshExecutor) -> None:
    out, _ = await run(executor, vm(sshd, python="python3-missing"), request())
    assert out.exitcode == "-1"
    assert out.error.startswith("VM r-1-VM has no usable python3-missing (")
    assert "not found" in out.error
    assert out.error.endswith("set its script to cloudstack or install python3")
    assert executor.tools_started() == 0


async def test_sshd_killed_during_a_job_fails_it_soon_and_the_next_job_reconnects(
    sshd: SshServer, executor: SshExecutor
) -> None:
    target = vm(sshd)
    first_line = asyncio.Event()

    async def on_record(stream: Stream, text: str) -> None:
        first_line.set()

    job = asyncio.ensure_future(
        executor.execute(
            target,
            request("long", params=["-c", "17", "-i", "0.5"]),
            on_record=on_record,
            stop=asyncio.Event(),
        )
    )
    await asyncio.wait_for(first_line.wait(), 15)
    killed = time.monotonic()
    sshd.stop()
    out = await asyncio.wait_for(job, 20 + 5)
    assert time.monotonic() - killed < 5
    assert out.exitcode == "-1"
    assert "r-1-VM" in out.error and "ended during the job" in out.error, out.error
    assert "bytes from 127.0.0.1" in out.stdout  # What came before the loss is kept.
    assert _pings("17") == []  # The session stopped its tool when its input closed.

    with_sshd_gone, _ = await run(executor, target, request("gone"))
    assert "connection refused" in with_sshd_gone.error

    sshd.start()
    again, _ = await run(executor, target, request("again"))
    assert again.exitcode == "0", again
    assert executor.connections.opened == 2


async def test_a_vm_that_hangs_fails_its_job_and_the_next_job_gets_a_new_session(
    sshd: SshServer, executor: SshExecutor
) -> None:
    target = vm(sshd)
    assert (await run(executor, target, request("warm")))[0].exitcode == "0"
    job = asyncio.ensure_future(
        run(executor, target, request("hung", params=["-c", "16", "-i", "0.5"]))
    )
    await asyncio.sleep(1.0)
    frozen = time.monotonic()
    sshd.pause()
    try:
        out, _ = await asyncio.wait_for(job, 20 + 5)
        # The pool pings every 5 s and waits 5 s for the answer.
        assert time.monotonic() - frozen < 12
        assert out.exitcode == "-1" and "r-1-VM" in out.error, out
        assert "ping" in out.error
    finally:
        sshd.resume()
    again, _ = await run(executor, target, request("after"))
    assert again.exitcode == "0", again
    assert executor.pool.opened() == 2
    assert _pings("16") == []


async def test_a_job_waits_for_a_vm_that_does_not_answer_no_longer_than_its_limit(
    sshd: SshServer, executor: SshExecutor
) -> None:
    """Connecting, installing and starting the session count against the job's own limit;
    the opening goes on for the jobs after it."""
    sshd.pause()  # The TCP connection is taken (the kernel's backlog), then nothing.
    try:
        started = time.monotonic()
        out, _ = await run(executor, vm(sshd), request("slow", time_limit=1))
        assert time.monotonic() - started < 2
        assert out.exitcode == "-1" and out.error == (
            "cannot open a session to r-1-VM within the job's time limit: it was still "
            "connecting, installing or starting"
        ), out
        started = time.monotonic()
        out, _ = await run(executor, vm(sshd, script="cloudstack"), request("s", time_limit=1))
        assert time.monotonic() - started < 2
        assert out.exitcode == "-1" and out.error.startswith(
            "cannot reach r-1-VM within the job's time limit: its SSH connection is still opening"
        ), out
    finally:
        sshd.resume()
    again, _ = await run(executor, vm(sshd), request("after"))
    assert again.exitcode == "0", again
    assert executor.connections.opened == 1


def _pings(count: str, wait: float = 3.0) -> list[str]:
    """Command lines of ping processes with that count still running after ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        found = subprocess.run(
            ["pgrep", "-a", "-x", "ping"], capture_output=True, text=True
        ).stdout.splitlines()
        mine = [line for line in found if f"-c {count} " in f"{line} "]
        if not mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


async def test_cancel_and_time_limit_over_the_session(
    sshd: SshServer, executor: SshExecutor
) -> None:
    target = vm(sshd)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.0, stop.set)
    out, _ = await run(executor, target, request("c", params=["-c", "19", "-i", "0.5"]), stop)
    assert out.cancelled and "[cloudiag] cancelled" in out.stderr
    started = time.monotonic()
    out, _ = await run(
        executor, target, request("t", params=["-c", "18", "-i", "0.5"], time_limit=1.5)
    )
    assert out.timed_out and time.monotonic() - started < 1.5 + 5
    assert "time limit of 1.5 s reached" in out.stderr
    assert _pings("19") == [] and _pings("18") == []


async def test_a_refused_request_runs_nothing(sshd: SshServer, executor: SshExecutor) -> None:
    out, _ = await run(executor, vm(sshd), request(params=["--flood"]))
    assert out.refused and executor.spawned() == 0 and executor.connections.opened == 0


# --- the VM's own CloudStack script ----------------------------------------------------


async def test_the_cloudstack_script_python3_form(sshd: SshServer, executor: SshExecutor) -> None:
    install_script(sshd, "/usr/bin/python3")
    out, lines = await run(executor, vm(sshd, script="cloudstack"), request())
    assert out.exitcode == "0", out
    assert out.stdout.startswith("PING 127.0.0.1") and "1 received" in out.stdout
    assert out.stdout.endswith("\n") and "\\n" not in out.stdout
    assert lines == [("stdout", out.stdout)]
    assert executor.script_runs == 1 and executor.pool.opened() == 0
    assert not (sshd.opt / "cloudiag").exists()  # No zipapp for this VM.


@pytest.mark.skipif(not PYTHON2.exists(), reason="no python2.7 on this machine")
async def test_the_cloudstack_script_python2_form(sshd: SshServer, executor: SshExecutor) -> None:
    install_script(sshd, str(PYTHON2))
    out, _ = await run(executor, vm(sshd, script="cloudstack"), request())
    assert out.exitcode == "0", out
    assert out.stdout.startswith("PING 127.0.0.1") and "1 received" in out.stdout


@pytest.mark.parametrize("python", ["/usr/bin/python3", str(PYTHON2)], ids=["py3", "py2"])
async def test_output_holding_ampersands_and_a_failing_tool(
    sshd: SshServer, executor: SshExecutor, python: str
) -> None:
    if not Path(python).exists():
        pytest.skip(f"no {python} on this machine")
    tool = """\
        printf 'line one && two\\n&&\\nb%s&&\\nlast &&' "'x'"
        echo 'warning: it is && odd' >&2
        exit 3
    """
    install_script(sshd, python, fake_tool=tool)
    out, _ = await run(executor, vm(sshd, script="cloudstack"), request())
    assert out.stdout == "line one && two\n&&\nb'x'&&\nlast &&\n"
    assert out.stderr == "warning: it is && odd\n"
    assert out.exitcode == "3" and out.error == ""


async def test_the_cloudstack_script_time_limit_and_missing_script(
    sshd: SshServer, executor: SshExecutor
) -> None:
    target = vm(sshd, script="cloudstack")
    out, _ = await run(executor, target, request())
    assert out.exitcode == "-1"
    assert "cannot run /opt/cloud/bin/diagnostics.py (exit status 127" in out.error

    install_script(sshd, "/usr/bin/python3", fake_tool="sleep 30\n")
    started = time.monotonic()
    out, _ = await run(executor, target, request(time_limit=1.5))
    assert out.timed_out and time.monotonic() - started < 1.5 + 5
    assert "its output is partial" in out.stderr


async def test_the_cloudstack_script_connection_lost_mid_run(
    sshd: SshServer, executor: SshExecutor
) -> None:
    install_script(sshd, "/usr/bin/python3", fake_tool="sleep 30\n")
    target = vm(sshd, script="cloudstack")
    job = asyncio.ensure_future(run(executor, target, request()))
    await asyncio.sleep(1.0)
    killed = time.monotonic()
    sshd.stop()
    out, _ = await asyncio.wait_for(job, 20 + 5)
    assert time.monotonic() - killed < 5
    assert out.exitcode == "-1" and "r-1-VM" in out.error and "lost" in out.error


async def test_names_are_refused_for_the_script_when_networks_are_denied(
    sshd: SshServer, executor: SshExecutor
) -> None:
    install_script(sshd, "/usr/bin/python3")
    out, _ = await run(
        executor,
        vm(sshd, script="cloudstack"),
        request(address="localhost", denied_networks=["192.0.2.0/24"]),
    )
    assert "cannot check where localhost points" in out.refused
    assert executor.script_runs == 0


async def test_auto_picks_the_zipapp_where_python_runs_else_the_script(
    sshd: SshServer, executor: SshExecutor
) -> None:
    install_script(sshd, "/usr/bin/python3")
    out, _ = await run(executor, vm(sshd, script="auto"), request())
    assert out.exitcode == "0" and executor.tools_started() == 1 and executor.script_runs == 0

    other = SshExecutor(None, remote_dir=REMOTE_DIR)
    try:
        out, _ = await run(other, vm(sshd, script="auto", python="python3-missing"), request())
        assert out.exitcode == "0", out
        assert other.script_runs == 1 and other.tools_started() == 0
        await run(other, vm(sshd, script="auto", python="python3-missing"), request("j2"))
        assert other.script_runs == 2 and other.connections.opened == 1
    finally:
        await other.close()
