"""`cloudiag demo`: server + private NATS + local agents + lab, ready to try."""

from __future__ import annotations

import argparse

from cloudiag.cli.lab import count
from cloudiag.cli.options import executor_flag, listen_flags, run_stack, storage_flags


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="everything at once: server, NATS, agent and the lab (needs root)",
        description="Start the management server with a private NATS, bring the lab zone up "
        "in network namespaces and run its agent. Prints the URL and the admin's login and "
        "API keys, and writes them to DATA_DIR/credentials.json. Ctrl-C stops it all.",
    )
    p.add_argument(
        "--lab-prefix",
        help="namespace prefix of the lab (env CLOUDIAG_LAB_PREFIX; default cdlab): another "
        "prefix runs a second lab beside the first",
    )
    p.add_argument("--zones", dest="lab_zones", type=count, help="zones of the lab (default 1)")
    p.add_argument(
        "--hosts",
        dest="lab_hosts",
        type=count,
        help="hypervisor hosts of the lab (default 1), one agent process each",
    )
    p.add_argument("--routers", dest="lab_routers", type=count, help="routers per host (default 1)")
    executor_flag(p)
    listen_flags(p)
    storage_flags(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_stack(args, with_lab=True, demo=True)
