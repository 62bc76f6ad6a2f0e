"""The agent's netns executor against a private pair of network namespaces.

Two namespaces ``cdx<rand>-a`` and ``cdx<rand>-b`` are joined by a veth pair (eth0 on both
sides, 203.0.113.1/24 and 203.0.113.2/24, TEST-NET-3). Namespace A also gets a second veth
pair (vx0/vx1, 192.0.2.1/24) so that arping has to pick its interface from the routing
table. Nothing is created in the root namespace and everything is removed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudiag.agent.executors import netns
from cloudiag.agent.executors.base import Stream
from cloudiag.bus.messages import NetnsAccess, RunRequest, VmReport
from cloudiag.sysvm.errors import DiagnosticsInputError
from tests.sysvm_zipapp import zipapp

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is not installed"),
]

PEER = "203.0.113.2"
UNUSED = "203.0.113.99"


@dataclass(frozen=True)
class Pair:
    a: str
    b: str


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def pids_in(namespace: str) -> list[int]:
    done = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, timeout=10, check=False
    )
    return [int(p) for p in done.stdout.split()]


def _is_session(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in argv


def tools_in(namespace: str) -> list[int]:
    """The processes in the namespace but its warm session: the tools left running."""
    return [pid for pid in pids_in(namespace) if not _is_session(pid)]


def sessions_in(namespace: str) -> list[int]:
    return [pid for pid in pids_in(namespace) if _is_session(pid)]


def _remove(namespace: str) -> None:
    for pid in pids_in(namespace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    tag = secrets.token_hex(3)
    names = Pair(f"cdx{tag}-a", f"cdx{tag}-b")
    try:
        try:
            ip("netns", "add", names.a)
            ip("netns", "add", names.b)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create network namespaces: {exc.stderr!r}")
        ip(
            "-n",
            names.a,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            names.b,
        )
        ip("-n", names.a, "addr", "add", "203.0.113.1/24", "dev", "eth0")
        ip("-n", names.b, "addr", "add", "203.0.113.2/24", "dev", "eth0")
        ip("-n", names.a, "link", "add", "vx0", "type", "veth", "peer", "name", "vx1")
        ip("-n", names.a, "addr", "add", "192.0.2.1/24", "dev", "vx0")
        for ns, links in ((names.a, ("lo", "eth0", "vx0", "vx1")), (names.b, ("lo", "eth0"))):
            for link in links:
                ip("-n", ns, "link", "set", link, "up")
        yield names
    finally:
        # Deleting a namespace destroys its interfaces, the veth pairs included.
        _remove(names.a)
        _remove(names.b)


@pytest.fixture
def clean(pair: Pair) -> Iterator[Pair]:
    """Each test must leave no process behind in namespace A but its warm session."""
    yield pair
    assert tools_in(pair.a) == []
    assert len(sessions_in(pair.a)) <= 1


async def test_ping_peer(clean: Pair) -> None:
    result = await netns.run_in_netns(clean.a, "ping", PEER, "-c 2 -i 0.2")
    assert result.exitcode == "0", result
    assert "2 received" in result.stdout
    assert not result.timed_out and not result.truncated
    assert result.argv == ["ping", "-c", "2", "-i", "0.2", "--", PEER]
    assert result.duration > 0


async def test_ping_unused_address_fails(clean: Pair) -> None:
    result = await netns.run_in_netns(clean.a, "ping", UNUSED, ["-c", "1", "-W", "1"])
    assert result.exitcode not in ("0", "-1"), result
    assert "0 received" in result.stdout


async def test_traceroute_peer(clean: Pair) -> None:
    result = await netns.run_in_netns(clean.a, "traceroute", PEER, "-n -m 2 -q 1 -w 1")
    assert result.exitcode == "0", result
    assert f"traceroute to {PEER}" in result.stdout
    assert f" 1  {PEER}" in result.stdout


async def test_arping_picks_interface_from_routes(clean: Pair) -> None:
    result = await netns.run_in_netns(clean.a, "arping", PEER, "-c 2 -w 3")
    assert result.exitcode == "0", result
    assert f"ARPING {PEER} from 203.0.113.1 eth0" in result.stdout
    assert "Unicast reply from 203.0.113.2" in result.stdout
    assert "Received 2 response(s)" in result.stdout


def test_choose_interface_inside_namespace(clean: Pair) -> None:
    # The script's own route lookup, run where it runs: inside the namespace.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from sysvm import route as r; "
        "print(r.choose_interface('203.0.113.2'), r.choose_interface('192.0.2.7'), "
        "r.choose_interface('203.0.113.1'), r.choose_interface('198.51.100.7'))"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", clean.a, sys.executable, "-I", "-S", "-c", code, zipapp()],
        capture_output=True,
        timeout=30,
        check=True,
    )
    # No default route in the namespace: 198.51.100.7 has no interface.
    assert done.stdout.split() == [b"eth0", b"vx0", b"eth0", b"None"]


async def test_lines_stream_while_the_process_runs(clean: Pair) -> None:
    seen: list[tuple[float, str, str, int]] = []

    async def on_line(stream: str, text: str) -> None:
        running = len(pids_in(clean.a)) if not seen else -1
        seen.append((time.monotonic(), stream, text, running))

    result = await netns.run_in_netns(clean.a, "ping", PEER, "-c 4 -i 0.3", on_line=on_line)
    finished = time.monotonic()
    assert result.exitcode == "0"
    first_at, stream, text, running = seen[0]
    assert stream == "stdout" and text.startswith(f"PING {PEER}")
    assert running > 0, "the first line should arrive while ping still runs"
    assert finished - first_at > 0.5
    assert "".join(t for _, s, t, _ in seen if s == "stdout") == result.stdout


async def test_time_limit_kills_the_group(clean: Pair) -> None:
    started = time.monotonic()
    result = await netns.run_in_netns(clean.a, "ping", PEER, "-c 100 -i 0.2", time_limit=1.0)
    assert time.monotonic() - started < 4
    assert result.timed_out
    assert "64 bytes from 203.0.113.2" in result.stdout  # partial output kept
    assert "100 packets transmitted" not in result.stdout
    assert "[cloudiag] time limit of 1 s reached; process killed" in result.stderr
    assert result.exitcode != "0"
    assert tools_in(clean.a) == []


async def test_cancellation_kills_the_group(clean: Pair) -> None:
    first = asyncio.Event()

    async def on_line(stream: str, text: str) -> None:
        first.set()

    task = asyncio.create_task(
        netns.run_in_netns(clean.a, "ping", PEER, "-c 100 -i 0.2", on_line=on_line)
    )
    await asyncio.wait_for(first.wait(), 10)
    assert tools_in(clean.a) != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Killed and reaped before CancelledError came through: nothing to wait for.
    assert tools_in(clean.a) == []


async def test_stop_event_kills_the_group_and_keeps_partial_output(clean: Pair) -> None:
    first = asyncio.Event()
    stop = asyncio.Event()

    async def on_line(stream: str, text: str) -> None:
        if "icmp_seq" in text:
            first.set()

    task = asyncio.create_task(
        netns.run_in_netns(clean.a, "ping", PEER, "-c 100 -i 0.2", on_line=on_line, stop=stop)
    )
    await asyncio.wait_for(first.wait(), 10)
    stop.set()
    result = await asyncio.wait_for(task, 10)
    assert result.cancelled and not result.timed_out
    assert "icmp_seq=1" in result.stdout
    assert "cancelled" in result.stderr
    assert tools_in(clean.a) == []


async def test_failing_callback_kills_the_group(clean: Pair) -> None:
    async def on_line(stream: str, text: str) -> None:
        raise RuntimeError("consumer broke")

    with pytest.raises(RuntimeError, match="consumer broke"):
        await netns.run_in_netns(clean.a, "ping", PEER, "-c 100 -i 0.2", on_line=on_line)
    assert tools_in(clean.a) == []


async def test_output_is_truncated_but_read_to_the_end(clean: Pair) -> None:
    result = await netns.run_in_netns(clean.a, "ping", PEER, "-c 3 -i 0.2", max_output=100)
    assert result.truncated
    assert result.exitcode == "0"  # the exit record came after the discarded output
    assert len(result.stdout.encode()) <= 100
    assert "output truncated at 100 bytes" in result.stderr


async def test_missing_namespace(clean: Pair) -> None:
    before = netns.spawn_count()
    result = await netns.run_in_netns(f"{clean.a}-missing", "ping", PEER, "-c 1")
    assert result.exitcode == "-1"
    assert f'network namespace "{clean.a}-missing" does not exist' in result.stderr
    assert result.stdout == ""
    assert netns.spawn_count() == before


@pytest.mark.parametrize("namespace", ["../etc", "a/b", "-x", "..", "", "a b", "x\n"])
async def test_odd_namespace_names_are_not_used(namespace: str) -> None:
    before = netns.spawn_count()
    result = await netns.run_in_netns(namespace, "ping", PEER, None)
    assert result.exitcode == "-1"
    assert "does not exist" in result.stderr
    assert netns.spawn_count() == before


@pytest.mark.parametrize(
    ("address", "params", "field"),
    [
        (PEER, "-c 1; id", "params"),
        (PEER, "-f", "params"),
        (PEER, "-c 1000", "params"),
        ("$(id)", None, "ipaddress"),
        ("-oProxyCommand=x", None, "ipaddress"),
    ],
)
async def test_refused_input_spawns_nothing(
    clean: Pair, address: str, params: str | None, field: str
) -> None:
    before = netns.spawn_count()
    with pytest.raises(DiagnosticsInputError) as info:
        await netns.run_in_netns(clean.a, "ping", address, params)
    assert info.value.field == field
    assert netns.spawn_count() == before


async def test_python_that_cannot_start(clean: Pair) -> None:
    result = await netns.run_in_netns(clean.a, "ping", PEER, "-c 1", python="/nonexistent/python3")
    assert result.exitcode == "-1"
    assert "/nonexistent/python3" in result.stderr


def _vm(namespace: str) -> VmReport:
    return VmReport(
        id="vm-1",
        name="r-9-VM",
        vm_type="domainrouter",
        state="Running",
        access=NetnsAccess(namespace=namespace),
    )


def _request(address: str, params: list[str]) -> RunRequest:
    return RunRequest(
        job_id="j1",
        start_by=time.time() + 60,
        vm_id="vm-1",
        type="ping",
        address=address,
        params=params,
        time_limit=30.0,
    )


async def test_the_executor_runs_a_request_in_the_vms_namespace(clean: Pair) -> None:
    lines: list[tuple[str, str]] = []

    async def on_record(stream: Stream, text: str) -> None:
        lines.append((stream, text))

    executor = netns.NetnsExecutor()
    # The first run in a VM may open its session: one process more, once.
    await executor.execute(
        _vm(clean.a), _request(PEER, ["-c", "1"]), on_record=on_record, stop=asyncio.Event()
    )
    lines.clear()
    before = executor.spawned()
    outcome = await executor.execute(
        _vm(clean.a), _request(PEER, ["-c", "1"]), on_record=on_record, stop=asyncio.Event()
    )
    assert (outcome.exitcode, outcome.refused, outcome.error) == ("0", "", ""), outcome
    assert "1 received" in outcome.stdout
    assert "".join(t for s, t in lines if s == "stdout") == outcome.stdout
    # One process per diagnostic: the tool itself.
    assert executor.spawned() == before + 1


async def test_the_executor_refuses_what_the_rules_refuse_and_runs_nothing(clean: Pair) -> None:
    async def on_record(stream: Stream, text: str) -> None:
        raise AssertionError("nothing should be printed")

    executor = netns.NetnsExecutor()
    before = executor.spawned()
    outcome = await executor.execute(
        _vm(clean.a), _request(PEER, ["-f"]), on_record=on_record, stop=asyncio.Event()
    )
    assert outcome.refused.startswith('Option "-f" is not allowed for ping')
    assert (outcome.stderr, outcome.exitcode) == (outcome.refused, "-1")
    assert executor.spawned() == before


async def test_a_vm_that_stops_under_a_run_is_the_outcomes_error(pair: Pair) -> None:
    """As `cloudiag lab stop` does: its processes are killed, then its namespace deleted."""
    doomed = f"{pair.a}-c"
    ip("netns", "add", doomed)
    try:
        ip("-n", doomed, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        ip("-n", doomed, "addr", "add", "192.0.2.50/24", "dev", "d0")
        for link in ("lo", "d0", "d1"):
            ip("-n", doomed, "link", "set", link, "up")
        first = asyncio.Event()

        async def on_record(stream: Stream, text: str) -> None:
            if "icmp_seq" in text:
                first.set()

        run = asyncio.create_task(
            netns.NetnsExecutor().execute(
                _vm(doomed),
                _request("192.0.2.50", ["-c", "100", "-i", "0.2"]),
                on_record=on_record,
                stop=asyncio.Event(),
            )
        )
        await asyncio.wait_for(first.wait(), 10)
        await asyncio.to_thread(_remove, doomed)
        outcome = await asyncio.wait_for(run, 10)
    finally:
        await asyncio.to_thread(_remove, doomed)
    assert outcome.error == "The VM r-9-VM stopped during the diagnostic; its output is partial"
    assert "icmp_seq=" in outcome.stdout


async def test_one_session_per_namespace_and_one_process_per_diagnostic(clean: Pair) -> None:
    await netns.run_in_netns(clean.a, "ping", PEER, "-c 1")
    session = sessions_in(clean.a)
    sessions, tools = netns.sessions_started(), netns.tools_started()
    results = await asyncio.gather(
        *(netns.run_in_netns(clean.a, "ping", PEER, "-c 2 -i 0.2") for _ in range(3))
    )
    assert [r.exitcode for r in results] == ["0", "0", "0"]
    assert all("2 received" in r.stdout for r in results)
    assert (netns.sessions_started(), netns.tools_started()) == (sessions, tools + 3)
    assert sessions_in(clean.a) == session and len(session) == 1


async def test_a_killed_session_fails_the_run_and_the_next_run_works(clean: Pair) -> None:
    first = asyncio.Event()

    async def on_line(stream: str, text: str) -> None:
        if "icmp_seq" in text:
            first.set()

    task = asyncio.create_task(
        netns.run_in_netns(clean.a, "ping", PEER, "-c 100 -i 0.2", on_line=on_line)
    )
    await asyncio.wait_for(first.wait(), 10)
    (session,) = sessions_in(clean.a)
    killed = time.monotonic()
    os.kill(session, signal.SIGKILL)
    result = await asyncio.wait_for(task, 5)
    assert time.monotonic() - killed < 1.5
    assert result.error == f"the session to {clean.a} ended during the job: killed by SIGKILL"
    assert result.error in result.stderr
    assert result.exitcode == "-1"
    assert "icmp_seq=1" in result.stdout
    # Its tool went with it, and the next run opens a new session.
    await asyncio.sleep(0.2)
    assert tools_in(clean.a) == []
    again = await netns.run_in_netns(clean.a, "ping", PEER, "-c 1")
    assert again.exitcode == "0", again
    assert sessions_in(clean.a) not in ([], [session])


async def test_a_deleted_namespace_ends_its_session_and_a_new_one_gets_a_new_session(
    pair: Pair,
) -> None:
    """A VM whose namespace goes while a job runs, its processes left: the run fails as the
    VM stopped, its session and tool end; the VM started again gets a session of its own."""
    doomed = f"{pair.a}-d"

    def make() -> None:
        ip("netns", "add", doomed)
        ip("-n", doomed, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
        ip("-n", doomed, "addr", "add", "192.0.2.60/24", "dev", "d0")
        for link in ("lo", "d0", "d1"):
            ip("-n", doomed, "link", "set", link, "up")

    make()
    try:
        first = asyncio.Event()

        async def on_record(stream: Stream, text: str) -> None:
            if "icmp_seq" in text:
                first.set()

        run = asyncio.create_task(
            netns.NetnsExecutor().execute(
                _vm(doomed),
                _request("192.0.2.60", ["-c", "100", "-i", "0.2"]),
                on_record=on_record,
                stop=asyncio.Event(),
            )
        )
        await asyncio.wait_for(first.wait(), 10)
        (session,) = sessions_in(doomed)
        left = pids_in(doomed)
        ip("netns", "delete", doomed)
        outcome = await asyncio.wait_for(run, 10)
        assert outcome.error == "The VM r-9-VM stopped during the diagnostic; its output is partial"
        for pid in left:
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                await asyncio.sleep(0.05)
            assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived its VM"
        make()
        before = netns.sessions_started()
        again = await netns.run_in_netns(doomed, "ping", "192.0.2.60", "-c 1")
        assert again.exitcode == "0", again
        assert netns.sessions_started() == before + 1
        assert sessions_in(doomed) != [session]
    finally:
        await asyncio.to_thread(_remove, doomed)


async def test_a_namespace_made_again_under_an_idle_session_gets_a_new_session(
    pair: Pair,
) -> None:
    doomed = f"{pair.a}-e"
    ip("netns", "add", doomed)
    try:
        ip("-n", doomed, "link", "set", "lo", "up")
        ok = await netns.run_in_netns(doomed, "ping", "127.0.0.1", "-c 1")
        assert ok.exitcode == "0", ok
        (old,) = sessions_in(doomed)
        # Gone and made again between two runs: the old session is in the old namespace.
        ip("netns", "delete", doomed)
        ip("netns", "add", doomed)
        ip("-n", doomed, "link", "set", "lo", "up")
        again = await netns.run_in_netns(doomed, "ping", "127.0.0.1", "-c 1")
        assert again.exitcode == "0", again
        assert old not in sessions_in(doomed)
        for _ in range(100):
            if not Path(f"/proc/{old}").exists():
                break
            await asyncio.sleep(0.05)
        assert not Path(f"/proc/{old}").exists()
    finally:
        await asyncio.to_thread(_remove, doomed)
