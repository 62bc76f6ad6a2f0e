"""Results kept on the agent's disk until the stream has them, and sent by the next agent
process when this one dies first."""

from __future__ import annotations

import stat
from pathlib import Path

from nats.aio.client import Client

from cloudiag.agent.job_table import JobTable
from cloudiag.agent.result_spool import ResultSpool
from cloudiag.agent.results import ResultSender
from cloudiag.bus import subjects
from cloudiag.bus.messages import RunResult


def _result(job_id: str) -> RunResult:
    return RunResult(job_id=job_id, stdout="PING ok\n", stderr="", exitcode="0")


async def test_a_kept_result_is_private_and_survives_the_process(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path / "results")
    await spool.keep(_result("j1"))
    await spool.keep(_result("j2"))
    assert stat.S_IMODE((tmp_path / "results").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "results" / "j1.json").stat().st_mode) == 0o600
    # A new process (a new spool on the same folder) finds both; a done one goes.
    await ResultSpool(tmp_path / "results").done("j1")
    assert await ResultSpool(tmp_path / "results").left() == [_result("j2")]


async def test_an_unreadable_kept_result_is_dropped_not_fatal(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    await spool.keep(_result("j1"))
    (tmp_path / "j2.json").write_text("{not json")
    assert await spool.left() == [_result("j1")]
    assert not (tmp_path / "j2.json").exists()


async def test_the_sender_keeps_the_result_until_the_stream_has_it(
    bus: Client, tmp_path: Path
) -> None:
    async def bucket() -> object:
        return await bus.jetstream().key_value(subjects.JOBS_BUCKET)

    spool = ResultSpool(tmp_path)
    table = JobTable(bucket, "h1", "s1")  # type: ignore[arg-type]
    sender = ResultSender(bus.jetstream, table, lambda: bus.max_payload, spool)
    await sender.send(_result("j1"))
    assert await spool.left() == []  # Delivered: nothing kept.
    msg = await bus.jetstream().get_msg(
        subjects.RESULTS_STREAM, subject=subjects.job_result("h1", "j1")
    )
    assert RunResult.model_validate_json(msg.data or b"") == _result("j1")
