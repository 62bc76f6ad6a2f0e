"""Once-only signatures: the memory, shared by every management server, of the signatures
already accepted for commands that change something.

A use is an INSERT of the signature's digest under its primary key: the database lets
exactly one of any number of concurrent uses in (on any server), with no read before the
write that two copies could both pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.engine import locked_transaction
from cloudiag.db.models import UsedSignature, utcnow

#: A row outlives its signature by this much: a server whose clock runs that much behind
#: the purging one's still takes the signature as valid, and must still find it used.
CLOCK_MARGIN = timedelta(minutes=5)


#: Made once: every call that changes something makes it (building it costs more than
#: running it).
_USE = insert(UsedSignature).values(
    digest=bindparam("digest"), expires=bindparam("expires", type_=UsedSignature.expires.type)
)


@dataclass(frozen=True)
class Use:
    """One use of a once-only signature: its digest, and until when it is accepted anyway
    (None: for good)."""

    digest: str
    expires: datetime | None


class SignatureUsed(Exception):
    """The signature was used before (use_within found its row)."""


_USE_ONCE = {
    # The table's own INSERT: the ORM's (a bulk insert) does not say how many rows it made.
    name: dialect.insert(cast(Table, UsedSignature.__table__))
    .values(
        digest=bindparam("digest"),
        expires=bindparam("expires", type_=UsedSignature.expires.type),
    )
    .on_conflict_do_nothing(index_elements=["digest"])
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


async def use_within(db: AsyncSession, use: Use) -> None:
    """Record the use in the caller's transaction, so that it counts if and only if what
    the transaction does is committed; SignatureUsed if it was used before.

    A copy in a concurrent transaction waits for this one's end on PostgreSQL (the same
    key), and finds the row if it was committed; SQLite runs one writer at a time.
    """
    statement = _USE_ONCE[db.get_bind().dialect.name]
    done = await db.execute(statement, {"digest": use.digest, "expires": use.expires})
    if not done.rowcount:  # type: ignore[attr-defined]
        raise SignatureUsed(use.digest)


async def use(
    sessions: async_sessionmaker[AsyncSession], digest: str, expires: datetime | None
) -> bool:
    """Record one use of the signature ``digest``; False if it was used before.

    ``expires`` is when the signature stops being accepted anyway (None: never, and the row
    is kept for good). Committed before returning: a use counts even if what follows fails.
    """
    try:
        # On SQLite with the other writers (db.engine.locked_transaction), not against them.
        async with locked_transaction(sessions) as db:
            await db.execute(_USE, {"digest": digest, "expires": expires})
    except IntegrityError:
        return False
    return True


async def give_back(sessions: async_sessionmaker[AsyncSession], digest: str) -> None:
    """Forget one use of the signature ``digest``: the call it was spent on changed nothing."""
    async with sessions.begin() as db:
        await db.execute(delete(UsedSignature).where(UsedSignature.digest == digest))


async def purge(db: AsyncSession, now: datetime | None = None) -> int:
    """Delete the rows of signatures expired (by CLOCK_MARGIN); how many."""
    now = now or utcnow()
    result = await db.execute(
        delete(UsedSignature).where(UsedSignature.expires < now - CLOCK_MARGIN)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
