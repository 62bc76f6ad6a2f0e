"""The API answers 530 "database unavailable" to a temporary database error only; any other
database error is a 530 of its own, logged, not an invitation to try again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.app import DATABASE_ERROR, DATABASE_UNAVAILABLE, create_app
from cloudiag.api.commands.auth import SESSION_COOKIE
from cloudiag.api.context import AppState
from cloudiag.settings import Settings


class BrokenDb:
    """A session factory whose every session fails with the given error."""

    def __init__(self, error: Callable[[], BaseException]) -> None:
        self.error = error

    def __call__(self) -> Any:
        raise self.error()

    def begin(self) -> Any:
        raise self.error()


def _starting_up() -> BaseException:
    # What SQLAlchemy raises for asyncpg's CannotConnectNowError: a bare DBAPIError.
    class Orig(Exception):
        sqlstate = "57P03"

    return DBAPIError("SELECT", {}, Orig("the database system is starting up"))


async def _call(error: Callable[[], BaseException]) -> httpx.Response:
    state = AppState(
        Settings(), db=BrokenDb(error), runner=None, nc=None, secrets=SecretBox.generate()
    )  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", cookies={SESSION_COOKIE: "s"}
    ) as http:
        return await http.get(
            "/client/api", params={"command": "listZones", "response": "json", "sessionkey": "k"}
        )


@pytest.mark.parametrize(
    "error",
    [lambda: ConnectionRefusedError(111, "Connect call failed"), _starting_up],
    ids=["refused", "starting-up"],
)
async def test_an_outage_is_database_unavailable(error: Callable[[], BaseException]) -> None:
    r = await _call(error)
    assert r.status_code == 530
    assert r.json()["listzonesresponse"]["errortext"] == DATABASE_UNAVAILABLE


async def test_a_statement_fault_is_no_outage() -> None:
    r = await _call(lambda: IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert r.status_code == 530
    assert r.json()["listzonesresponse"]["errortext"] == DATABASE_ERROR
