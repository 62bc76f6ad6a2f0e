"""`cloudiag lab up|down|status|stop|start`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from rich.console import Console
from rich.table import Table

from cloudiag.lab import manager


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `lab` subcommand."""
    p = subparsers.add_parser(
        "lab",
        help="the lab zone in network namespaces (needs root)",
        description="A miniature zone in network namespaces: a virtual router, a secondary "
        "storage VM, a console proxy VM, a user VM, an upstream router and an 'internet' "
        "with a web and a DNS server. Documentation and link-local addresses only.",
    )
    sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    prefix_default = os.environ.get("CLOUDIAG_LAB_PREFIX", manager.DEFAULT_PREFIX)
    for name, help_text in (
        ("up", "build the lab (idempotent)"),
        ("down", "remove every namespace and process of the lab"),
        ("status", "show the lab as it is"),
        ("stop", "stop one VM of the lab (its namespace goes away)"),
        ("start", "start a stopped VM of the lab again"),
    ):
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--prefix", default=prefix_default, help="namespace prefix (cdlab)")
        cmd.add_argument("--json", action="store_true", help="print the status as JSON")
        if name in ("stop", "start"):
            cmd.add_argument("vm", help="the VM name, e.g. v-3-VM")
        cmd.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.lab_command == "up":
            status = manager.up(args.prefix)
        elif args.lab_command == "down":
            manager.down(args.prefix)
            status = manager.status(args.prefix)
        elif args.lab_command == "stop":
            manager.stop_vm(args.prefix, args.vm)
            status = manager.status(args.prefix)
        elif args.lab_command == "start":
            manager.start_vm(args.prefix, args.vm)
            status = manager.status(args.prefix)
        else:
            status = manager.status(args.prefix)
    except KeyError as exc:
        print(f"cloudiag lab: no VM {exc} in the lab", file=sys.stderr)
        return 1
    except manager.LabError as exc:
        print(f"cloudiag lab {args.lab_command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
    else:
        _print(status)
    return 0


def _print(status: manager.LabStatus) -> None:
    console = Console()
    state = "[green]up[/]" if status.up else "[red]down[/]"
    table = Table(title=f"lab {status.prefix}: {state}", title_justify="left")
    for col in ("namespace", "role", "state", "interfaces"):
        table.add_column(col)
    for ns in status.namespaces:
        ifaces = ", ".join(
            f"{i['name']} {i['address']}/{i['prefixlen']}" if i["address"] else f"{i['name']}"
            for i in ns.get("interfaces", [])
        ) or ", ".join(ns.get("bridges", []))
        table.add_row(ns["namespace"], ns["role"], "running" if ns["running"] else "absent", ifaces)
    console.print(table)
    targets = "  ".join(f"{k}={v}" for k, v in status.targets.items())
    console.print(f"targets: {targets}")
