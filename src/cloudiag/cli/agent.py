"""`cloudiag agent`: run the agent of this host."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloudiag import logs
from cloudiag.cli.options import executor_flag, settings_from


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `agent` subcommand."""
    p = subparsers.add_parser(
        "agent",
        help="run the agent of this host (reports its system VMs, runs diagnostics)",
        description="Connect to NATS, register this host and its system VMs, send heartbeats "
        "and run diagnostics the management servers ask for. Inventory: the lab's namespaces, "
        "or a static inventory file (--inventory).",
    )
    p.add_argument(
        "--nats-url",
        help="NATS server URL (env CLOUDIAG_NATS_URL, better for a URL with credentials)",
    )
    p.add_argument("--lab-prefix", help="the lab whose namespaces are this host's VMs")
    executor_flag(p)
    p.add_argument(
        "--inventory",
        type=Path,
        metavar="FILE",
        help="a static inventory of the zone, host and VMs (JSON, or TOML if FILE ends in "
        ".toml) instead of the lab",
    )
    p.add_argument("--host-id", help="this host's uuid (default: the inventory's)")
    p.add_argument("--host-name", help="this host's name (default: the hostname)")
    p.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where the agent keeps results not yet delivered (env CLOUDIAG_DATA_DIR; "
        "default ~/.local/share/cloudiag)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cloudiag.agent import wiring
    from cloudiag.agent.sources.inventory import InventoryError
    from cloudiag.bus.streams import JetStreamUnavailable
    from cloudiag.lab.inventory import inventory as lab_inventory

    settings = settings_from(args)
    if not settings.nats_url:
        print("cloudiag agent: give --nats-url or set CLOUDIAG_NATS_URL")
        return 2
    logs.setup(settings.log_level, settings.log_format)
    try:
        prefix = args.lab_prefix or settings.lab_prefix
        lab = None if args.inventory else lab_inventory(prefix, settings.executor)
        agent = wiring.build(
            wiring.AgentOptions(
                settings.nats_url,
                inventory_file=args.inventory,
                lab_inventory=lab,
                host_id=args.host_id,
                host_name=args.host_name,
                heartbeat_interval=settings.heartbeat_interval,
                state_dir=settings.data_dir,
            )
        )
    except (InventoryError, ValueError) as exc:  # ValueError: a bad lab prefix.
        print(f"cloudiag agent: {exc}", file=sys.stderr)
        return 2
    try:
        wiring.run(agent)
    except JetStreamUnavailable as exc:
        print(f"cloudiag agent: {exc}", file=sys.stderr)
        return 1
    return 0
