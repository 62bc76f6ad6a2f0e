"""`cloudiag serve`: the management server."""

from __future__ import annotations

import argparse

from cloudiag.cli.options import listen_flags, run_stack, storage_flags


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `serve` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="run the management server (API on /client/api)",
        description="Run the management server: migrations, private NATS unless "
        "CLOUDIAG_NATS_URL is set, the job runner and the CloudStack-compatible API.",
    )
    p.add_argument("--nats-url", help="external NATS (env CLOUDIAG_NATS_URL); default: private")
    p.add_argument("--lab", action="store_true", help="also bring the lab up and run its agent")
    p.add_argument(
        "--lab-prefix",
        help="namespace prefix of the lab (env CLOUDIAG_LAB_PREFIX; default cdlab): another "
        "prefix runs a second lab beside the first",
    )
    p.add_argument("--diagnostics-timeout", type=float, help="time limit of every diagnostic, s")
    listen_flags(p)
    storage_flags(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_stack(args, with_lab=args.lab, demo=False)
