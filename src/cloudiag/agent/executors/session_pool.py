"""One warm session per VM: opened on first use, pinged to find one that hangs, and
replaced, for the next job, when it is dead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cloudiag.agent.executors.session import (
    SESSION_MAX_JOBS,
    Channel,
    NotSent,
    OnSessionRecord,
    SessionError,
    WarmSession,
    detached,
)

log = logging.getLogger(__name__)

Opener = Callable[[], Awaitable[Channel]]


class SessionPool:
    """One warm session per VM key; opened on first use, replaced when dead or hung."""

    def __init__(
        self,
        *,
        max_jobs: int = SESSION_MAX_JOBS,
        ping_interval: float = 5.0,
        ping_timeout: float = 5.0,
        ready_timeout: float = 10.0,
    ) -> None:
        self.max_jobs = max_jobs
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.ready_timeout = ready_timeout
        self._sessions: dict[str, WarmSession] = {}
        self._opening: dict[str, asyncio.Future[WarmSession]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._opened = 0
        self._started_before = 0

    async def run(
        self,
        key: str,
        opener: Opener,
        vm_name: str,
        version: str,
        job_id: str,
        args: list[str],
        *,
        on_record: OnSessionRecord,
        stop: asyncio.Event,
        open_timeout: float | None = None,
    ) -> int:
        """Run one job over the session of ``key`` (opened with ``opener`` if need be).

        Jobs beyond ``max_jobs`` at once wait here for their turn. A job whose request never
        reached its session (it was found dead) runs on a new one; SessionError otherwise.
        ``open_timeout`` (the job's time limit) bounds this job's wait for an opening
        session: past it the job fails, and the opening goes on for the jobs after it.
        """
        slots = self._slots.setdefault(key, asyncio.Semaphore(self.max_jobs))
        async with slots:
            for attempt in range(2):
                session = await self._live(key, opener, vm_name, version, open_timeout)
                try:
                    return await session.run(job_id, args, on_record=on_record, stop=stop)
                except NotSent:
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def spawned(self) -> int:
        """Tools started over every session of the pool ("started" records)."""
        return self._started_before + sum(s.spawned() for s in self._sessions.values())

    def opened(self) -> int:
        """Session processes started (channels the openers gave)."""
        return self._opened

    def session(self, key: str) -> WarmSession | None:
        """The session of ``key`` now, if there is one."""
        return self._sessions.get(key)

    async def discard(self, key: str) -> None:
        """Close the session of ``key`` (its VM was replaced); the next job opens a new one."""
        session = self._sessions.get(key)
        if session is not None:
            self._forget(key, session)
            await session.close()

    async def close(self) -> None:
        """Close every session."""
        for pending in self._opening.values():
            pending.cancel()
        sessions = list(self._sessions.items())
        for key, session in sessions:
            self._forget(key, session)
        await asyncio.gather(*(s.close() for _, s in sessions), return_exceptions=True)

    async def _live(
        self, key: str, opener: Opener, vm_name: str, version: str, timeout: float | None
    ) -> WarmSession:
        """The live session of ``key``, waited for at most ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout) as waited:
                return await self._session(key, opener, vm_name, version)
        except TimeoutError:
            if not waited.expired():
                raise
            raise SessionError(
                f"cannot open a session to {vm_name} within the job's time limit: it was "
                "still connecting, installing or starting"
            ) from None

    async def _session(self, key: str, opener: Opener, vm_name: str, version: str) -> WarmSession:
        """The live session of ``key``; one opening at a time, shared by who waits for it."""
        session = self._sessions.get(key)
        if session is not None:
            if session.alive:
                return session
            self._forget(key, session)
        pending = self._opening.get(key)
        if pending is None:
            pending = detached(self._open(key, opener, vm_name, version))
            self._opening[key] = pending
            pending.add_done_callback(lambda f: self._opened_done(key, f))
        # Shielded: a waiter that is cancelled does not take the opening from the others.
        return await asyncio.shield(pending)

    def _opened_done(self, key: str, future: asyncio.Future[WarmSession]) -> None:
        self._opening.pop(key, None)
        if not future.cancelled():
            future.exception()  # Retrieved: every waiter may have gone.

    async def _open(self, key: str, opener: Opener, vm_name: str, version: str) -> WarmSession:
        try:
            channel = await opener()
        except SessionError:
            raise
        except Exception as exc:  # OSError, or an SSH library's own errors.
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SessionError(
                f"cannot open a session to {vm_name}: {why or type(exc).__name__}"
            ) from None
        self._opened += 1
        try:
            session = await WarmSession.open(
                channel, vm_name=vm_name, version=version, ready_timeout=self.ready_timeout
            )
        except BaseException:
            # Cancelled while it started (the pool is closing): it must not stay behind.
            channel.close()
            raise
        self._sessions[key] = session
        self._watchers[key] = detached(self._watch(session))
        log.info("opened a session to %s (version %s)", vm_name, session.version)
        return session

    def _forget(self, key: str, session: WarmSession) -> None:
        if self._sessions.get(key) is session:
            del self._sessions[key]
            self._started_before += session.spawned()
        watcher = self._watchers.pop(key, None)
        if watcher is not None:
            watcher.cancel()

    async def _watch(self, session: WarmSession) -> None:
        """Ping the session while it lives: one that does not answer is closed."""
        while session.alive:
            await asyncio.sleep(self.ping_interval)
            await session.ping(self.ping_timeout)
