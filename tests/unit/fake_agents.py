"""An in-process stand-in for the bus as the job engine sees it: agents that accept, run
until told, and cancel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from nats.errors import TimeoutError as NatsTimeout

from cloudiag.bus import subjects
from cloudiag.bus.messages import (
    CancelReply,
    CancelRequest,
    RunAccepted,
    RunRequest,
    RunResult,
    StatusReply,
)


@dataclass
class FakeMsg:
    subject: str
    data: bytes


class FakeSub:
    """A subscription to one job's subjects."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[FakeMsg] = asyncio.Queue()

    async def next_msg(self, timeout: float) -> FakeMsg:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise NatsTimeout from None

    async def unsubscribe(self) -> None:
        return None


class FakeAgents:
    """The NATS client the runner sees: every agent accepts, runs until told, cancels."""

    def __init__(self) -> None:
        self.runs: list[RunRequest] = []
        self.cancels: list[CancelRequest] = []
        self.running: set[str] = set()
        self.subs: dict[str, FakeSub] = {}

    async def subscribe(self, subject: str) -> FakeSub:
        sub = FakeSub()
        self.subs[subject.split(".")[2]] = sub
        return sub

    async def request(self, subject: str, data: bytes, timeout: float) -> FakeMsg:
        if subject.endswith(".diagnostics"):
            run = RunRequest.model_validate_json(data)
            self.runs.append(run)
            self.running.add(run.job_id)
            return FakeMsg(subject, RunAccepted(accepted=True).encode())
        if subject.endswith(".status"):
            return FakeMsg(subject, StatusReply(session="s", running=sorted(self.running)).encode())
        cancel = CancelRequest.model_validate_json(data)
        self.cancels.append(cancel)
        if cancel.job_id not in self.running:
            return FakeMsg(subject, CancelReply(cancelled=False, error="not running").encode())
        self.finish(cancel.job_id, stdout="partial\n", exitcode="-9", cancelled_by=cancel.by)
        return FakeMsg(subject, CancelReply(cancelled=True).encode())

    def finish(self, job_id: str, **fields: Any) -> None:
        """The agent sends the job's result."""
        self.running.discard(job_id)
        result = RunResult(
            job_id=job_id, **{"stdout": "done\n", "stderr": "", "exitcode": "0", **fields}
        )
        self.subs[job_id].queue.put_nowait(FakeMsg(subjects.job_result(job_id), result.encode()))
