"""aiosqlite with one trip to its thread per statement.

SQLAlchemy's aiosqlite adapter makes four trips to the connection's thread for each
statement (open a cursor, execute, fetch, close), and each trip is a thread wake-up and a
wake-up of the event loop: on a small machine they cost more than the statements. Here a
statement is executed, fetched and closed in one trip; the cursor SQLAlchemy holds is only
the result. Commit and rollback make no trip when no transaction is open. The connection is
otherwise aiosqlite's own (its thread, close).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

_T = TypeVar("_T")
_Description = tuple[tuple[Any, ...], ...] | None
_Outcome = tuple[_Description, int, int | None, list[Any]]


def _run(db: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: the statement's description, rowcount, lastrowid and rows."""
    cursor = db.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor:
    """What SQLAlchemy's adapter needs of an aiosqlite cursor, each statement one trip."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: _Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _trip(self, sql: str, parameters: Any, many: bool) -> OneTripCursor:
        connection = self._connection
        self.description, self.rowcount, self.lastrowid, self._rows = await connection.run(
            _run, sql, parameters, many
        )
        return self

    async def execute(self, sql: str, parameters: Any = ()) -> OneTripCursor:
        """Execute one statement and keep its rows."""
        return await self._trip(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> OneTripCursor:
        """Execute one statement for each set of parameters."""
        return await self._trip(sql, parameters, many=True)

    async def fetchall(self) -> list[Any]:
        """The rows not fetched yet."""
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to `size` rows (arraysize when not given)."""
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def setinputsizes(self, *_sizes: object) -> None:
        """Nothing to do (sqlite3 ignores it too)."""

    async def close(self) -> None:
        """Nothing to release: the statement's cursor was closed on its trip."""
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors make one trip per statement."""

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        """A cursor; unlike aiosqlite's, making one costs no trip."""
        return OneTripCursor(self)

    async def commit(self) -> None:
        """Commit the transaction, if one is open (else there is nothing to make a trip for)."""
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        """Roll back the transaction, if one is open: sqlite3 opens one only before a write,
        and the pool rolls back every connection it gets back, after reads too."""
        if self._conn.in_transaction:
            await super().rollback()

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """`function(sqlite3 connection, *args)` on the connection's thread."""
        db = self._conn
        result: _T = await self._execute(  # type: ignore[no-untyped-call]
            lambda: function(db, *args)
        )
        return result


def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """Like aiosqlite.connect (SQLAlchemy's connect arguments), with OneTripConnection."""

    def connector() -> sqlite3.Connection:
        db: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return db

    connection = OneTripConnection(connector, iter_chunk_size=64)
    # As SQLAlchemy does for aiosqlite's own: a forgotten connection must not hold the exit.
    connection._thread.daemon = True
    return connection
