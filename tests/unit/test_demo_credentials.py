"""The demo's admin login after a password reset: the saved API keys stay while they sign."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag import datadir
from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.context import AppState
from cloudiag.bus.access import BusAccess
from cloudiag.server import Running, admin_credentials
from cloudiag.services import accounts
from cloudiag.settings import Settings
from cloudiag.stack import demo_credentials


async def _first_start(
    tmp_path: Path, db: async_sessionmaker[AsyncSession]
) -> tuple[Running, dict[str, str]]:
    box = SecretBox.generate()
    async with db.begin() as session:
        admin = await accounts.ensure_admin(session, box=box)
    assert admin is not None
    creds = admin_credentials(admin)
    datadir.save_credentials(tmp_path, creds)
    state: Any = AppState(Settings(), db, runner=None, nc=None, secrets=box)  # type: ignore[arg-type]
    return Running(Settings(data_dir=tmp_path), "", BusAccess(), state, None), creds  # type: ignore[arg-type]


async def test_a_password_changed_elsewhere_keeps_the_saved_keys(
    tmp_path: Path, db: async_sessionmaker[AsyncSession]
) -> None:
    run, creds = await _first_start(tmp_path, db)
    async with db.begin() as session:  # As `user reset-password admin --password-stdin` does.
        await accounts.reset_password(session, "admin", "an operator's own password")
    shown = await demo_credentials(run)
    assert (shown["apikey"], shown["secretkey"]) == (creds["apikey"], creds["secretkey"])
    assert "reset-password" in shown["password"]
    async with db() as session:
        user = await accounts.user_by_api_key(session, creds["apikey"])
        assert user is not None and user.username == "admin"
        assert await accounts.check_password(session, "admin", "an operator's own password")


async def test_saved_keys_that_no_longer_sign_are_replaced(
    tmp_path: Path, db: async_sessionmaker[AsyncSession]
) -> None:
    run, creds = await _first_start(tmp_path, db)
    datadir.save_credentials(tmp_path, {**creds, "password": "stale", "apikey": "gone"})
    shown = await demo_credentials(run)
    assert shown["apikey"] != "gone"
    assert datadir.saved_credentials(tmp_path) == shown
    async with db() as session:
        assert await accounts.check_password(session, "admin", shown["password"])
