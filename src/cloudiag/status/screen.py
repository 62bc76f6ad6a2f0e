"""The status report as one screen of rich tables."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cloudiag.status.report import Report

#: Agents listed by name at most; beyond, those not Up first, then a count.
AGENTS_SHOWN = 20


def _state(state: str) -> Text:
    return Text(state, style="green" if state in ("Up", "reachable") else "bold red")


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def render(report: Report) -> RenderableType:
    """Database, bus, servers and agents, each a table."""
    now = report.checked
    db = report.database
    database = Table(title="Database", title_justify="left", show_header=False)
    database.add_row("backend", db.backend)
    database.add_row("url", db.url)
    database.add_row("state", _state("reachable" if db.reachable else "unreachable"))
    if db.reachable:
        behind = "" if db.revision == db.head else f" (this version's newest: {db.head})"
        database.add_row("migration", f"{db.revision or 'none'}{behind}")
    else:
        database.add_row("error", db.error)
    if report.jobs_pending is not None:
        database.add_row("jobs pending", str(report.jobs_pending))

    bus = Table(title="NATS", title_justify="left", show_header=False)
    streams = Table(
        "stream", "messages", "replicas", "consumers", "pending", "unacked",
        title="JetStream (requests and results: work queues, what they hold waits)",
        title_justify="left",
    )  # fmt: skip
    if report.nats is None:
        bus.add_row("state", Text("no NATS URL given (--nats-url, CLOUDIAG_NATS_URL)"))
    else:
        n = report.nats
        bus.add_row("url", n.url)
        bus.add_row("state", _state("reachable" if n.reachable else "unreachable"))
        if n.server:
            bus.add_row("connected to", n.server)
        if n.discovered:
            bus.add_row("cluster", ", ".join(n.discovered))
        if n.rtt_ms is not None:
            bus.add_row("round trip", f"{n.rtt_ms:.2f} ms")
        if n.error:
            bus.add_row("error", n.error)
        for s in n.streams:
            streams.add_row(
                s.name,
                str(s.messages),
                str(s.replicas),
                str(len(s.consumers)),
                str(sum(c.pending for c in s.consumers)),
                str(sum(c.ack_pending for c in s.consumers)),
            )

    servers = Table("management server", "id", "state", "heartbeat", title="Servers",
                    title_justify="left")  # fmt: skip
    for srv in report.servers:
        servers.add_row(srv.name, srv.id, _state(srv.state), _ago(srv.last_seen, now))

    up = sum(a.state == "Up" for a in report.agents)
    agents = Table(
        "host", "id", "state", "heartbeat", "system VMs", "version",
        title=f"Agents: {up} Up, {len(report.agents) - up} Disconnected",
        title_justify="left",
    )  # fmt: skip
    listed = sorted(report.agents, key=lambda a: (a.state == "Up", a.name))[:AGENTS_SHOWN]
    for a in listed:
        agents.add_row(
            a.name, a.id, _state(a.state), _ago(a.last_heartbeat, now), str(a.system_vms),
            a.version,
        )  # fmt: skip
    if len(report.agents) > len(listed):
        agents.caption = f"and {len(report.agents) - len(listed)} more Up (--json lists all)"

    parts: list[RenderableType] = [database, bus]
    if report.nats is not None and report.nats.streams:
        parts.append(streams)
    parts += [servers, agents]
    verdict = "healthy" if report.healthy else "NOT healthy"
    parts.append(Text(f"{verdict} at {now:%Y-%m-%d %H:%M:%S} UTC", style="bold"))
    return Group(*parts)
