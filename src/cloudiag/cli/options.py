"""What several subcommands share: settings from flags and environment, storage flags."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cloudiag import datadir, logs
from cloudiag.settings import Settings

#: Flags that map one to one onto Settings fields.
_SETTING_FLAGS = (
    "host",
    "port",
    "data_dir",
    "database_url",
    "nats_url",
    "lab_prefix",
    "lab_zones",
    "lab_hosts",
    "lab_routers",
    "executor",
    "heartbeat_interval",
    "log_level",
    "diagnostics_timeout",
    "cloudstack_url",
)
#: Exit status of a command given a bad value (argparse's own).
BAD_USAGE = 2


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
        raise SystemExit(_invalid(exc, overrides)) from None


def _invalid(exc: ValidationError, flags: dict[str, Any]) -> int:
    """Print one line per bad setting, named as the operator gave it; the exit status."""
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        where = f"--{name.replace('_', '-')}" if name in flags else f"CLOUDIAG_{name.upper()}"
        # A URL may carry a password or a bus token: never echoed.
        value = "" if name.endswith("url") else f" {error['input']!r}"
        print(f"cloudiag: invalid {where}{value}: {error['msg']}", file=sys.stderr)
    return BAD_USAGE


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535; 0 picks a free one)")
    return value


def storage_flags(p: argparse.ArgumentParser) -> None:
    """Where the data lives: flags shared by serve, demo and user."""
    p.add_argument(
        "--data-dir",
        type=Path,
        help="data directory (env CLOUDIAG_DATA_DIR; default ~/.local/share/cloudiag)",
    )
    p.add_argument("--database-url", help="database URL (env CLOUDIAG_DATABASE_URL)")


def executor_flag(p: argparse.ArgumentParser) -> None:
    """How the agent reaches the lab's system VMs: shared by agent and demo."""
    p.add_argument(
        "--executor",
        choices=("netns", "ssh"),
        help="reach the lab's system VMs by entering their namespaces (netns, the default) "
        "or over SSH to their sshd on port 3922, as CloudStack does (env CLOUDIAG_EXECUTOR)",
    )


def listen_flags(p: argparse.ArgumentParser) -> None:
    """Where the API listens: flags shared by serve and demo."""
    p.add_argument("--host", help="listen address (default 127.0.0.1; env CLOUDIAG_HOST)")
    p.add_argument(
        "--port",
        type=port,
        help="listen port, 0 for any free one (default 8080; env CLOUDIAG_PORT)",
    )


def run_stack(args: argparse.Namespace, *, with_lab: bool, demo: bool) -> int:
    """Run the management server (and the lab, for the demo) until it is stopped."""
    # Imported here so that `cloudiag --help` and other commands start fast.
    from cloudiag.stack import run_stack as run

    settings = settings_from(args)
    os.umask(datadir.PRIVATE_UMASK)  # What SQLite and NATS create is private too.
    logs.setup(settings.log_level, settings.log_format)
    return asyncio.run(run(settings, with_lab=with_lab, demo=demo))
