"""The executors themselves, below the agent: what every executor must do, on both.

The tests of every executor run on the lab's virtual router (r-1-VM, `lab up --ssh`) through
``NetnsExecutor`` (its namespace) and ``SshExecutor`` (its sshd, from the lab's hypervisor
namespace), each built on the lab's inventory entry of the VM: ping, traceroute and arping
to its neighbours, live output, the time limit, cancellation, stop, a failing consumer,
truncation, refusals that start nothing, one session per VM and one process per
diagnostic, a killed session.

The tests of the netns executor's namespaces themselves (a missing or odd name, a VM whose
namespace goes or comes back, the route lookup in a namespace) use a private pair:
``cdx<rand>-a`` and ``cdx<rand>-b`` joined by a veth pair (eth0 on both sides,
203.0.113.1/24 and 203.0.113.2/24, TEST-NET-3), A with a second veth pair (vx0/vx1,
192.0.2.1/24) for the route lookup. Nothing is created in the root namespace and
everything is removed afterwards.
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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudiag.agent.executors import netns, remote_install
from cloudiag.agent.executors.base import OnRecord, Outcome, Stream
from cloudiag.agent.executors.ssh import SshExecutor
from cloudiag.bus.messages import NetnsAccess, RunRequest, VmReport
from cloudiag.lab import manager, mountns, topology
from cloudiag.lab.inventory import Executor, inventory
from cloudiag.sysvm import orphans
from cloudiag.sysvm.errors import DiagnosticsInputError
from tests.conftest import ssh_missing
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


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _session_zipapp(pid: int) -> bytes | None:
    """The zipapp a warm session runs (``… <zipapp> serve [--max-jobs N]``), else None
    (also for its guardian, which has the session's command line)."""
    argv = [word for word in _argv(pid) if word]
    if b"serve" not in argv[1:] or _comm(pid) == orphans.NAME:
        return None
    return argv[argv.index(b"serve") - 1]


def tools_in(namespace: str) -> list[int]:
    """The processes in the namespace but its warm session and guardian: the tools left
    running."""
    return [
        pid
        for pid in pids_in(namespace)
        if _session_zipapp(pid) is None and _comm(pid) != orphans.NAME
    ]


def sessions_in(namespace: str) -> list[int]:
    return [pid for pid in pids_in(namespace) if _session_zipapp(pid) is not None]


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


# The lab's virtual router and its neighbours: the upstream router on eth2 (public), the
# user VM on eth0 (guest); nothing answers at UNUSED.
VM = "r-1-VM"
GATEWAY = "203.0.113.1"
USER_VM = "192.0.2.100"
LAB_UNUSED = "203.0.113.99"
#: Where this file's SSH executor installs the zipapp in the VM (the VM's own tree): its
#: sessions are told from the lab agents' by their command line.
SSH_TEST_DIR = f"{remote_install.REMOTE_DIR}/executor-tests"


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class Target:
    """One executor on the lab's router, as the agent would have it."""

    kind: Executor
    executor: netns.NetnsExecutor | SshExecutor
    vm: VmReport
    #: The VM's network namespace, where its tools run whichever way they were started.
    namespace: str

    async def run(
        self,
        address: str,
        params: list[str],
        *,
        type_: str = "ping",
        on_record: OnRecord | None = None,
        stop: asyncio.Event | None = None,
        **changes: Any,
    ) -> Outcome:
        """Run one diagnostic in the VM through the executor."""

        async def ignore(stream: Stream, text: str) -> None:
            pass

        request = RunRequest(
            job_id="j1",
            start_by=time.time() + 60,
            vm_id=self.vm.id,
            type=type_,
            address=address,
            params=params,
            time_limit=30.0,
        ).model_copy(update=changes)
        return await self.executor.execute(
            self.vm, request, on_record=on_record or ignore, stop=stop or asyncio.Event()
        )

    def sessions(self) -> list[int]:
        """This executor's warm sessions in the VM (the lab's agents may have theirs)."""
        found = []
        for pid in pids_in(self.namespace):
            zipapp = _session_zipapp(pid)
            if zipapp is None:
                continue
            if self.kind == "netns" and _parent(pid) == os.getpid():
                found.append(pid)
            elif self.kind == "ssh" and zipapp.startswith(SSH_TEST_DIR.encode() + b"/"):
                found.append(pid)
        return found

    def tools(self) -> list[int]:
        """The processes in the VM but sessions, their guardians and sshd: the tools left
        running."""
        return [
            pid
            for pid in pids_in(self.namespace)
            if _session_zipapp(pid) is None and _comm(pid) not in ("sshd", orphans.NAME)
        ]


@pytest.fixture(scope="module", params=["netns", "ssh"])
async def target(
    request: pytest.FixtureRequest, lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Target]:
    """The lab's router through one executor, built on the lab's inventory entry of it."""
    kind: Executor = request.param
    if kind == "ssh" and lab.get("ssh") is None:
        pytest.skip(f"the lab has no sshd: {ssh_missing()}")
    prefix = lab["prefix"]
    entry = next(vm for vm in inventory(prefix, kind)["vms"] if vm["name"] == VM)
    vm = VmReport.model_validate({**entry, "state": "Running"})
    namespace = topology.namespace(prefix, next(n for n in topology.NODES if n.name == VM))
    executor: netns.NetnsExecutor | SshExecutor
    if kind == "ssh":
        executor = SshExecutor(tmp_path_factory.mktemp("ssh-state"), remote_dir=SSH_TEST_DIR)
    else:
        executor = netns.NetnsExecutor()
    try:
        yield Target(kind, executor, vm, namespace)
    finally:
        await executor.close()
        if kind == "ssh":
            node = next(n for n in topology.NODES if n.name == VM)
            state = manager.default_state_dir(prefix)
            shutil.rmtree(mountns.vm_root(state, node) / SSH_TEST_DIR.lstrip("/"), True)


@pytest.fixture
def on(target: Target) -> Iterator[Target]:
    """Each test must leave no tool behind in the VM, and at most one session of its own."""
    yield target
    assert target.tools() == []
    assert len(target.sessions()) <= 1


async def test_ping_a_neighbour(on: Target) -> None:
    out = await on.run(GATEWAY, ["-c", "2", "-i", "0.2"])
    assert (out.exitcode, out.refused, out.error) == ("0", "", ""), out
    assert "2 received" in out.stdout
    assert not out.timed_out and not out.truncated
    assert out.duration > 0


async def test_ping_an_unused_address_fails(on: Target) -> None:
    out = await on.run(LAB_UNUSED, ["-c", "1", "-W", "1"])
    assert out.exitcode not in ("0", "-1"), out
    assert "0 received" in out.stdout


async def test_traceroute_a_neighbour(on: Target) -> None:
    out = await on.run(GATEWAY, ["-n", "-m", "2", "-q", "1", "-w", "1"], type_="traceroute")
    assert out.exitcode == "0", out
    assert f"traceroute to {GATEWAY}" in out.stdout
    assert f" 1  {GATEWAY}" in out.stdout


@pytest.mark.parametrize(
    ("address", "source", "nic"),
    [(GATEWAY, "203.0.113.10", "eth2"), (USER_VM, "192.0.2.1", "eth0")],
)
async def test_arping_picks_its_interface_from_the_routes(
    on: Target, address: str, source: str, nic: str
) -> None:
    out = await on.run(address, ["-c", "2", "-w", "3"], type_="arping")
    assert out.exitcode == "0", out
    assert f"ARPING {address} from {source} {nic}" in out.stdout
    assert f"Unicast reply from {address}" in out.stdout
    assert "Received 2 response(s)" in out.stdout


async def test_lines_stream_while_the_tool_runs(on: Target) -> None:
    seen: list[tuple[float, str, str, int]] = []

    async def on_record(stream: Stream, text: str) -> None:
        running = len(on.tools()) if not seen else -1
        seen.append((time.monotonic(), stream, text, running))

    out = await on.run(GATEWAY, ["-c", "4", "-i", "0.3"], on_record=on_record)
    finished = time.monotonic()
    assert out.exitcode == "0", out
    first_at, stream, text, running = seen[0]
    assert stream == "stdout" and text.startswith(f"PING {GATEWAY}")
    assert running > 0, "the first line should arrive while ping still runs"
    assert finished - first_at > 0.5
    assert "".join(t for _, s, t, _ in seen if s == "stdout") == out.stdout


async def test_the_time_limit_kills_the_group(on: Target) -> None:
    started = time.monotonic()
    out = await on.run(GATEWAY, ["-c", "100", "-i", "0.2"], time_limit=1.0)
    assert time.monotonic() - started < 4
    assert out.timed_out
    assert f"64 bytes from {GATEWAY}" in out.stdout  # partial output kept
    assert "100 packets transmitted" not in out.stdout
    assert "[cloudiag] time limit of 1 s reached; process killed" in out.stderr
    assert out.exitcode != "0"
    assert on.tools() == []


async def test_cancelling_the_run_kills_the_group(on: Target) -> None:
    first = asyncio.Event()

    async def on_record(stream: Stream, text: str) -> None:
        first.set()

    task = asyncio.create_task(on.run(GATEWAY, ["-c", "100", "-i", "0.2"], on_record=on_record))
    await asyncio.wait_for(first.wait(), 10)
    assert on.tools() != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Killed and reaped before CancelledError came through: nothing to wait for.
    assert on.tools() == []


async def test_the_stop_event_kills_the_group_and_keeps_the_partial_output(on: Target) -> None:
    first = asyncio.Event()
    stop = asyncio.Event()

    async def on_record(stream: Stream, text: str) -> None:
        if "icmp_seq" in text:
            first.set()

    task = asyncio.create_task(
        on.run(GATEWAY, ["-c", "100", "-i", "0.2"], on_record=on_record, stop=stop)
    )
    await asyncio.wait_for(first.wait(), 10)
    stop.set()
    out = await asyncio.wait_for(task, 10)
    assert out.cancelled and not out.timed_out
    assert "icmp_seq=1" in out.stdout
    assert "cancelled" in out.stderr
    assert on.tools() == []


async def test_a_failing_consumer_kills_the_group(on: Target) -> None:
    async def on_record(stream: Stream, text: str) -> None:
        raise RuntimeError("consumer broke")

    with pytest.raises(RuntimeError, match="consumer broke"):
        await on.run(GATEWAY, ["-c", "100", "-i", "0.2"], on_record=on_record)
    assert on.tools() == []


async def test_the_output_is_truncated_but_read_to_the_end(on: Target) -> None:
    out = await on.run(GATEWAY, ["-c", "3", "-i", "0.2"], max_output=100)
    assert out.truncated
    assert out.exitcode == "0"  # the exit record came after the discarded output
    assert len(out.stdout.encode()) <= 100
    assert "output truncated at 100 bytes" in out.stderr


async def test_one_process_per_diagnostic_and_its_output_as_records(on: Target) -> None:
    lines: list[tuple[str, str]] = []

    async def on_record(stream: Stream, text: str) -> None:
        lines.append((stream, text))

    # The first run in a VM may open its session: processes more, once.
    await on.run(GATEWAY, ["-c", "1"])
    before = on.executor.spawned()
    out = await on.run(GATEWAY, ["-c", "1"], on_record=on_record)
    assert (out.exitcode, out.refused, out.error) == ("0", "", ""), out
    assert "1 received" in out.stdout
    assert "".join(t for s, t in lines if s == "stdout") == out.stdout
    # One process per diagnostic: the tool itself.
    assert on.executor.spawned() == before + 1


@pytest.mark.parametrize(
    ("address", "params", "why"),
    [
        (GATEWAY, ["-f"], 'Option "-f" is not allowed for ping'),
        (GATEWAY, ["-c", "1;", "id"], ""),
        (GATEWAY, ["-c", "1000"], ""),
        ("$(id)", [], ""),
        ("-oProxyCommand=x", [], ""),
    ],
)
async def test_what_the_rules_refuse_is_refused_and_starts_nothing(
    on: Target, address: str, params: list[str], why: str
) -> None:
    async def on_record(stream: Stream, text: str) -> None:
        raise AssertionError("nothing should be printed")

    before = on.executor.spawned()
    out = await on.run(address, params, on_record=on_record)
    assert out.refused.startswith(why) and out.refused, out
    assert (out.stderr, out.exitcode) == (out.refused, "-1")
    assert on.executor.spawned() == before


async def test_one_session_per_vm_and_one_process_per_diagnostic(on: Target) -> None:
    await on.run(GATEWAY, ["-c", "1"])
    session = on.sessions()
    before = on.executor.spawned()
    outs = await asyncio.gather(*(on.run(GATEWAY, ["-c", "2", "-i", "0.2"]) for _ in range(3)))
    assert [o.exitcode for o in outs] == ["0", "0", "0"]
    assert all("2 received" in o.stdout for o in outs)
    assert on.executor.spawned() == before + 3
    assert on.sessions() == session and len(session) == 1


async def test_a_killed_session_fails_the_run_and_the_next_run_works(on: Target) -> None:
    first = asyncio.Event()

    async def on_record(stream: Stream, text: str) -> None:
        if "icmp_seq" in text:
            first.set()

    task = asyncio.create_task(on.run(GATEWAY, ["-c", "100", "-i", "0.2"], on_record=on_record))
    await asyncio.wait_for(first.wait(), 10)
    (session,) = on.sessions()
    killed = time.monotonic()
    os.kill(session, signal.SIGKILL)
    out = await asyncio.wait_for(task, 5)
    assert time.monotonic() - killed < 1.5
    assert out.error == f"the session to {VM} ended during the job: killed by SIGKILL", out
    assert out.error in out.stderr
    assert out.exitcode == "-1"
    assert "icmp_seq=1" in out.stdout
    # Its tool went with it, and the next run opens a new session.
    for _ in range(50):
        if not on.tools():
            break
        await asyncio.sleep(0.1)
    assert on.tools() == []
    again = await on.run(GATEWAY, ["-c", "1"])
    assert again.exitcode == "0", again
    assert on.sessions() not in ([], [session])


# The netns executor's own: its namespaces, its function-level API.


async def test_run_in_netns_returns_the_tools_argv(clean: Pair) -> None:
    result = await netns.run_in_netns(clean.a, "ping", PEER, "-c 1")
    assert result.exitcode == "0", result
    assert result.argv == ["ping", "-c", "1", "--", PEER]


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
async def test_refused_input_raises_and_spawns_nothing(
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


def _make_vm(namespace: str, address: str) -> None:
    """A namespace of a stand-in VM with one NIC at ``address`` (its veth pair inside)."""
    ip("netns", "add", namespace)
    ip("-n", namespace, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "d0")
    for link in ("lo", "d0", "d1"):
        ip("-n", namespace, "link", "set", link, "up")


async def _pinging(namespace: str, address: str) -> asyncio.Task[Outcome]:
    """A long ping run through the executor in the VM, once its first reply is out."""
    first = asyncio.Event()

    async def on_record(stream: Stream, text: str) -> None:
        if "icmp_seq" in text:
            first.set()

    run = asyncio.create_task(
        netns.NetnsExecutor().execute(
            _vm(namespace),
            _request(address, ["-c", "100", "-i", "0.2"]),
            on_record=on_record,
            stop=asyncio.Event(),
        )
    )
    await asyncio.wait_for(first.wait(), 10)
    return run


async def _ended(pid: int) -> bool:
    """Whether the process is gone within 5 s."""
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_vm_that_stops_under_a_run_is_the_outcomes_error(pair: Pair) -> None:
    """As `cloudiag lab stop` does: its processes are killed, then its namespace deleted."""
    doomed = f"{pair.a}-c"
    try:
        _make_vm(doomed, "192.0.2.50")
        run = await _pinging(doomed, "192.0.2.50")
        await asyncio.to_thread(_remove, doomed)
        outcome = await asyncio.wait_for(run, 10)
    finally:
        await asyncio.to_thread(_remove, doomed)
    assert outcome.error == "The VM r-9-VM stopped during the diagnostic; its output is partial"
    assert "icmp_seq=" in outcome.stdout


async def test_a_deleted_namespace_ends_its_session_and_a_new_one_gets_a_new_session(
    pair: Pair,
) -> None:
    """A VM whose namespace goes while a job runs, its processes left: the run fails as the
    VM stopped, its session and tool end; the VM started again gets a session of its own."""
    doomed = f"{pair.a}-d"
    try:
        _make_vm(doomed, "192.0.2.60")
        run = await _pinging(doomed, "192.0.2.60")
        (session,) = sessions_in(doomed)
        left = pids_in(doomed)
        ip("netns", "delete", doomed)
        outcome = await asyncio.wait_for(run, 10)
        assert outcome.error == "The VM r-9-VM stopped during the diagnostic; its output is partial"
        for pid in left:
            assert await _ended(pid), f"process {pid} outlived its VM"
        _make_vm(doomed, "192.0.2.60")
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
        assert await _ended(old)
    finally:
        await asyncio.to_thread(_remove, doomed)
