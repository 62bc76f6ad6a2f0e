"""Gauges of the fleet, set when Prometheus scrapes (api/metrics.py reads the fleet)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Gauge

from cloudiag.bus.health import StreamDepth

AGENTS = Gauge("cloudiag_agents", "Hosts' agents by state (Up: heartbeats fresh)", ["state"])
SERVERS = Gauge("cloudiag_management_servers", "Management servers by heartbeat state", ["state"])
PENDING = Gauge("cloudiag_jobs_pending", "Jobs queued or running on agents (every server's)")
STREAM_MESSAGES = Gauge(
    "cloudiag_stream_messages",
    "Messages a JetStream stream holds; on the requests and results work queues, the ones "
    "still waiting (queue depth)",
    ["stream"],
)
SCRAPE_OK = Gauge(
    "cloudiag_fleet_scrape_ok", "1 when the last scrape could read the database and the bus"
)

AGENT_STATES = ("Up", "Disconnected")
SERVER_STATES = ("Up", "Stopped")


def record_database(
    agent_states: Iterable[str], server_states: Iterable[str], pending: int
) -> None:
    """What the database says: the agents' and the servers' states, the pending jobs."""
    agents, servers = list(agent_states), list(server_states)
    for state in AGENT_STATES:
        AGENTS.labels(state).set(agents.count(state))
    for state in SERVER_STATES:
        SERVERS.labels(state).set(servers.count(state))
    PENDING.set(pending)


def record_streams(streams: Iterable[StreamDepth]) -> None:
    """What the bus says: the messages each stream holds."""
    for stream in streams:
        STREAM_MESSAGES.labels(stream.name).set(stream.messages)
