"""Database errors: those of the driver counted where SQLAlchemy raises them (every statement
and connection attempt), the others (a refused TCP connection, a full pool) where they are
caught (`caught`)."""

from __future__ import annotations

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudiag.db.transient import is_transient

ERRORS = Counter(
    "cloudiag_database_errors",
    "Database errors, by kind (transient: an outage worth retrying; other: the statement)",
    ["kind"],
)


def _count(exc: BaseException) -> None:
    ERRORS.labels("transient" if is_transient(exc) else "other").inc()


def watch(engine: AsyncEngine) -> None:
    """Count every error the engine's driver raises (SQLAlchemy's handle_error event)."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _driver_error(context: ExceptionContext) -> None:
        _count(context.original_exception)


def caught(exc: BaseException) -> None:
    """Count an error a caller of the database caught, if it is the database's (SQLAlchemy's
    own, or a connection's OSError) and not the driver's, counted already."""
    if isinstance(exc, SQLAlchemyError | OSError) and not isinstance(exc, DBAPIError):
        _count(exc)
