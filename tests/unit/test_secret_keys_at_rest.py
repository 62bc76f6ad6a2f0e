"""API secret keys are sealed in the database, under a key file kept apart from it."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from cloudiag.accounts.secret_box import SecretBox, SecretBoxError, is_sealed, load_or_create
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from cloudiag.db.models import User
from cloudiag.services import accounts


def test_a_sealed_secret_opens_with_its_key_and_api_key_only() -> None:
    box = SecretBox.generate()
    sealed = box.seal("the-secret", bound_to="api-1")
    assert is_sealed(sealed) and "the-secret" not in sealed
    assert box.open(sealed, bound_to="api-1") == "the-secret"
    with pytest.raises(SecretBoxError):
        box.open(sealed, bound_to="api-2")  # copied onto another account's row
    with pytest.raises(SecretBoxError):
        SecretBox.generate().open(sealed, bound_to="api-1")


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secrets.key"
    sealed = load_or_create(path).seal("s", bound_to="a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path).open(sealed, bound_to="a") == "s"


def test_user_create_stores_no_clear_secret_key(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cloudiag", "user", "create", "alice", "--json",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    secret = json.loads(out.stdout)["secretkey"]

    async def stored() -> tuple[str, str]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cloudiag.db'}")
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(text("SELECT api_key, secret_key FROM users"))).one()
                return row[0], row[1]
        finally:
            await engine.dispose()

    api_key, column = asyncio.run(stored())
    assert secret not in column
    for stored_file in tmp_path.glob("cloudiag.db*"):  # the WAL holds recent pages
        assert secret.encode() not in stored_file.read_bytes(), stored_file.name
    assert load_or_create(tmp_path / "secrets.key").open(column, bound_to=api_key) == secret


async def test_clear_secrets_of_an_older_version_are_sealed_and_still_sign(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(engine)
        db = session_factory(engine)
        async with db.begin() as s:
            s.add(
                User(
                    username="old", role="User", password_hash="x", api_key="k",
                    secret_key="clear-secret", domain_id=accounts.ROOT_DOMAIN_ID,
                )
            )  # fmt: skip
        box = SecretBox.generate()
        async with db.begin() as s:
            assert await accounts.seal_clear_secrets(s, box) == 1
        async with db() as s:
            user = (await s.execute(select(User))).scalar_one()
            assert is_sealed(user.secret_key)
            assert accounts.signing_secret(user, box) == "clear-secret"
            assert accounts.signing_secret(user, SecretBox.generate()) is None
        async with db.begin() as s:
            assert await accounts.seal_clear_secrets(s, box) == 0
            with pytest.raises(SecretBoxError):  # another key file than the database's
                await accounts.seal_clear_secrets(s, SecretBox.generate())
    finally:
        await engine.dispose()
