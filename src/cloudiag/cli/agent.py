"""`cloudiag agent`: run the agent of this host."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cloudiag import logs
from cloudiag.bus.access import BusAccess
from cloudiag.cli.lab import count
from cloudiag.cli.options import executor_flag, settings_from
from cloudiag.settings import Settings

if TYPE_CHECKING:
    from cloudiag.agent.config_file import AgentConfig
    from cloudiag.agent.sources.cloudstack import CloudStackConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `agent` subcommand."""
    p = subparsers.add_parser(
        "agent",
        help="run the agent of this host (reports its system VMs, runs diagnostics)",
        description="Connect to NATS, register this host and its system VMs, send heartbeats "
        "and run diagnostics the management servers ask for. Inventory: the lab's namespaces, "
        "a static inventory file (--inventory), or a CloudStack management server's API "
        "(--cloudstack-url, with CLOUDIAG_CLOUDSTACK_API_KEY and CLOUDIAG_CLOUDSTACK_SECRET_KEY "
        "in the environment): the system VMs CloudStack runs on this host (--host-id: its "
        "CloudStack uuid, or --host-name / the hostname: its CloudStack name), over SSH.",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the agent's config file that `cloudiag host add` wrote (its bus, credentials, "
        "host id…); flags and CLOUDIAG_* variables win over it",
    )
    p.add_argument(
        "--nats-url",
        help="NATS server URL (env CLOUDIAG_NATS_URL, better for a URL with credentials)",
    )
    p.add_argument("--lab-prefix", help="the lab whose namespaces are this host's VMs")
    p.add_argument(
        "--lab-host",
        type=count,
        default=1,
        metavar="N",
        help="which host of a lab of several this agent is (default 1)",
    )
    executor_flag(p)
    p.add_argument(
        "--inventory",
        type=Path,
        metavar="FILE",
        help="a static inventory of the zone, host and VMs (JSON, or TOML if FILE ends in "
        ".toml) instead of the lab",
    )
    p.add_argument(
        "--cloudstack-url",
        metavar="URL",
        help="the CloudStack management server whose API lists this host's system VMs, "
        "e.g. https://cloudstack.example:8443 (env CLOUDIAG_CLOUDSTACK_URL)",
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


#: Settings the config file may give, when neither a flag nor the environment does.
_FROM_FILE = ("nats_url", "lab_prefix", "executor", "heartbeat_interval", "data_dir")


def _apply_file(args: argparse.Namespace, config: AgentConfig) -> None:
    """Fill the flags not given from the config file, unless the environment sets them."""
    for name in (*_FROM_FILE, "inventory", "host_id", "host_name"):
        value = getattr(config, name, None)
        unset = getattr(args, name, None) is None and f"CLOUDIAG_{name.upper()}" not in os.environ
        if value is not None and unset:
            setattr(args, name, value)


def _access(settings: Settings, config: AgentConfig | None) -> BusAccess:
    """The agent's credentials and TLS: the environment's, else the config file's."""
    access = settings.bus_access()
    if config is None:
        return access
    return BusAccess(
        nkey_seed_file=access.nkey_seed_file,
        nkey_seed=None if access.nkey_seed_file else config.nkey_seed,
        tls_ca=access.tls_ca or config.tls_ca,
        tls_cert=access.tls_cert or config.tls_cert,
        tls_key=access.tls_key or config.tls_key,
    )


def _run(args: argparse.Namespace) -> int:
    from cloudiag.agent import config_file, wiring
    from cloudiag.agent.sources.cloudstack import CloudStackError
    from cloudiag.agent.sources.inventory import InventoryError
    from cloudiag.bus.streams import JetStreamUnavailable
    from cloudiag.lab.inventory import inventory as lab_inventory

    config = None
    if args.config is not None:
        try:
            config = config_file.load(args.config)
        except config_file.ConfigFileError as exc:
            print(f"cloudiag agent: {exc}", file=sys.stderr)
            return 2
        _apply_file(args, config)
    settings = settings_from(args)
    if not settings.nats_url:
        print("cloudiag agent: give --nats-url or set CLOUDIAG_NATS_URL")
        return 2
    logs.setup(settings.log_level, settings.log_format)
    try:
        cloudstack = _cloudstack(args, settings)
        prefix = args.lab_prefix or settings.lab_prefix
        given = args.inventory or cloudstack
        lab = None if given else lab_inventory(prefix, settings.executor, host=args.lab_host)
        agent = wiring.build(
            wiring.AgentOptions(
                settings.nats_url,
                inventory_file=args.inventory,
                lab_inventory=lab,
                host_id=args.host_id,
                host_name=args.host_name,
                heartbeat_interval=settings.heartbeat_interval,
                state_dir=settings.data_dir,
                cloudstack=cloudstack,
                access=_access(settings, config),
            )
        )
    except (InventoryError, CloudStackError, ValueError) as exc:  # ValueError: a bad prefix.
        print(f"cloudiag agent: {exc}", file=sys.stderr)
        return 2
    try:
        wiring.run(agent)
    except JetStreamUnavailable as exc:
        print(f"cloudiag agent: {exc}", file=sys.stderr)
        return 1
    return 0


def _cloudstack(args: argparse.Namespace, settings: Settings) -> CloudStackConfig | None:
    """The CloudStack source the flags and environment ask for, or None; ValueError when
    half of it is given."""
    from cloudiag.agent.sources.cloudstack import CloudStackConfig

    url = settings.cloudstack_url
    if not url:
        return None
    if args.inventory:
        raise ValueError("give --inventory or --cloudstack-url, not both")
    secret = settings.cloudstack_secret_key
    if not settings.cloudstack_api_key or secret is None:
        raise ValueError(
            "--cloudstack-url needs CLOUDIAG_CLOUDSTACK_API_KEY and "
            "CLOUDIAG_CLOUDSTACK_SECRET_KEY in the environment"
        )
    config = CloudStackConfig(
        url=url,
        api_key=settings.cloudstack_api_key,
        secret_key=secret.get_secret_value(),
        host=args.host_id or args.host_name or socket.gethostname(),
    )
    if settings.cloudstack_key_file:
        config = dataclasses.replace(config, key_file=settings.cloudstack_key_file)
    if settings.cloudstack_ca_file:
        config = dataclasses.replace(config, ca_file=settings.cloudstack_ca_file)
    if settings.cloudstack_netns:
        config = dataclasses.replace(config, netns=settings.cloudstack_netns)
    return config
