"""Who may do what on the bus: nats-server's `authorization` block, made from the hosts.

Every client is an nkey user. Management servers have every right. Each agent may publish
only its own host's subjects (bus/subjects.py) and the few JetStream API calls its work
needs, on its own host's consumer and keys, and may subscribe only to its own host's
requests for status and cancel and to its own reply inboxes. It makes and changes no
stream and no durable consumer: the servers do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudiag.bus import subjects

#: The stream behind the agents' job table (JetStream names a bucket's stream KV_<bucket>).
JOBS_BUCKET_STREAM = f"KV_{subjects.JOBS_BUCKET}"


@dataclass(frozen=True)
class AgentUser:
    """One host's agent as the bus knows it: its host id and its nkey's public key."""

    host_id: str
    public_key: str


def agent_permissions(host_id: str) -> dict[str, Any]:
    """What the agent of `host_id` may publish and subscribe to (nats-server's syntax)."""
    keys = f"$KV.{subjects.JOBS_BUCKET}.{subjects.job_key(host_id, '>')}"
    consumer = subjects.agent_consumer(host_id)
    publish = [
        subjects.agent_report(host_id),
        subjects.job_result(host_id, "*"),
        subjects.job_output(host_id, "*"),
        # Its getDiagnosticsData zips, in chunks (written only: a server reads them).
        subjects.job_data(host_id, "*", "*"),
        # Its job table's records: created and updated, read back one key at a time, and
        # listed (a consumer whose create subject names its filter: its own keys) for
        # what an earlier process left.
        keys,
        f"$JS.API.DIRECT.GET.{JOBS_BUCKET_STREAM}.{keys}",
        f"$JS.API.CONSUMER.CREATE.{JOBS_BUCKET_STREAM}.*.{keys}",
        # Its requests: fetched from its durable consumer, acknowledged.
        f"$JS.API.CONSUMER.MSG.NEXT.{subjects.REQUESTS_STREAM}.{consumer}",
        f"$JS.ACK.{subjects.REQUESTS_STREAM}.{consumer}.>",
    ]
    subscribe = [
        subjects.agent_status(host_id),
        subjects.agent_cancel(host_id),
        f"{subjects.agent_inbox_prefix(host_id)}.>",
    ]
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": subscribe},
        # Its answers to a server's status and cancel requests (one each).
        "allow_responses": True,
    }


def authorization(managers: Iterable[str], agents: Iterable[AgentUser]) -> str:
    """The `authorization` block of nats-server's config: management servers' public keys
    (every right) and each agent with its host's permissions. It holds no secret."""
    users: list[dict[str, Any]] = [{"nkey": key} for key in managers]
    users += [
        {"nkey": agent.public_key, "permissions": agent_permissions(agent.host_id)}
        for agent in sorted(agents, key=lambda a: a.host_id)
    ]
    # nats-server's config format reads JSON; quoted strings stay literal ($ included).
    return "authorization " + json.dumps({"users": users}, indent=2) + "\n"


def write_authorization(path: Path, managers: Iterable[str], agents: Iterable[AgentUser]) -> Path:
    """Write the block where nats-server's config includes it, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(authorization(managers, agents))
    os.replace(partial, path)
    return path
