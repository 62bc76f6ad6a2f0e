"""/client/stream checks its jobid exactly as the API's commands check theirs."""

from __future__ import annotations

import uuid

import pytest

from cloudiag.api.errors import ApiError
from cloudiag.api.registry import REGISTRY
from cloudiag.api.stream import _job_id


@pytest.mark.parametrize("raw", ["x" * 300, "0000\x01", "not-a-uuid", "12"])
def test_a_bad_jobid_gets_the_api_s_own_error(raw: str) -> None:
    command = REGISTRY.get("queryAsyncJobResult")
    assert command is not None
    with pytest.raises(ApiError) as api:
        command.validate({"jobid": raw})
    with pytest.raises(ApiError) as stream:
        _job_id({"jobid": raw})
    assert (stream.value.errorcode, stream.value.errortext) == (
        api.value.errorcode,
        api.value.errortext,
    )


def test_a_jobid_is_normalized_as_the_api_does() -> None:
    job = uuid.uuid4()
    assert _job_id({"jobid": f" {str(job).upper()} "}) == str(job)


def test_a_missing_jobid_is_431() -> None:
    with pytest.raises(ApiError) as err:
        _job_id({})
    assert err.value.errorcode == 431
