"""Connecting to NATS with endless reconnects, so a broker restart heals by itself."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client

from cloudiag.bus.access import BusAccess
from cloudiag.bus.embedded import server_urls

log = logging.getLogger(__name__)


async def connect(
    url: str,
    name: str,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    *,
    access: BusAccess | None = None,
    inbox_prefix: str | None = None,
) -> Client:
    """A NATS client that keeps reconnecting and logs its state changes.

    ``url`` may list a cluster's servers, comma-separated: the client fails over among
    them (and those the cluster announces). ``inbox_prefix`` is where its replies come (an
    agent's own, which no other agent may read).
    """

    async def on_disconnected() -> None:
        log.warning("nats disconnected name=%s", name)

    async def on_reconnected() -> None:
        log.info("nats reconnected name=%s", name)
        if on_reconnect is not None:
            try:
                await on_reconnect()
            except Exception:
                log.exception("after reconnecting to nats")

    async def on_error(exc: Exception) -> None:
        log.warning("nats error name=%s error=%s", name, exc)

    extra = (access or BusAccess()).options()
    if inbox_prefix is not None:
        extra["inbox_prefix"] = inbox_prefix
    client: Client = await nats.connect(
        server_urls(url),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        error_cb=on_error,
        **extra,
    )
    return client
