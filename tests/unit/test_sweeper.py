"""Jobs whose server never came back are failed once they are well past their time limit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from cloudiag.db.models import AsyncJob, User, utcnow
from cloudiag.jobs.runner import ORPHAN_GRACE, RESULT_GRACE, JobRunner


async def test_sweep_fails_only_jobs_past_their_limit(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade(engine)
    db = session_factory(engine)
    now = utcnow()
    age_of = {"fresh": 30, "running": 100, "orphan": 120 + RESULT_GRACE + ORPHAN_GRACE + 5}
    async with db.begin() as s:
        user = User(
            username="u",
            role="Admin",
            password_hash="x",
            api_key="k",
            secret_key="s",
            domain_id="d",
        )
        s.add(user)
        await s.flush()
        for name, age in age_of.items():
            s.add(
                AsyncJob(
                    id=f"00000000-0000-0000-0000-00000000000{len(name)}",
                    user_id=user.id,
                    account_id="a",
                    cmd="c",
                    instance_type="SystemVm",
                    instance_id=name,
                    request={"type": "ping", "timelimit": 120.0},
                    created=now - timedelta(seconds=age),
                )
            )
    runner = JobRunner(db, nc=None, server_id="gone")  # type: ignore[arg-type]
    assert await runner.sweep(now) == 1
    async with db() as s:
        jobs = {j.instance_id: j for j in (await s.execute(AsyncJob.__table__.select())).all()}
    assert jobs["orphan"].status == 2
    assert "No management server finished the job" in jobs["orphan"].result["errortext"]
    assert jobs["fresh"].status == 0 and jobs["running"].status == 0
    assert await runner.sweep(now) == 0  # nothing twice
    await engine.dispose()
