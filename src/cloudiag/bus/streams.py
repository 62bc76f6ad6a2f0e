"""The JetStream streams and the bucket cloudiag keeps on the bus, made or updated at start.

Requests and results are on file storage: a restarted nats-server keeps them, and a result
stays until a management server has stored it. Output lines are for watching a run and
re-opening it soon after (the job's row keeps the complete output): memory is enough.
On a NATS cluster every stream and the bucket have three replicas (R3), so that losing one
node loses nothing.
"""

from __future__ import annotations

import contextlib
import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import (
    BadRequestError,
    KeyNotFoundError,
    NotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue

from cloudiag.bus import pull, subjects

log = logging.getLogger(__name__)

OUTPUT_MAX_AGE = 3600.0
OUTPUT_MAX_BYTES = 256 * 1024 * 1024
#: A request nobody took within a day is long stale (its deadline is minutes at most).
REQUESTS_MAX_AGE = 86400.0
#: A result waits this long for a management server to store it (a long outage).
RESULTS_MAX_AGE = 7 * 86400.0
#: Duplicates of one message id within this window are dropped by the stream itself; the
#: job table and the stored-once rule cover what comes later.
DUPLICATE_WINDOW = 600.0
#: How long an agent remembers a job: past any replay of its request (whose deadline is at
#: most minutes) and any server's question about it.
JOBS_TTL = 86400.0
#: A getDiagnosticsData zip waits as long as its result for a server to take it.
DATA_TTL = RESULTS_MAX_AGE


#: A request an agent has fetched but not acknowledged comes back after this long.
REQUEST_ACK_WAIT = 30.0
#: Most requests an agent holds unacknowledged (it takes no more than it can start).
AGENT_MAX_JOBS = 200


#: JetStream's header naming a message: a stream drops a second message of the same id
#: within its duplicate window (both requests and results carry their job's id).
MSG_ID = "Nats-Msg-Id"


#: Replicas on a cluster: a quorum of three survives the loss of any one node.
CLUSTER_REPLICAS = 3


class JetStreamUnavailable(RuntimeError):
    """The NATS server has no JetStream, which cloudiag needs for durable delivery."""


def replicas_for(nc: Client) -> int:
    """The replicas of cloudiag's streams: three on a cluster of three or more nodes (the
    servers the client knows: its URLs and those the cluster announced), else one. Servers
    and agents judge it alike, so that they never scale a stream back and forth."""
    return min(CLUSTER_REPLICAS, max(1, len(nc.servers)))


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    """Every stream cloudiag uses."""
    configs = [
        StreamConfig(
            name=subjects.OUTPUT_STREAM,
            subjects=[subjects.OUTPUT_SUBJECTS],
            storage=StorageType.MEMORY,
            max_age=OUTPUT_MAX_AGE,
            max_bytes=OUTPUT_MAX_BYTES,
            discard=DiscardPolicy.OLD,
        ),
        _work_queue(subjects.REQUESTS_STREAM, subjects.REQUESTS_SUBJECTS, REQUESTS_MAX_AGE),
        _work_queue(subjects.RESULTS_STREAM, subjects.RESULTS_SUBJECTS, RESULTS_MAX_AGE),
        # getDiagnosticsData zips in chunks, each read by its subject and purged once taken.
        StreamConfig(
            name=subjects.DATA_STREAM,
            subjects=[subjects.DATA_SUBJECTS],
            storage=StorageType.FILE,
            max_age=DATA_TTL,
            duplicate_window=DUPLICATE_WINDOW,
            allow_direct=True,
        ),
    ]
    for config in configs:
        config.num_replicas = replicas
    return configs


def _work_queue(name: str, subject: str, max_age: float) -> StreamConfig:
    """A durable stream whose messages go once their consumer acknowledges them, with
    copies of one message id dropped."""
    return StreamConfig(
        name=name,
        subjects=[subject],
        storage=StorageType.FILE,
        retention=RetentionPolicy.WORK_QUEUE,
        max_age=max_age,
        duplicate_window=DUPLICATE_WINDOW,
    )


def jobs_bucket_config(replicas: int = 1) -> KeyValueConfig:
    """The agents' job table."""
    return KeyValueConfig(
        bucket=subjects.JOBS_BUCKET,
        history=1,
        ttl=JOBS_TTL,
        storage=StorageType.FILE,
        replicas=replicas,
        # Reads by key in the API subject, which the agents' permissions can hold to their
        # own host's keys (a plain get names its key in the body).
        direct=True,
    )


async def _update_bucket(js: JetStreamContext, replicas: int) -> None:
    """An existing job table with that many replicas and direct gets (an older one was made
    without them, and agents read only so)."""
    config = (await js.stream_info(f"KV_{subjects.JOBS_BUCKET}")).config
    if not config.allow_direct or config.num_replicas != replicas:
        config.allow_direct, config.num_replicas = True, replicas
        await js.update_stream(config)


def agent_consumer_config(host_id: str) -> ConsumerConfig:
    """The durable consumer of one host's requests: the server makes it (agents may not
    make or change consumers), the host's agent binds to it."""
    return pull.durable_config(
        subjects.agent_consumer(host_id),
        subjects.agent_requests(host_id),
        ack_wait=REQUEST_ACK_WAIT,
        max_ack_pending=AGENT_MAX_JOBS,
    )


async def ensure_agent_consumer(js: JetStreamContext, host_id: str) -> None:
    """Create (or update) the durable consumer of a host's requests."""
    await js.add_consumer(subjects.REQUESTS_STREAM, agent_consumer_config(host_id))


async def jobs_bucket(nc: Client, host_id: str) -> tuple[JetStreamContext, KeyValue]:
    """An agent's view of the job table the servers made (an error until they have).

    Its permissions allow it no stream of its own, and no look at the bucket's stream
    (which would list every host's keys): reads are direct gets of its own keys.
    """
    js = nc.jetstream()
    kv = KeyValue(
        name=subjects.JOBS_BUCKET,
        stream=f"KV_{subjects.JOBS_BUCKET}",
        pre=f"$KV.{subjects.JOBS_BUCKET}.",
        js=js,
        direct=True,
    )
    with contextlib.suppress(KeyNotFoundError):  # The bucket answers: it is there.
        await kv.get(subjects.job_key(host_id, "-"))
    return js, kv


async def ensure_jetstream(nc: Client) -> tuple[JetStreamContext, KeyValue]:
    """Create or update every stream (the zips' chunks' too) and the job table; raises
    JetStreamUnavailable.

    Servers call it at start and after each reconnect (a replaced nats-server may have
    lost its store). An update moves an older store's streams to today's subjects. On a
    cluster they get three replicas (replicas_for); an existing stream is scaled to that.
    """
    js = nc.jetstream()
    count = replicas_for(nc)
    try:
        for config in stream_configs(count):
            assert config.name is not None
            try:
                await js.stream_info(config.name)
            except NotFoundError:
                await js.add_stream(config)
            else:
                await js.update_stream(config)
        try:
            kv = await js.key_value(subjects.JOBS_BUCKET)
        except NotFoundError:
            kv = await js.create_key_value(jobs_bucket_config(count))
        else:
            await _update_bucket(js, count)
    except (ServiceUnavailableError, BadRequestError) as exc:
        raise JetStreamUnavailable(
            f"the NATS server has no JetStream ({exc}): cloudiag needs it for durable "
            "delivery; run nats-server with -js"
        ) from exc
    return js, kv


async def _scale(js: JetStreamContext, stream: str, replicas: int) -> None:
    """Give an existing stream (a bucket's) that many replicas, if it has another count."""
    config = (await js.stream_info(stream)).config
    if config.num_replicas != replicas:
        config.num_replicas = replicas
        await js.update_stream(config)
