"""The server id: made once, kept in the data directory, one running server per directory."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cloudiag.jobs.server_identity import (
    SERVER_ID_ENV,
    SERVER_ID_FILE,
    ServerIdError,
    claim_server_id,
)


def test_first_start_makes_an_id_and_later_starts_keep_it(tmp_path: Path) -> None:
    first = claim_server_id(tmp_path / "data")
    first.release()
    uuid.UUID(first.id)
    assert (tmp_path / "data" / SERVER_ID_FILE).read_text() == f"{first.id}\n"
    again = claim_server_id(tmp_path / "data")
    again.release()
    assert again.id == first.id
    other = claim_server_id(tmp_path / "elsewhere")
    other.release()
    assert other.id != first.id


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    running = claim_server_id(tmp_path)
    try:
        with pytest.raises(ServerIdError, match="its own --data-dir"):
            claim_server_id(tmp_path)
    finally:
        running.release()
    claim_server_id(tmp_path).release()  # free again once the first has stopped


def test_the_environment_sets_the_id(tmp_path: Path) -> None:
    identity = claim_server_id(tmp_path, "ms-2.example:a")
    assert (identity.id, identity.source) == ("ms-2.example:a", SERVER_ID_ENV)
    assert not (tmp_path / SERVER_ID_FILE).exists()
    for bad in ("x" * 65, "two words", "new\nline"):
        with pytest.raises(ServerIdError, match=SERVER_ID_ENV):
            claim_server_id(tmp_path, bad)


def test_a_damaged_id_file_is_reported_not_replaced(tmp_path: Path) -> None:
    (tmp_path / SERVER_ID_FILE).write_text("not an id\n")
    with pytest.raises(ServerIdError, match="no valid server id"):
        claim_server_id(tmp_path)
    assert (tmp_path / SERVER_ID_FILE).read_text() == "not an id\n"
    claim_server_id(tmp_path / "fresh").release()  # the failed claim held nothing
