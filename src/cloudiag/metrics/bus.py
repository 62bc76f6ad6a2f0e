"""The NATS round trip, measured every few seconds by a PING the server answers."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from prometheus_client import Gauge

log = logging.getLogger(__name__)

#: How often the round trip is measured.
PROBE_INTERVAL = 10.0

RTT = Gauge("cloudiag_nats_rtt_seconds", "Round trip to the NATS server, last measured")
CONNECTED = Gauge("cloudiag_nats_connected", "1 while the last round trip to NATS succeeded")


async def probe(nc: Client, timeout: int = 5) -> float | None:
    """Measure the round trip once and record it; None (and connected 0) when it failed."""
    try:
        rtt = float(await nc.rtt(timeout=timeout))
    except Exception as exc:  # Disconnected, reconnecting, timed out: all say "no bus".
        log.debug("nats round trip failed: %s", exc)
        CONNECTED.set(0)
        return None
    RTT.set(rtt)
    CONNECTED.set(1)
    return rtt


async def probe_forever(nc: Client, interval: float = PROBE_INTERVAL) -> None:
    """probe() every `interval` seconds until cancelled."""
    while True:
        await probe(nc)
        await asyncio.sleep(interval)
