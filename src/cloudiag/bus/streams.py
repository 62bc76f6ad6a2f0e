"""The JetStream streams and the bucket cloudiag keeps on the bus, made or updated at start.

Requests and results are on file storage: a restarted nats-server keeps them, and a result
stays until a management server has stored it. Output lines are for watching a run and
re-opening it soon after (the job's row keeps the complete output): memory is enough.
On a NATS cluster every stream and the bucket have three replicas (R3), so that losing one
node loses nothing.
"""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    NotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue

from cloudiag.bus import subjects

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
    )


def data_bucket_config(replicas: int = 1) -> ObjectStoreConfig:
    """The object store of getDiagnosticsData's zips on their way to a management server."""
    return ObjectStoreConfig(ttl=DATA_TTL, storage=StorageType.FILE, replicas=replicas)


async def ensure_jetstream(nc: Client) -> tuple[JetStreamContext, KeyValue]:
    """Create or update every stream, the job table and the zips' object store; raises
    JetStreamUnavailable.

    Servers and agents both call it, at start and after each reconnect (a replaced
    nats-server may have lost its store): whoever comes first makes them. On a cluster they
    get three replicas (replicas_for); an existing stream is scaled to that.
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
            await _scale(js, f"KV_{subjects.JOBS_BUCKET}", count)
        try:
            await js.object_store(subjects.DATA_BUCKET)
        except BucketNotFoundError:
            await js.create_object_store(subjects.DATA_BUCKET, data_bucket_config(count))
        else:
            await _scale(js, f"OBJ_{subjects.DATA_BUCKET}", count)
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
