"""The `cloudiag` command: its parser and entry point; each subcommand is a module of this
package, and what they share is in options.py."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cloudiag import __version__
from cloudiag.cli import agent, demo, host, lab, serve, status, user


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cloudiag",
        description="Network diagnostics inside cloud system VMs, behind a "
        "CloudStack-compatible API (runDiagnostics).",
    )
    parser.add_argument("--version", action="version", version=f"cloudiag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (demo, serve, agent, host, lab, user, status):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cloudiag` console command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        result: int = func(args)
    except KeyboardInterrupt:
        return 130
    return result
