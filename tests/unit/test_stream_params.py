"""/client/stream checks each jobid exactly as the API's commands check theirs."""

from __future__ import annotations

import uuid

import pytest

from cloudiag.api.errors import ApiError
from cloudiag.api.registry import REGISTRY
from cloudiag.api.stream import MAX_STREAM_JOBS, _job_ids


@pytest.mark.parametrize("raw", ["x" * 300, "0000\x01", "not-a-uuid", "12"])
def test_a_bad_jobid_gets_the_api_s_own_error(raw: str) -> None:
    command = REGISTRY.get("queryAsyncJobResult")
    assert command is not None
    with pytest.raises(ApiError) as api:
        command.validate({"jobid": raw})
    for params in ([("jobid", raw)], [("jobid", f"{uuid.uuid4()},{raw}")]):
        with pytest.raises(ApiError) as stream:
            _job_ids(params)
        assert (stream.value.errorcode, stream.value.errortext) == (
            api.value.errorcode,
            api.value.errortext,
        )


def test_a_jobid_is_normalized_as_the_api_does() -> None:
    job = uuid.uuid4()
    assert _job_ids([("jobid", f" {str(job).upper()} ")]) == [str(job)]


def test_several_jobs_by_commas_or_repeated_in_order_once_each() -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    assert _job_ids([("jobid", f"{a},{b}"), ("JobId", c), ("jobid", a)]) == [a, b, c]


def test_a_missing_jobid_is_431() -> None:
    for params in ([], [("jobid", "")], [("jobid", " "), ("jobid", "")]):
        with pytest.raises(ApiError) as err:
            _job_ids(params)
        assert err.value.errorcode == 431 and "missing parameter jobid" in err.value.errortext


def test_a_stream_follows_a_bounded_number_of_jobs() -> None:
    ids = ",".join(str(uuid.uuid4()) for _ in range(MAX_STREAM_JOBS + 1))
    with pytest.raises(ApiError, match=f"more than {MAX_STREAM_JOBS} jobs"):
        _job_ids([("jobid", ids)])
