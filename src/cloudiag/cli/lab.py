"""`cloudiag lab up|down|status|stop|start|script|rekey`: the lab zone from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cloudiag.lab import manager
from cloudiag.lab.layout import LabSize
from cloudiag.lab.models import LabStatus

_ACTIONS = (
    ("up", "build the lab zone (idempotent)"),
    ("down", "remove every namespace, process and state file of the lab"),
    ("status", "show the lab as it really is"),
    ("stop", "stop one VM of the lab (its namespace goes away)"),
    ("start", "start a stopped VM of the lab again"),
    ("script", "switch a system VM's CloudStack-style diagnostics.py to a form (--ssh labs)"),
    (
        "rekey",
        "give a system VM a new host key, as a rebuilt VM has (--ssh labs; the lab's "
        "known_hosts keeps the old one until the next `lab up`)",
    ),
    ("inventory", "print one host's inventory, as its agent reads it (JSON)"),
)


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def size_flags(p: argparse.ArgumentParser) -> None:
    """--zones, --hosts, --routers: the size of the lab (default: one of each)."""
    p.add_argument("--zones", type=count, help="zones (default 1): an SSVM and a CPVM each")
    p.add_argument(
        "--hosts",
        type=count,
        help="hypervisor hosts (default 1), spread over the zones, each its own namespace "
        "with its own cloud0 (169.254.0.1) and, in the demo, its own agent",
    )
    p.add_argument("--routers", type=count, help="virtual routers per host (default 1)")


def lab_size(args: argparse.Namespace) -> LabSize | None:
    """The size the flags ask for; None when none is given (the lab keeps its own)."""
    given = {k: getattr(args, k, None) for k in ("zones", "hosts", "routers")}
    if all(v is None for v in given.values()):
        return None
    return LabSize(**{k: v for k, v in given.items() if v is not None})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `lab` subcommand and its actions."""
    p = subparsers.add_parser(
        "lab",
        help="the lab zone in network namespaces (needs root)",
        description="A miniature zone in network namespaces: a virtual router, a secondary "
        "storage VM, a console proxy VM, a user VM, an upstream router and an 'internet' "
        "with a web and a DNS server. Documentation and link-local addresses only: no "
        "packet leaves the machine.",
    )
    sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    prefix = manager.default_prefix()
    for name, help_text in _ACTIONS:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "--prefix",
            default=prefix,
            help=f"namespace prefix (env CLOUDIAG_LAB_PREFIX; default {prefix})",
        )
        cmd.add_argument("--json", action="store_true", help="print the lab's status as JSON")
        cmd.add_argument(
            "--state-dir",
            type=Path,
            help="state directory of this lab (default /run/cloudiag-lab/PREFIX, "
            "env CLOUDIAG_LAB_STATE_DIR)",
        )
        if name in ("stop", "start", "script", "rekey"):
            cmd.add_argument("vm", help="the VM's name or role, e.g. v-3-VM or consoleproxy")
        if name == "up":
            cmd.add_argument(
                "--ssh",
                action="store_true",
                help="also run an OpenSSH server in each system VM on its control address, "
                "port 3922, reached from the lab's hypervisor namespace (PREFIX-host)",
            )
            size_flags(cmd)
        if name == "inventory":
            cmd.add_argument("--host", type=count, default=1, help="which host (default 1)")
            cmd.add_argument(
                "--executor",
                choices=("netns", "ssh"),
                default="netns",
                help="how the agent reaches the system VMs (default netns)",
            )
        if name == "script":
            cmd.add_argument(
                "form",
                choices=("python3", "python2"),
                help="python3: b'…' reprs, as CloudStack's script prints under Python 3; "
                "python2: raw text (a real python2.7 when the machine has one)",
            )
        cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one `lab` action; 0 on success, 1 with a message on stderr."""
    action: str = args.lab_command
    state_dir: Path | None = args.state_dir
    if action == "inventory":
        return _inventory(args)
    try:
        if action == "up":
            lab = manager.up(args.prefix, state_dir, ssh=args.ssh, size=lab_size(args))
        elif action == "down":
            manager.down(args.prefix, state_dir)
            lab = manager.status(args.prefix, state_dir)
        elif action == "stop":
            manager.stop_vm(args.prefix, args.vm, state_dir)
            lab = manager.status(args.prefix, state_dir)
        elif action == "start":
            manager.start_vm(args.prefix, args.vm, state_dir)
            lab = manager.status(args.prefix, state_dir)
        elif action == "script":
            manager.set_script(args.prefix, args.vm, args.form, state_dir)
            lab = manager.status(args.prefix, state_dir)
        elif action == "rekey":
            manager.rekey(args.prefix, args.vm, state_dir)
            lab = manager.status(args.prefix, state_dir)
        else:
            lab = manager.status(args.prefix, state_dir)
    except manager.LabError as exc:
        print(f"cloudiag: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(lab.to_dict(), indent=2))
    elif action == "down":
        print(f"lab {lab.prefix} is down")
    else:
        print_status(lab)
    if action == "up":
        # Degraded but usable (no DNS server): say so where a script's log will show it.
        for warning in lab.warnings:
            print(f"cloudiag lab: warning: {warning}", file=sys.stderr)
    return 0


def _inventory(args: argparse.Namespace) -> int:
    from cloudiag.lab.inventory import inventory

    try:
        data = inventory(args.prefix, args.executor, args.state_dir, host=args.host)
    except ValueError as exc:
        print(f"cloudiag: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2))
    return 0


def _rows(lab: LabStatus) -> list[tuple[str, str, str, str]]:
    rows = []
    for ns in lab.namespaces:
        if ns.role == "switch":
            bridges = ", ".join(i.name for i in ns.interfaces)
            rows.append((ns.namespace, ns.role, "running" if ns.running else "stopped", bridges))
            continue
        nics = ", ".join(
            " ".join(
                [
                    i.name,
                    i.network or "?",
                    *([f"{i.address}/{i.prefixlen}"] if i.address else []),
                    *([i.address6] if i.address6 else []),
                ]
            )
            for i in ns.interfaces
        )
        if ns.service is not None:
            svc = ns.service
            state = f"pid {svc.pid}" if svc.running else "NOT RUNNING"
            nics = "; ".join(x for x in (nics, f"{svc.name} {svc.listen} {state}") if x)
        if ns.ssh is not None:
            state = f"pid {ns.ssh.pid}" if ns.ssh.running else "NOT RUNNING"
            nics = f"{nics}; sshd {ns.ssh.listen} {state}"
        if ns.script is not None:
            emulated = ", emulated by Python 3" if ns.script.emulated else ""
            nics = f"{nics}; {ns.script.path} {ns.script.form}{emulated}"
        rows.append((ns.namespace, ns.role, "running" if ns.running else "stopped", nics))
    return rows


def print_status(lab: LabStatus) -> None:
    """A readable table of the lab (rich when available, plain text otherwise)."""
    title = f"lab {lab.prefix}: {'up' if lab.up else 'down'} (zone {lab.zone.uuid})"
    if len(lab.hosts) > 1 or len(lab.zones) > 1:
        title += (
            f"; {len(lab.zones)} zones, {len(lab.hosts)} hosts, {len(lab.system_vms())} system VMs"
        )
    targets = "targets: " + "  ".join(f"{k}={v}" for k, v in lab.targets.items())
    if lab.ssh is not None:
        targets += (
            f"\nssh: from namespace {lab.ssh.hypervisor} ({lab.ssh.address}) as "
            f"{lab.ssh.user}, port {lab.ssh.port}, key {lab.ssh.key_file}, known hosts "
            f"{lab.ssh.known_hosts}; CloudStack's script: {lab.ssh.cloudstack_script_vm}"
        )
    header = ("namespace", "role", "state", "interfaces")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(r[i]) for r in [header, *_rows(lab)]) for i in range(3)]
        for row in [header, *_rows(lab)]:
            cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
            print("  ".join([*cells, row[3]]))
        print(targets)
        for w in lab.warnings:
            print(f"warning: {w}")
        return
    table = Table(title=title, title_justify="left")
    for col in header:
        table.add_column(col)
    for row in _rows(lab):
        table.add_row(*row)
    # No emoji codes: "2001:db8:0:100::10" holds ":100:", which rich would draw as one.
    console = Console(emoji=False)
    console.print(table)
    console.print(targets, highlight=False)
    for w in lab.warnings:
        console.print(f"[yellow]warning:[/] {w}")
