"""A durable pull consumer served in a loop that outlives bus outages.

The loop binds to (or makes) its durable consumer, fetches messages as there is room for
them, and hands each to its handler; when the bus is away it waits and binds again, so a
restarted (or replaced) nats-server heals by itself. Acknowledging is the handler's job:
it knows when a message has been dealt with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cloudiag.backoff import Backoff

log = logging.getLogger(__name__)

#: How long one fetch waits for a message before it asks again.
FETCH_WAIT = 1.0
#: Back-off after an error, doubling up to the maximum.
RETRY_FIRST = 0.2
RETRY_MAX = 5.0


def durable_config(
    durable: str, subject: str, ack_wait: float, max_ack_pending: int
) -> ConsumerConfig:
    """A durable consumer from the start of the stream, acknowledged one message at a time."""
    return ConsumerConfig(
        durable_name=durable,
        name=durable,
        filter_subject=subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
    )


async def consume(
    js: Callable[[], JetStreamContext],
    stream: str,
    config: ConsumerConfig,
    handle: Callable[[Msg], Awaitable[None]],
    *,
    room: Callable[[], Awaitable[None]] | None = None,
    manage: bool = True,
) -> None:
    """Serve the consumer until cancelled.

    `manage`: make the consumer, or bring an older one's config (its filter) up to date;
    without it (agents, who may not) bind to the consumer the servers made, trying again
    until it is there.

    `room()`, when given, waits until there is room for a message (the agent fetches no
    more than it can start); each fetched message is handled in a task of its own, at once.

    One message per fetch: nats-py's fetch of a batch waits out its whole timeout for the
    rest of the batch once its first message has come (a short drain fetch after it still
    held each message ~10 ms on its way to its handler), while a fetch of one returns as
    soon as one is there: a message waits for its handler one round trip to the bus at
    most, never a timer.
    """
    assert config.durable_name is not None and config.filter_subject is not None
    backoff = Backoff(first=RETRY_FIRST, longest=RETRY_MAX)
    pending: set[asyncio.Task[None]] = set()
    while True:
        try:
            if manage:
                await js().add_consumer(stream, config)
            sub = await js().pull_subscribe_bind(durable=config.durable_name, stream=stream)
        except (NatsError, TimeoutError, OSError) as exc:
            delay = backoff.delay()
            log.warning(
                "cannot bind consumer %s (%s); again in %g s", config.durable_name, exc, delay
            )
            await asyncio.sleep(delay)
            continue
        try:
            while True:
                if room is not None:
                    await room()
                try:
                    msgs = await sub.fetch(1, timeout=FETCH_WAIT)
                except TimeoutError:
                    continue
                backoff.reset()
                for msg in msgs:
                    task = asyncio.create_task(_handle(handle, msg))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
        except (NatsError, OSError) as exc:
            delay = backoff.delay()
            log.warning(
                "consumer %s interrupted (%s); binding again in %g s",
                config.durable_name,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
        finally:
            try:
                await sub.unsubscribe()
            except (NatsError, OSError):
                pass


async def _handle(handle: Callable[[Msg], Awaitable[None]], msg: Msg) -> None:
    try:
        await handle(msg)
    except Exception:
        # Unacknowledged, the message comes back after its ack wait.
        log.exception("handling %s failed", msg.subject)
