"""`cloudiag status`: servers, agents, NATS, the database and the queues, in one screen."""

from __future__ import annotations

import argparse
import asyncio
import json

from cloudiag.cli.options import settings_from, storage_flags


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `status` subcommand."""
    p = subparsers.add_parser(
        "status",
        help="show the management servers, agents, NATS, database and queue depth",
        description="Read the database (servers' and agents' heartbeats, pending jobs, the "
        "schema's migration) and NATS (round trip, JetStream streams and their consumers' "
        "backlog) and show them in one screen. Exit status 0 when everything is up, 1 "
        "otherwise.",
    )
    storage_flags(p)
    p.add_argument(
        "--nats-url", help="NATS server URL (env CLOUDIAG_NATS_URL, better with credentials)"
    )
    p.add_argument("--heartbeat-interval", type=float, help="the agents' heartbeat interval")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cloudiag.status import report, screen

    settings = settings_from(args)
    found = asyncio.run(report.gather(settings))
    if args.json:
        print(json.dumps(found.as_json(), indent=2))
    else:
        Console().print(screen.render(found))
    return 0 if found.healthy else 1
