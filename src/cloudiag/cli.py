"""The `cloudiag` command and its subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cloudiag import __version__
from cloudiag.settings import Settings

#: Flags that map one to one onto Settings fields.
_SETTING_FLAGS = (
    "host",
    "port",
    "data_dir",
    "database_url",
    "nats_url",
    "lab_prefix",
    "heartbeat_interval",
    "log_level",
    "diagnostics_timeout",
)


def settings_from(args: argparse.Namespace) -> Settings:
    """CLOUDIAG_* environment variables, overridden by the flags given; exits on bad values."""
    overrides: dict[str, Any] = {}
    for name in _SETTING_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"cloudiag: invalid setting: {exc}") from None


def storage_flags(p: argparse.ArgumentParser) -> None:
    """Where the data lives: flags shared by serve, demo and user."""
    p.add_argument("--data-dir", type=Path, help="data directory (env CLOUDIAG_DATA_DIR)")
    p.add_argument("--database-url", help="database URL (env CLOUDIAG_DATABASE_URL)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from cloudiag import agent_command, demo, serve_command, user_command
    from cloudiag.lab import command as lab_command

    parser = argparse.ArgumentParser(
        prog="cloudiag",
        description="Network diagnostics inside cloud system VMs, behind a "
        "CloudStack-compatible API (runDiagnostics).",
    )
    parser.add_argument("--version", action="version", version=f"cloudiag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.register(sub)
    serve_command.register(sub)
    agent_command.register(sub)
    lab_command.register(sub)
    user_command.register(sub)
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
