"""Agent reports in batches: a heartbeat that repeats its host's last report only refreshes
``last_heartbeat``, in one UPDATE for every such host of the batch; a host seen for the
first time (since the bus last came back) gets its request consumer, which its agent may
not make itself.

A fleet's agents beat every few seconds each (2,000 hosts at 5 s are 400 reports a second)
and their reports rarely change; one transaction per report, reading each VM's row, would
keep a server's core busy for nothing. Each report's fingerprint is kept on its host's row,
not in this server's memory, so that with several servers (a queue group shares the reports
among them) a report is judged against what the database holds, whoever stored it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import AgentReport
from cloudiag.db.models import Host, utcnow
from cloudiag.metrics import database as database_metrics
from cloudiag.services import inventory

log = logging.getLogger(__name__)

#: How long reports gather before they are stored together: a small share of the heartbeat
#: interval, so a host's state lags its agent by no more than that.
FLUSH_INTERVAL = 0.25
#: Consumers made at once for new hosts (a fleet's agents all come at a server's start).
CONSUMERS_AT_ONCE = 32


def fingerprint(raw: bytes) -> str:
    """The fingerprint of a report as it came off the bus (its bytes say all it holds)."""
    return hashlib.sha256(raw).hexdigest()


class ReportIntake:
    """Gathers the latest report of each host and stores them every FLUSH_INTERVAL."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        *,
        consumer: Callable[[str], Awaitable[None]] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.db = db
        self.flush_interval = flush_interval
        #: Makes (or updates) a host's request consumer; None: nobody needs one (tests).
        self._consumer = consumer
        #: The hosts whose consumer is made since the bus last came back.
        self._consumers: set[str] = set()
        #: The newest report of each host since the last flush, with its fingerprint.
        self._pending: dict[str, tuple[AgentReport, str]] = {}
        self._wake = asyncio.Event()

    def offer(self, report: AgentReport, raw: bytes) -> None:
        """Keep a report for the next flush; a newer one of the same host replaces it."""
        self._pending[report.host_id] = (report, fingerprint(raw))
        self._wake.set()

    def forget_consumers(self) -> None:
        """The bus came back (maybe a new nats-server without them): make them again."""
        self._consumers.clear()

    async def run(self) -> None:
        """Flush gathered reports until cancelled; a failed flush is logged (the next
        heartbeats bring the same facts again)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                database_metrics.caught(exc)
                log.exception("could not store agent reports; the next heartbeats will")

    async def flush(self) -> int:
        """Store what was gathered, in one transaction; how many hosts needed a whole
        report applied (new or changed reports, goodbyes)."""
        batch, self._pending = self._pending, {}
        if not batch:
            return 0
        await self._make_consumers([h for h, (r, _) in batch.items() if r.connected])
        now = utcnow()
        beats = [(host_id, digest) for host_id, (r, digest) in batch.items() if r.connected]
        async with self.db.begin() as db:
            fresh: set[str] = set()
            if beats:
                refreshed = await db.execute(
                    update(Host)
                    .where(tuple_(Host.id, Host.report_hash).in_(beats))
                    .values(last_heartbeat=now)
                    .returning(Host.id)
                    .execution_options(synchronize_session=False)
                )
                fresh = set(refreshed.scalars())
            whole = [(r, digest) for host_id, (r, digest) in batch.items() if host_id not in fresh]
            for report, digest in whole:
                await inventory.apply_report(db, report, digest)
        return len(whole)

    async def _make_consumers(self, hosts: list[str]) -> None:
        """Make the consumers of hosts that have none yet, a bounded number at once; one that
        fails is logged and tried again at its host's next report."""
        if self._consumer is None:
            return
        make = self._consumer
        todo = [host for host in hosts if host not in self._consumers]
        limit = asyncio.Semaphore(CONSUMERS_AT_ONCE)

        async def one(host: str) -> None:
            async with limit:
                try:
                    await make(host)
                except Exception:
                    log.exception("could not make the request consumer of host %s", host)
                else:
                    self._consumers.add(host)

        await asyncio.gather(*(one(host) for host in todo))
