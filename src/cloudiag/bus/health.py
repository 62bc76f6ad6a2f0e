"""The bus as an operator sees it: round trip, servers, and how much waits in each stream."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from cloudiag.bus import subjects


@dataclass(frozen=True)
class ConsumerDepth:
    """One durable consumer: messages not yet delivered, and delivered but not acked."""

    name: str
    pending: int
    ack_pending: int


@dataclass(frozen=True)
class StreamDepth:
    """One of cloudiag's streams: the messages it holds, and its consumers' backlog."""

    name: str
    messages: int
    bytes: int
    #: Replicas of the stream (3 on a NATS cluster with R3 streams).
    replicas: int
    consumers: list[ConsumerDepth]


#: The streams cloudiag keeps (bus/streams.py): requests and results are work queues, so
#: the messages they hold are the ones still waiting (the queue depth); the data stream
#: holds getDiagnosticsData zips not yet taken by a server.
STREAMS = (
    subjects.REQUESTS_STREAM,
    subjects.RESULTS_STREAM,
    subjects.OUTPUT_STREAM,
    subjects.DATA_STREAM,
)


#: JetStream lists at most this many consumers per answer.
_CONSUMERS_PAGE = 256


async def streams(js: JetStreamContext, *, consumers: bool = True) -> list[StreamDepth]:
    """cloudiag's streams that exist, with their consumers' backlog if `consumers`."""
    found = []
    for name in STREAMS:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            continue
        found.append(
            StreamDepth(
                name,
                int(info.state.messages),
                int(info.state.bytes),
                int(info.config.num_replicas or 1),
                await _backlog(js, name) if consumers else [],
            )
        )
    return found


async def _backlog(js: JetStreamContext, stream: str) -> list[ConsumerDepth]:
    """Every consumer of the stream (one per agent on the requests stream), page by page."""
    backlog: list[ConsumerDepth] = []
    while True:
        batch = await js.consumers_info(stream, offset=len(backlog))
        backlog += (
            ConsumerDepth(c.name, int(c.num_pending or 0), int(c.num_ack_pending or 0))
            for c in batch
        )
        if len(batch) < _CONSUMERS_PAGE:
            return sorted(backlog, key=lambda c: c.name)


def server_of(nc: Client) -> str:
    """The NATS server the client is connected to (host:port, no credentials), or ''."""
    url = nc.connected_url
    if url is None:
        return ""
    return f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
