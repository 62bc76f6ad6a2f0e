"""Run a diagnostic in a system VM over SSH (``SshAccess``), as CloudStack reaches its VMs.

One kept connection per VM (``ssh_connections``), its host key checked (``host_keys``).
What runs on the VM depends on the access's ``script``:

- ``cloudiag``: our zipapp, installed by its hash (``remote_install``), in one warm session
  per VM: a ``serve`` process on an SSH channel that runs every job of that VM, so a
  diagnostic starts one process on the VM, the tool;
- ``cloudstack``: the VM's own ``/opt/cloud/bin/diagnostics.py``, one exec per diagnostic
  (``cloudstack_script``), after our own validation (that script validates nothing);
- ``auto``: cloudiag when the VM's python can run the zipapp, else cloudstack (asked once
  per connection).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

import asyncssh

from cloudiag.agent.executors import cloudstack_script, remote_install
from cloudiag.agent.executors.base import OnRecord, Outcome
from cloudiag.agent.executors.collect import Collector, run_limited
from cloudiag.agent.executors.host_keys import HostKeys
from cloudiag.agent.executors.netns import script_arguments, zipapp_path
from cloudiag.agent.executors.session import (
    Channel,
    OnSessionRecord,
    SessionError,
    SessionStale,
)
from cloudiag.agent.executors.session_pool import SessionPool
from cloudiag.agent.executors.ssh_channel import SshChannel
from cloudiag.agent.executors.ssh_connections import (
    Key,
    SshConnections,
    SshError,
    connection_key,
    lost_reason,
)
from cloudiag.bus.messages import RunRequest, SshAccess, VmReport
from cloudiag.sysvm import policy, registry, validate
from cloudiag.sysvm.errors import DiagnosticsInputError

log = logging.getLogger(__name__)

__all__ = ["SshExecutor"]

#: Execs of the CloudStack script at once on one connection: OpenSSH's MaxSessions is 10.
SCRIPT_CHANNELS = 8
_job_numbers = itertools.count(1)


class SshExecutor:
    """The Executor of VMs reached over SSH (``SshAccess``)."""

    def __init__(
        self,
        state_dir: Path | None,
        *,
        remote_dir: str = remote_install.REMOTE_DIR,
        connections: SshConnections | None = None,
        pool: SessionPool | None = None,
    ) -> None:
        self.connections = connections or SshConnections(HostKeys(state_dir))
        self.pool = pool or SessionPool()
        self.remote_dir = remote_dir
        #: Whether each connection's VM can run the zipapp ("auto" asks once).
        self._python: dict[tuple[Key, str], bool] = {}
        self._script_slots: dict[Key, asyncio.Semaphore] = {}
        #: The last channel opened per session key (to tell why a session did not open).
        self._channels: dict[str, SshChannel] = {}
        #: Session keys whose zipapp must be uploaded again (it ran as another build).
        self._replace: set[str] = set()
        #: Execs of the CloudStack script, python probes ("auto"), zipapp uploads so far.
        self.script_runs = 0
        self.probes = 0
        self.installs = 0

    async def execute(
        self, vm: VmReport, request: RunRequest, *, on_record: OnRecord, stop: asyncio.Event
    ) -> Outcome:
        """Run the request in the VM over SSH, in the way its access's ``script`` says."""
        access = vm.access
        if not isinstance(access, SshAccess):
            raise TypeError(f"the SSH executor cannot reach {vm.name} ({access.kind})")
        try:
            # The operator's limit may exceed the type's own (the API allowed it).
            check_limit = max(request.time_limit, registry.get_type(request.type).time_limit)
            req = validate.validate(
                request.type, request.address, request.params, time_limit=check_limit
            )
        except DiagnosticsInputError as exc:
            reason = exc.message
            return Outcome(stdout="", stderr=reason, exitcode="-1", duration=0.0, refused=reason)
        started = time.monotonic()
        sink = Collector(request.max_output, on_record)
        try:
            if await self._uses_cloudstack(access, vm.name, started + request.time_limit):
                return await self._cloudstack(vm.name, access, req, request, sink, stop, started)
            return await self._cloudiag(vm.name, access, req, request, sink, stop, started)
        except (SshError, SessionError, remote_install.InstallError) as exc:
            error = str(exc)
            await sink.note(f"[cloudiag] {error}\n")
            return _outcome(sink, "-1", started, error=error)

    async def _connection(
        self, access: SshAccess, vm_name: str, deadline: float
    ) -> asyncssh.SSHClientConnection:
        """The VM's connection, waited for until the job's ``deadline`` (monotonic) at most:
        an opening that takes longer goes on for the next jobs."""
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)) as waited:
                return await self.connections.get(access, vm_name)
        except TimeoutError:
            if not waited.expired():
                raise
            raise SshError(
                f"cannot reach {vm_name} within the job's time limit: its SSH connection "
                "is still opening"
            ) from None

    async def _uses_cloudstack(self, access: SshAccess, vm_name: str, deadline: float) -> bool:
        if access.script != "auto":
            return access.script == "cloudstack"
        key = (connection_key(access), access.python)
        if key not in self._python:
            conn = await self._connection(access, vm_name, deadline)
            try:
                self.probes += 1
                probe = await conn.run(remote_install.probe_command(access.python), check=False)
            except (asyncssh.Error, OSError) as exc:
                raise self._failed(access, conn, vm_name, "the python probe", exc) from None
            self._python[key] = probe.exit_status == 0
            log.info("%s: %s", vm_name, "zipapp" if self._python[key] else "CloudStack script")
        return not self._python[key]

    async def _cloudiag(
        self,
        vm_name: str,
        access: SshAccess,
        req: validate.Request,
        request: RunRequest,
        sink: Collector,
        stop: asyncio.Event,
        started: float,
    ) -> Outcome:
        zipapp = Path(await zipapp_path())
        stamp = zipapp.stem.removeprefix("cloudiag-sysvm-")
        key = " ".join(str(part) for part in (*connection_key(access), access.python))
        check_limit = max(request.time_limit, req.type.time_limit)
        args = [
            *script_arguments(check_limit, request.denied_networks),
            req.type.name,
            req.address,
            *req.params,
        ]

        async def job(on_record: OnSessionRecord, halt: asyncio.Event) -> int:
            async def run() -> int:
                return await self.pool.run(
                    key,
                    lambda: self._open_session(access, vm_name, zipapp, stamp, key),
                    vm_name,
                    stamp,
                    f"{request.job_id}.{next(_job_numbers)}",
                    args,
                    on_record=on_record,
                    stop=halt,
                    # Connect, install and ready count against the job's own limit.
                    open_timeout=max(started + request.time_limit - time.monotonic(), 0.0),
                )

            try:
                try:
                    return await run()
                except SessionStale as exc:
                    # The file of that name holds another build: upload ours again, once.
                    log.warning("%s; installing the zipapp again", exc)
                    self._replace.add(key)
                    return await run()
            except SessionError as exc:
                raise SessionError(self._session_error(key, vm_name, access, exc)) from None

        ended = await run_limited(sink, job, time_limit=request.time_limit, stop=stop)
        return _outcome(
            sink,
            str(ended.code),
            started,
            timed_out=ended.timed_out,
            cancelled=ended.cancelled,
            error=ended.error,
        )

    def _session_error(self, key: str, vm_name: str, access: SshAccess, exc: SessionError) -> str:
        """The errortext of a session that failed: a VM without python says so plainly."""
        channel = self._channels.get(key)
        status = channel.exit_status if channel is not None else None
        if status in remote_install.NO_PYTHON_STATUSES and channel is not None:
            said = channel.said() or f"exit status {status}"
            return (
                f"VM {vm_name} has no usable {access.python} ({said}): set its script to "
                "cloudstack or install python3"
            )
        return str(exc)

    async def _open_session(
        self, access: SshAccess, vm_name: str, zipapp: Path, stamp: str, key: str
    ) -> Channel:
        """The opener of the VM's warm session: connect, install if need be, exec serve."""
        try:
            return await self._start_session(access, vm_name, zipapp, stamp, key)
        except (SshError, remote_install.InstallError) as exc:
            # Already the whole errortext (it names the VM and the cause): the pool must not
            # wrap it again.
            raise SessionError(str(exc)) from None

    async def _start_session(
        self, access: SshAccess, vm_name: str, zipapp: Path, stamp: str, key: str
    ) -> Channel:
        conn = await self.connections.get(access, vm_name)
        replace = key in self._replace
        if await remote_install.install(
            conn, zipapp, stamp, vm_name=vm_name, remote_dir=self.remote_dir, replace=replace
        ):
            self.installs += 1
            log.info("installed the zipapp %s on %s", stamp, vm_name)
        self._replace.discard(key)
        line = remote_install.serve_command(access.python, stamp, self.remote_dir)
        try:
            # A connection that died silently answers nothing until its keepalives give up.
            async with asyncio.timeout(self.connections.connect_timeout):
                proc = await conn.create_process(line, encoding=None)
        except TimeoutError:
            # No answer at all: the connection is as good as dead.
            self.connections.forget(access, conn)
            raise SshError(
                f"cannot open a session channel to {vm_name}: no answer within "
                f"{self.connections.connect_timeout:g} s"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise self._failed(access, conn, vm_name, "its session", exc) from None
        channel = SshChannel(proc, lambda: lost_reason(conn))
        self._channels[key] = channel
        return channel

    async def _cloudstack(
        self,
        vm_name: str,
        access: SshAccess,
        req: validate.Request,
        request: RunRequest,
        sink: Collector,
        stop: asyncio.Event,
        started: float,
    ) -> Outcome:
        host = req.type.target.host(req.address)
        try:
            # Our session resolves a name once, checks it and pins the tool to it; the
            # CloudStack script would hand the name to the tool unchecked.
            unchecked = policy.script_cannot_run(req, vm_name) or policy.unchecked_name(
                host, vm_name, request.denied_networks
            )
            if unchecked:
                raise ValueError(unchecked)
            line = cloudstack_script.command(req)
        except ValueError as exc:
            return Outcome(
                stdout="", stderr=str(exc), exitcode="-1", duration=0.0, refused=str(exc)
            )
        key = connection_key(access)
        conn = await self._connection(access, vm_name, started + request.time_limit)
        slots = self._script_slots.setdefault(key, asyncio.Semaphore(SCRIPT_CHANNELS))
        async with slots:
            try:
                self.script_runs += 1
                ran = await cloudstack_script.run(
                    conn,
                    line,
                    time_limit=request.time_limit,
                    max_output=request.max_output,
                    stop=stop,
                )
            except (asyncssh.Error, OSError) as exc:
                raise self._failed(access, conn, vm_name, "the diagnostic", exc) from None
        return await self._script_outcome(vm_name, ran, request, sink, started)

    def _failed(
        self,
        access: SshAccess,
        conn: asyncssh.SSHClientConnection,
        vm_name: str,
        what: str,
        exc: BaseException,
    ) -> SshError:
        """The error of an exec that failed: a lost connection is dropped, a live one kept
        (the VM refused one channel, e.g. past its sshd's MaxSessions)."""
        why = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
        # The exec may fail with the loss before the connection itself hears of it.
        lost = lost_reason(conn) or (why if isinstance(exc, asyncssh.ConnectionLost) else None)
        if lost is None:
            return SshError(f"{vm_name} refused a channel for {what}: {why}")
        self.connections.forget(access, conn)
        return SshError(
            f"the SSH connection to {vm_name} was lost during {what} ({lost}); "
            "its output is lost with it"
        )

    async def _script_outcome(
        self,
        vm_name: str,
        ran: cloudstack_script.ScriptRun,
        request: RunRequest,
        sink: Collector,
        started: float,
    ) -> Outcome:
        said = ran.stderr.decode("utf-8", errors="replace").strip()
        if ran.timed_out or ran.cancelled:
            what = (
                f"time limit of {request.time_limit:g} s reached" if ran.timed_out else "cancelled"
            )
            await sink.note(
                f"[cloudiag] {what}: the CloudStack script's channel was closed; it prints "
                "only when its tool ends, so its output is partial (none)\n"
            )
            return _outcome(sink, "-1", started, timed_out=ran.timed_out, cancelled=ran.cancelled)
        if ran.exit_status in remote_install.NO_PYTHON_STATUSES:
            error = (
                f"VM {vm_name} cannot run {cloudstack_script.SCRIPT} "
                f"(exit status {ran.exit_status}: {said or 'no message'})"
            )
            await sink.note(f"[cloudiag] {error}\n")
            return _outcome(sink, "-1", started, error=error)
        try:
            parsed = cloudstack_script.parse(ran.stdout)
        except cloudstack_script.ScriptOutputError as exc:
            error = f"the CloudStack script on {vm_name} answered in no known form: {exc}"
            raw = ran.stdout.decode("utf-8", errors="replace")
            await sink.add("stderr", raw + (f"\n{said}\n" if said else ""))
            await sink.note(f"[cloudiag] {error}\n")
            return _outcome(sink, "-1", started, error=error)
        await sink.add("stdout", parsed.stdout)
        await sink.add("stderr", parsed.stderr)
        if ran.cut:
            sink.truncated = True
        await sink.finish()
        return _outcome(sink, str(parsed.exit_code), started)

    def spawned(self) -> int:
        """Processes started on VMs: zipapp sessions and their tools, script execs, probes."""
        return self.pool.spawned() + self.pool.opened() + self.script_runs + self.probes

    def tools_started(self) -> int:
        """Tools started over the warm sessions (one per diagnostic that reached its VM)."""
        return self.pool.spawned()

    async def close(self) -> None:
        """End every session and connection."""
        await self.pool.close()
        await self.connections.close()


def _outcome(
    sink: Collector,
    exitcode: str,
    started: float,
    *,
    timed_out: bool = False,
    cancelled: bool = False,
    error: str = "",
) -> Outcome:
    return Outcome(
        stdout=sink.text("stdout"),
        stderr=sink.text("stderr"),
        exitcode=exitcode,
        duration=time.monotonic() - started,
        timed_out=timed_out,
        truncated=sink.truncated,
        cancelled=cancelled,
        refused=sink.refused,
        error=error,
    )
