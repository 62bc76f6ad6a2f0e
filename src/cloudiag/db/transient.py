"""Which database errors are temporary: the connection or the server, not the statement.

A temporary error is worth trying again (the same statement will work once the database is
back): every connection-level error, a server shutting down or starting up, too many
clients, a serialization failure or a deadlock, a locked SQLite file. Anything else (a
constraint, a syntax error, a missing table) fails the same way every time.

SQLAlchemy wraps a driver's error in a DBAPIError whose `.orig` is the driver's (for asyncpg,
SQLAlchemy's adapter of it, raised from asyncpg's own exception); is_transient looks at the
whole chain of wrapped errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa_exc

#: SQLSTATE classes of which every code is temporary: 08 connection exception.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})
#: Single SQLSTATE codes that are temporary.
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure: the transaction lost a race; run it again
        "40P01",  # deadlock_detected: PostgreSQL rolled this one back to break the cycle
        "53300",  # too_many_connections: "sorry, too many clients already"
        "55P03",  # lock_not_available: a lock timeout
        "57P01",  # admin_shutdown: "terminating connection due to administrator command"
        "57P02",  # crash_shutdown: another backend crashed, the server restarts
        "57P03",  # cannot_connect_now: "the database system is starting up" (or in recovery)
        "57P05",  # idle_session_timeout: the server closed an idle connection
        "25P03",  # idle_in_transaction_session_timeout: the same, inside a transaction
        "25006",  # read_only_sql_transaction: a failed-over primary now a standby
    }
)
#: SQLite's primary result codes that are temporary: another process holds the file
#: (BUSY, LOCKED), or the file could not be read, written or opened (IOERR, CANTOPEN,
#: PROTOCOL: a lock race on a WAL file).
TRANSIENT_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
#: What asyncpg says when a connection it already lost is used again (a plain InterfaceError,
#: no SQLSTATE; SQLAlchemy's asyncpg dialect looks for the same words).
_ASYNCPG_CLOSED = "connection is closed"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (`.orig`), and what it was raised from (`__cause__`).

    Not `__context__`: an error raised while handling another is not that other one.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            todo.append(orig)
        if current.__cause__ is not None:
            todo.append(current.__cause__)


def _transient_one(exc: BaseException) -> bool:
    """Whether this one error, without what it wraps, is temporary."""
    if isinstance(exc, OSError | TimeoutError):  # ConnectionError is an OSError
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError):  # no connection free in the pool in time
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError):
        return True
    if type(exc) is asyncpg.InterfaceError and _ASYNCPG_CLOSED in str(exc):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in TRANSIENT_SQLITE_CODES
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate in TRANSIENT_SQLSTATES
    return False


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is temporary: the same work is worth trying again later."""
    return any(_transient_one(e) for e in _chain(exc))
