"""`cloudiag user create|reset-password`: accounts with API keys, and the way back in."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TextIO, TypeVar

from cloudiag import datadir
from cloudiag.cli.options import settings_from, storage_flags
from cloudiag.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from cloudiag.accounts.secret_box import SecretBox

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `user` subcommand."""
    p = subparsers.add_parser("user", help="manage users")
    sub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    create = sub.add_parser(
        "create",
        help="create a user and print its password and API keys",
        description="Create a user. Prints username, password (generated unless given), "
        "apikey and secretkey; this is the only time they are shown. To choose the "
        "password, give it on standard input: cloudiag user create NAME --password-stdin "
        "< file (--password would show it in the process list).",
    )
    create.add_argument("name")
    create.add_argument("--role", default="user", help="admin, domainadmin or user")
    given = create.add_mutually_exclusive_group()
    given.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (one line), e.g. from a secrets file",
    )
    given.add_argument(
        "--password",
        help="the password (default: a generated one); other users can see it in `ps`, "
        "prefer --password-stdin",
    )
    create.add_argument("--json", action="store_true", help="print JSON")
    storage_flags(create)
    create.set_defaults(func=_create)
    reset = sub.add_parser(
        "reset-password",
        help="give a user a new password and print it",
        description="Give a user a new password: generated and printed, or read from "
        "standard input with --password-stdin. Ends the user's login sessions; its API keys "
        "stay. The way back in when the admin password is lost.",
    )
    reset.add_argument("name")
    reset.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the new password from standard input (one line)",
    )
    storage_flags(reset)
    reset.set_defaults(func=_reset_password)


def _password_from(stream: TextIO) -> str:
    """The first line of `stream` without its line end (a password may hold spaces)."""
    return stream.readline().removesuffix("\n").removesuffix("\r")


def _in_transaction(
    settings: Settings, work: Callable[[AsyncSession, SecretBox], Awaitable[T]]
) -> T:
    """Run `work` in one transaction on the configured database, migrated first, with the
    box of the secrets key; ValueError when that key does not open the database's secrets."""
    from cloudiag.accounts import secret_box
    from cloudiag.db.engine import create_engine, session_factory
    from cloudiag.db.migrate import upgrade
    from cloudiag.services import accounts

    async def run() -> T:
        sqlite = not settings.database_url
        await asyncio.to_thread(datadir.prepare, settings.data_dir, sqlite=sqlite)
        box = await asyncio.to_thread(
            secret_box.load_or_create, settings.resolved_secrets_key_file()
        )
        engine = create_engine(settings.resolved_database_url())
        try:
            await upgrade(engine)
            async with session_factory(engine).begin() as db:
                await accounts.seal_clear_secrets(db, box)
                return await work(db, box)
        except secret_box.SecretBoxError as exc:
            key_file = settings.resolved_secrets_key_file()
            raise ValueError(f"{exc} ({key_file}); set CLOUDIAG_SECRETS_KEY_FILE") from None
        finally:
            await engine.dispose()

    os.umask(datadir.PRIVATE_UMASK)
    return asyncio.run(run())


def _create(args: argparse.Namespace) -> int:
    from cloudiag.services import accounts

    settings = settings_from(args)
    password: str | None = args.password
    if args.password_stdin:
        password = _password_from(sys.stdin)
        if not password:
            print("cloudiag user create: no password on standard input", file=sys.stderr)
            return 1
    elif password is not None:
        print(
            "cloudiag user create: warning: --password shows the password to other users "
            "of this machine (ps); use --password-stdin",
            file=sys.stderr,
        )

    async def create(db: AsyncSession, box: SecretBox) -> accounts.NewUser:
        return await accounts.create_user(db, args.name, args.role, password, box=box)

    try:
        user = _in_transaction(settings, create)
    except ValueError as exc:
        print(f"cloudiag user create: {exc}", file=sys.stderr)
        return 1
    fields = {
        "username": user.username,
        "role": user.role,
        "password": user.password,
        "apikey": user.apikey,
        "secretkey": user.secretkey,
        "id": user.id,
    }
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        for key, value in fields.items():
            print(f"{key:10} {value}")
    return 0


def _reset_password(args: argparse.Namespace) -> int:
    from cloudiag.services import accounts

    settings = settings_from(args)
    password: str | None = None
    if args.password_stdin:
        password = _password_from(sys.stdin)
        if not password:
            print("cloudiag user reset-password: no password on standard input", file=sys.stderr)
            return 1

    async def reset(db: AsyncSession, _box: SecretBox) -> str:
        return await accounts.reset_password(db, args.name, password)

    try:
        new = _in_transaction(settings, reset)
    except ValueError as exc:
        print(f"cloudiag user reset-password: {exc}", file=sys.stderr)
        return 1
    print(f"username   {args.name}")
    if not args.password_stdin:
        print(f"password   {new}")
    return 0
