"""`cloudiag host add|remove`: register a host's agent on the bus, or revoke it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cloudiag import datadir
from cloudiag.cli.options import executor_flag, settings_from, storage_flags

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from cloudiag.host_registry import BusUpdate
    from cloudiag.settings import Settings

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `host` subcommand."""
    p = subparsers.add_parser("host", help="register hosts' agents on the bus, or revoke them")
    sub = p.add_subparsers(dest="host_command", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add",
        help="register a host and write its agent's config file",
        description="Register a host: make its agent's nkey, write the agent's config file "
        "(cloudiag agent --config FILE; 0600, it holds the seed) and allow the agent on the "
        "bus, for its own host's subjects only. The private NATS of `serve` reloads at once; "
        "for an external NATS (CLOUDIAG_NATS_URL) the authorization file to install is "
        "written (see docs/nats-security.md).",
    )
    add.add_argument("name", help="the host's name")
    add.add_argument("--host-id", help="its id (default: a new uuid), e.g. the inventory's")
    add.add_argument(
        "--nats-url",
        # Not the setting of the same name: the agent's URL says nothing of which NATS
        # (private or external) this command writes the authorization for.
        dest="agent_nats_url",
        help="the NATS URL(s) the agent connects to, comma-separated (default: CLOUDIAG_NATS_URL)",
    )
    add.add_argument("--out", type=Path, help="the agent's config file (default NAME.toml)")
    add.add_argument(
        "--authorization",
        type=Path,
        metavar="FILE",
        help="external NATS: where to write its authorization (default in the data dir)",
    )
    add.add_argument("--inventory", type=Path, help="the agent's static inventory file")
    add.add_argument("--lab-prefix", help="the lab whose namespaces are the host's VMs")
    executor_flag(add)
    add.add_argument("--tls-ca", type=Path, help="CA of the NATS servers' certificates")
    add.add_argument("--tls-cert", type=Path, help="the agent's client certificate")
    add.add_argument("--tls-key", type=Path, help="the agent's client certificate's key")
    storage_flags(add)
    add.set_defaults(func=_add)
    remove = sub.add_parser(
        "remove",
        help="revoke a host's agent",
        description="Remove a host's registration: its agent is refused by the bus from now "
        "on (the private NATS reloads and drops its connection; an external NATS's "
        "authorization file is written again, to install).",
    )
    remove.add_argument("name", help="the host's name or id")
    remove.add_argument("--authorization", type=Path, metavar="FILE")
    storage_flags(remove)
    remove.set_defaults(func=_remove)


def _with_database(
    settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    from cloudiag.db.engine import create_engine, session_factory
    from cloudiag.db.migrate import upgrade

    async def run() -> T:
        await asyncio.to_thread(
            datadir.prepare, settings.data_dir, sqlite=not settings.database_url
        )
        engine = create_engine(settings.resolved_database_url())
        try:
            await upgrade(engine)
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    os.umask(datadir.PRIVATE_UMASK)
    return asyncio.run(run())


def _say_bus(update: BusUpdate) -> None:
    if not update.private:
        print(
            f"external NATS: install {update.authorization} as its authorization "
            "(include it in nats-server.conf) and reload it (nats-server --signal reload)"
        )
    elif update.reloaded:
        print("the private NATS reloaded its authorization")
    else:
        print("no private NATS runs: `cloudiag serve` reads the authorization when it starts")


def _add(args: argparse.Namespace) -> int:
    from cloudiag.domain import InvalidInput
    from cloudiag.host_registry import add_host

    settings = settings_from(args)
    out: Path = args.out or Path(f"{args.name}.toml")
    nats_url = args.agent_nats_url or settings.nats_url
    if not nats_url:
        print("cloudiag host add: give --nats-url (the agent's) or set CLOUDIAG_NATS_URL")
        return 2

    async def work(sessions: async_sessionmaker[AsyncSession]) -> BusUpdate:
        config, update = await add_host(
            sessions,
            settings,
            args.name,
            out,
            nats_url=nats_url,
            host_id=args.host_id,
            authorization=args.authorization,
            agent={
                # Files as absolute paths: the agent may start from another directory.
                name: value.resolve() if isinstance(value := getattr(args, name), Path) else value
                for name in ("inventory", "lab_prefix", "executor", "tls_ca", "tls_cert", "tls_key")
            },
        )
        print(f"host {config.host_name} id {config.host_id}: agent config in {out}")
        return update

    try:
        _say_bus(_with_database(settings, work))
    except (InvalidInput, ValueError, OSError) as exc:
        print(f"cloudiag host add: {exc}", file=sys.stderr)
        return 1
    return 0


def _remove(args: argparse.Namespace) -> int:
    from cloudiag.host_registry import remove_host

    settings = settings_from(args)

    async def work(
        sessions: async_sessionmaker[AsyncSession],
    ) -> tuple[str | None, BusUpdate | None]:
        return await remove_host(sessions, settings, args.name, args.authorization)

    host_id, update = _with_database(settings, work)
    if host_id is None or update is None:
        print(f"cloudiag host remove: no host {args.name!r} is registered", file=sys.stderr)
        return 1
    print(f"host {args.name} ({host_id}) revoked")
    _say_bus(update)
    return 0
