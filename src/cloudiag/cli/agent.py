"""`cloudiag agent`: run the agent of this host."""

from __future__ import annotations

import argparse
import asyncio
import signal

from cloudiag import logs
from cloudiag.cli.options import settings_from


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `agent` subcommand."""
    p = subparsers.add_parser(
        "agent",
        help="run the agent of this host (reports its system VMs, runs diagnostics)",
        description="Connect to NATS, register this host and its system VMs, send heartbeats "
        "and run diagnostics the management servers ask for. Inventory: the lab's namespaces.",
    )
    p.add_argument(
        "--nats-url",
        help="NATS server URL (env CLOUDIAG_NATS_URL, better for a URL with credentials)",
    )
    p.add_argument("--lab-prefix", help="the lab whose namespaces are this host's VMs")
    p.add_argument("--host-id", help="this host's uuid (default: stable per lab prefix)")
    p.add_argument("--host-name", help="this host's name (default: the hostname)")
    p.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cloudiag.agent.agent import Agent
    from cloudiag.agent.inventory import lab_host_id, lab_inventory, lab_zone

    settings = settings_from(args)
    if not settings.nats_url:
        print("cloudiag agent: give --nats-url or set CLOUDIAG_NATS_URL")
        return 2
    prefix = args.lab_prefix or settings.lab_prefix
    logs.setup(settings.log_level, settings.log_format)

    async def inventory() -> list:  # type: ignore[type-arg]
        return await lab_inventory(prefix)

    agent = Agent(
        settings.nats_url,
        args.host_id or lab_host_id(prefix),
        lab_zone(prefix),
        inventory,
        host_name=args.host_name,
        heartbeat_interval=settings.heartbeat_interval,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.stop)
        await agent.run()

    asyncio.run(main())
    return 0
