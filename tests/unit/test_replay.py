"""Replay protection: the rules on expires, the once-only memory, and the API app applying
them (in process, httpx's ASGI transport, SQLite; the memory also on PostgreSQL)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.app import create_app
from cloudiag.api.commands import run_diagnostics
from cloudiag.api.context import AppState
from cloudiag.api.registry import REGISTRY
from cloudiag.api.signing import (
    check_expiry,
    parse_expires,
    signature_digest,
    valid_until,
    verify_signature,
)
from cloudiag.client import ApiKey, signature
from cloudiag.db.engine import locked_transaction
from cloudiag.db.models import UsedSignature, utcnow
from cloudiag.services import accounts, housekeeping, used_signatures
from cloudiag.settings import Settings
from tests.databases import migrated

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: A VM id nobody has: runDiagnostics passes its parameter checks and its handler refuses.
NO_VM = "7d4c5c5e-3c5b-4a48-9a8a-7f1f7e0f2a11"


def _v3(expires: str) -> list[tuple[str, str]]:
    return [("command", "runDiagnostics"), ("signatureVersion", "3"), ("expires", expires)]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    "expires", ["9999-12-31T23:59:59Z", "9999-12-31T00:00:00+0000", "2026-12-01T13:00:01Z"]
)
def test_expires_beyond_the_max_lifetime_is_refused(expires: str) -> None:
    message = check_expiry(_v3(expires), NOW, max_lifetime=HOUR)
    assert message is not None
    assert "too far in the future" in message and "3600 seconds" in message


def test_expires_within_the_max_lifetime_passes() -> None:
    assert check_expiry(_v3("2026-12-01T13:00:00Z"), NOW, max_lifetime=HOUR) is None


def test_require_expires_refuses_a_request_without_signature_version() -> None:
    bare = [("command", "listZones")]
    assert check_expiry(bare, NOW) is None
    message = check_expiry(bare, NOW, require=True)
    assert message is not None and "requires signatureVersion=3" in message
    # expires alone does not count: without signatureVersion CloudStack ignores it.
    assert check_expiry([*bare, ("expires", _iso(NOW + HOUR))], NOW, require=True)
    assert check_expiry(_v3(_iso(NOW + HOUR)), NOW, require=True) is None


def test_a_request_is_valid_until_its_earliest_enforced_expires() -> None:
    assert valid_until([("command", "runDiagnostics")]) is None
    # No signatureVersion: expires is not checked, so the signature is valid for good.
    assert valid_until([("expires", _iso(NOW))]) is None
    early, late = NOW + timedelta(minutes=5), NOW + HOUR
    params = [("signatureversion", "3"), ("expires", _iso(late)), ("Expires", _iso(early))]
    assert valid_until(params) == early


def test_the_digest_is_of_the_hmac_bytes() -> None:
    sig = signature({"command": "runDiagnostics", "params": "-w 5"}, "secret")
    raw = base64.b64decode(sig)
    assert len(raw) == 20  # HMAC-SHA1
    # The spelling a form decoder leaves of a "+" is the same use of the signature.
    spaced = sig.replace("+", " ")
    assert signature_digest(spaced) == signature_digest(sig)
    other = signature({"command": "runDiagnostics", "params": "-w 6"}, "secret")
    assert signature_digest(other) != signature_digest(sig)


def test_a_case_changed_value_signs_the_same() -> None:
    """Why a case-changed copy is a replay: the canonical string is lower-cased."""
    params = [("command", "runDiagnostics"), ("params", "-w 5"), ("apiKey", "k")]
    sig = signature(dict(params), "secret")
    changed = [("command", "runDiagnostics"), ("params", "-W 5"), ("apiKey", "k")]
    assert verify_signature(changed, sig, "secret")


def test_the_settings_default_to_one_hour_and_no_requirement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert (settings.signature_max_lifetime, settings.require_expires) == (3600, False)
    monkeypatch.setenv("CLOUDIAG_SIGNATURE_MAX_LIFETIME", "600")
    monkeypatch.setenv("CLOUDIAG_REQUIRE_EXPIRES", "true")
    settings = Settings()
    assert (settings.signature_max_lifetime, settings.require_expires) == (600, True)


def test_exactly_the_commands_that_change_something_are_once_only() -> None:
    once = {c.name for c in REGISTRY.commands.values() if c.changes_state}
    assert once == {"runDiagnostics", "cancelDiagnostics", "getDiagnosticsData"}
    # Every other command reads (a new one that does not is caught here) or is the
    # session's own (a signed logout has no session to end).
    others = {c.name for c in REGISTRY.commands.values() if not c.changes_state}
    assert all(n.startswith(("list", "query")) or n in {"login", "logout"} for n in others)


def test_the_client_signs_each_call_with_its_own_expires() -> None:
    key = ApiKey("k", "secret")
    first, second = (key.sign({"command": "runDiagnostics"}) for _ in range(2))
    assert first["signatureVersion"] == second["signatureVersion"] == "3"
    assert first["expires"] != second["expires"]
    assert first["signature"] != second["signature"]
    expires = parse_expires(first["expires"])
    assert expires is not None
    assert check_expiry(list(first.items()), utcnow(), max_lifetime=HOUR) is None
    assert timedelta(minutes=4) < expires - utcnow() <= timedelta(minutes=5)


# ------------------------------------------------------------------------ the memory


@pytest.fixture(params=["sqlite", "postgresql"])
async def memory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of each backend (PostgreSQL: a fresh one, dropped after)."""
    async with migrated(request.param, tmp_path) as factory:
        yield factory


async def test_a_signature_is_used_once(memory: async_sessionmaker[AsyncSession]) -> None:
    assert await used_signatures.use(memory, "a" * 64, NOW)
    assert not await used_signatures.use(memory, "a" * 64, NOW)
    assert await used_signatures.use(memory, "b" * 64, None)


async def test_of_concurrent_uses_exactly_one_wins(
    memory: async_sessionmaker[AsyncSession],
) -> None:
    wins = await asyncio.gather(*(used_signatures.use(memory, "c" * 64, None) for _ in range(20)))
    assert sorted(wins) == [False] * 19 + [True]


async def test_housekeeping_forgets_expired_signatures_only(
    memory: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    margin = used_signatures.CLOCK_MARGIN
    rows = {
        "old": now - margin - timedelta(seconds=1),  # Expired beyond any clock difference.
        "recent": now - margin + timedelta(seconds=30),  # Another clock may still take it.
        "valid": now + HOUR,
        "forever": None,  # No expires: valid for good, remembered for good.
    }
    for name, expires in rows.items():
        assert await used_signatures.use(memory, name.ljust(64, "0"), expires)
    await housekeeping.purge_used_signatures(memory)
    async with memory() as db:
        left = set((await db.execute(select(UsedSignature.digest))).scalars())
    assert left == {name.ljust(64, "0") for name in ("recent", "valid", "forever")}


# --------------------------------------------------------------------------- the app


@dataclass
class Api:
    """The app in process and an admin's and a user's keys."""

    http: httpx.AsyncClient
    admin: accounts.NewUser
    user: accounts.NewUser

    def signed(self, who: accounts.NewUser, **params: str) -> dict[str, str]:
        query = {"response": "json", "apiKey": who.apikey, **params}
        return {**query, "signature": signature(query, who.secretkey)}

    async def get(self, query: dict[str, str]) -> httpx.Response:
        return await self.http.get("/client/api", params=query)


async def _api(db: async_sessionmaker[AsyncSession], settings: Settings) -> AsyncIterator[Api]:
    box = SecretBox.generate()
    async with db.begin() as session:
        admin = await accounts.create_user(session, "admin", "admin", box=box)
        user = await accounts.create_user(session, "plain", "user", box=box)
    # No runner, no bus: the calls below are refused before a job would start.
    state = AppState(settings, db=db, runner=None, nc=None, secrets=box)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield Api(http, admin, user)


@pytest.fixture
async def api(db: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    async for one in _api(db, Settings()):
        yield one


def _run(**extra: str) -> dict[str, str]:
    return {"command": "runDiagnostics", "targetid": NO_VM, "type": "ping", **extra}


def _text(r: httpx.Response) -> str:
    return str(r.json()["rundiagnosticsresponse"]["errortext"])


@dataclass
class Starts:
    """The runs the API asked for (runDiagnostics's service, faked: this is the API's test)."""

    count: int = 0


@pytest.fixture
def acting(monkeypatch: pytest.MonkeyPatch) -> Starts:
    """runDiagnostics's handler acts (it starts a job) rather than refuse the unknown VM:
    a signature it was spent on stays spent. As the real service, it spends the signature
    in the transaction of what it does."""
    starts = Starts()

    async def start_diagnostics(
        sessions: async_sessionmaker[AsyncSession],
        *args: object,
        signature: used_signatures.Use | None = None,
        **kwargs: object,
    ) -> object:
        async with locked_transaction(sessions) as db:
            if signature is not None:
                await used_signatures.use_within(db, signature)
            starts.count += 1
        return type("Created", (), {"job_id": f"job-{starts.count}"})()

    monkeypatch.setattr(run_diagnostics, "start_diagnostics", start_diagnostics)
    return starts


async def test_a_once_only_signature_reaches_the_handler_once(api: Api, acting: Starts) -> None:
    query = api.signed(api.admin, **_run(ipaddress="198.51.100.10", params="-w 5"))
    first = await api.get(query)
    assert first.status_code == 200, first.text
    again = await api.get(query)
    assert again.status_code == 401
    assert "already used" in _text(again) and "sign it again" in _text(again)
    # CloudStack lower-cases the canonical string: the case-changed copy is the same use.
    changed = await api.get({**query, "params": "-W 5"})
    assert changed.status_code == 401 and "already used" in _text(changed)
    # A fresh signature of the same call is a new use.
    fresh = api.signed(
        api.admin,
        **_run(ipaddress="198.51.100.10", params="-w 5"),
        signatureVersion="3",
        expires=_iso(utcnow() + timedelta(minutes=5)),
    )
    assert (await api.get(fresh)).status_code == 200
    assert acting.count == 2


async def test_concurrent_copies_reach_the_handler_once(api: Api, acting: Starts) -> None:
    query = api.signed(api.admin, **_run(ipaddress="198.51.100.11"))
    answers = await asyncio.gather(*(api.get(query) for _ in range(10)))
    assert sorted(r.status_code for r in answers) == [200] + [401] * 9
    assert acting.count == 1


async def test_a_call_refused_for_its_input_gives_its_signature_back(
    api: Api, db: async_sessionmaker[AsyncSession]
) -> None:
    """The handler refuses the VM nobody has (431): nothing changed, nothing is spent."""
    query = api.signed(api.admin, **_run(ipaddress="198.51.100.16"))
    for _ in range(2):
        r = await api.get(query)
        assert r.status_code == 431 and "Unable to find a system vm" in _text(r)
    async with db() as s:
        assert (await s.execute(select(UsedSignature))).scalars().all() == []


async def test_a_request_refused_before_its_handler_does_not_spend_it(api: Api) -> None:
    missing = api.signed(api.admin, **_run())  # No ipaddress.
    wrong_role = api.signed(api.user, **_run(ipaddress="198.51.100.12"))
    for query, code in ((missing, 431), (wrong_role, 432)):
        assert [(await api.get(query)).status_code for _ in range(2)] == [code, code]


async def test_read_only_commands_stay_repeatable(api: Api) -> None:
    query = api.signed(api.admin, command="listZones")
    assert [(await api.get(query)).status_code for _ in range(3)] == [200] * 3


async def test_session_calls_are_no_signatures(api: Api) -> None:
    login = await api.http.post(
        "/client/api",
        data={"command": "login", "username": "admin", "password": api.admin.password},
        params={"response": "json"},
    )
    assert login.status_code == 200
    key = login.json()["loginresponse"]["sessionkey"]
    call = {**_run(ipaddress="198.51.100.13"), "response": "json", "sessionkey": key}
    assert [(await api.get(call)).status_code for _ in range(2)] == [431, 431]


async def test_far_expires_is_refused(api: Api) -> None:
    for expires in ("9999-12-31T23:59:59Z", _iso(utcnow() + 2 * HOUR)):
        query = api.signed(api.admin, command="listZones", signatureVersion="3", expires=expires)
        r = await api.get(query)
        assert r.status_code == 401
        assert "too far in the future" in r.json()["listzonesresponse"]["errortext"]


async def test_require_expires_refuses_a_signature_without_it(
    db: async_sessionmaker[AsyncSession],
) -> None:
    async for api in _api(db, Settings(require_expires=True)):
        bare = await api.get(api.signed(api.admin, command="listZones"))
        assert bare.status_code == 401
        assert "requires signatureVersion=3" in bare.json()["listzonesresponse"]["errortext"]
        expiring = api.signed(
            api.admin,
            command="listZones",
            signatureVersion="3",
            expires=_iso(utcnow() + timedelta(minutes=5)),
        )
        assert (await api.get(expiring)).status_code == 200


async def test_a_spent_signature_is_remembered_until_it_expires(
    api: Api, db: async_sessionmaker[AsyncSession], acting: Starts
) -> None:
    expires = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    with_expiry = api.signed(
        api.admin, **_run(ipaddress="198.51.100.14"), signatureVersion="3", expires=_iso(expires)
    )
    without = api.signed(api.admin, **_run(ipaddress="198.51.100.15"))
    for query in (with_expiry, without):
        assert (await api.get(query)).status_code == 200
    async with db() as s:
        rows = {r.digest: r.expires for r in (await s.execute(select(UsedSignature))).scalars()}
    assert rows == {
        signature_digest(with_expiry["signature"]): expires,
        signature_digest(without["signature"]): None,
    }
