"""Structured logs: one record is one line, and carries the job id on a job's path."""

from __future__ import annotations

import json
import logging

import pytest

from cloudiag import logs


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_newlines_in_input_cannot_forge_a_second_line(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.setup("INFO", fmt)
    logging.getLogger("t").warning("refused %s", "-c 1\n2026-11-25 INFO forged entry\r\x1b[31m")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "forged entry" in err


def test_job_id_on_every_line_of_a_job(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", "json")
    token = logs.job_id_var.set("d6f36613-baa4-4c5c-85ce-5fcf39d44a07")
    try:
        logging.getLogger("t").info("accepted")
    finally:
        logs.job_id_var.reset(token)
    logging.getLogger("t").info("no job")
    first, second = (json.loads(x) for x in capsys.readouterr().err.splitlines())
    assert first["job_id"] == "d6f36613-baa4-4c5c-85ce-5fcf39d44a07"
    assert "job_id" not in second
