"""Password hashing (argon2id) and key generation."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from cloudiag.accounts import passwords
from cloudiag.accounts.passwords import (
    MIN_PASSWORD_LENGTH,
    generate_api_key,
    generate_password,
    generate_secret_key,
    generate_session_key,
    hash_password,
    hash_password_async,
    needs_rehash,
    verify_password,
    verify_password_async,
)

URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password("correct horse battery staple")


# ---------------------------------------------------------------------------- hashing


def test_hash_is_memory_hard_argon2id(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "correct horse" not in stored


def test_hashes_are_salted() -> None:
    assert hash_password("same") != hash_password("same")


def test_verify(stored: str) -> None:
    assert verify_password(stored, "correct horse battery staple") is True
    assert verify_password(stored, "correct horse battery stapl") is False
    assert verify_password(stored, "Correct horse battery staple") is False
    assert verify_password(stored, "") is False


@pytest.mark.parametrize("password", ["", "é日本🙂", "x" * 10_000, "with\x00nul"])
def test_any_password_round_trips(password: str) -> None:
    assert verify_password(hash_password(password), password)


@pytest.mark.parametrize(
    "bad_hash",
    [
        "",
        "garbage",
        "$argon2id$",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$bm90LWEtcmVhbC1oYXNo",
        "$argon2id$v=19$m=65536,t=3,p=4$!!!$!!!",
        "$2b$12$abcdefghijklmnopqrstuuH5sx1y7fQUZVtYX3k6zQW0lJtPp6Vry",  # bcrypt
        "$argon2id$v=19$m=65536,t=3,p=4$é$é",
        "plain text password",
    ],
)
def test_malformed_hash_is_false_never_raises(bad_hash: str) -> None:
    assert verify_password(bad_hash, "plain text password") is False
    assert needs_rehash(bad_hash) is True


def test_unencodable_password(stored: str) -> None:
    assert verify_password(stored, "lone \udcff surrogate") is False
    with pytest.raises(ValueError):
        hash_password("lone \udcff surrogate")


def test_unknown_user_verifies_a_dummy_and_fails() -> None:
    assert verify_password(None, "anything") is False
    # The dummy check costs about as much as a real one (it is a real argon2id verify).
    assert passwords._dummy_hash is not None
    assert passwords._dummy_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_needs_rehash(stored: str) -> None:
    assert needs_rehash(stored) is False
    weak = PasswordHasher.from_parameters(CHEAPEST).hash("pw")
    assert needs_rehash(weak) is True
    # A weaker but valid hash still verifies, so it can be upgraded at the next login.
    assert verify_password(weak, "pw") is True


# ---------------------------------------------------------------------------- async


async def test_async_verify_and_hash() -> None:
    stored = await hash_password_async("s3cret-pw")
    assert await verify_password_async(stored, "s3cret-pw") is True
    assert await verify_password_async(stored, "wrong") is False
    assert await verify_password_async("garbage", "wrong") is False
    assert await verify_password_async(None, "wrong") is False


async def test_async_verify_runs_off_the_event_loop(
    stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_verify = passwords._verify

    def spy(stored_hash: str, password: str) -> bool:
        threads.append(threading.current_thread().name)
        return real_verify(stored_hash, password)

    monkeypatch.setattr(passwords, "_verify", spy)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        results = await asyncio.gather(
            *(verify_password_async(stored, "correct horse battery staple") for _ in range(4))
        )
    finally:
        task.cancel()
    assert results == [True] * 4
    assert len(threads) == 4
    assert all(name.startswith("cloudiag-argon2") for name in threads)
    # Had the hashes run on the loop, the ticker could not have run in between.
    assert ticks >= 3


# ---------------------------------------------------------------------------- generation


def test_generate_password() -> None:
    password = generate_password()
    assert len(password) == 20
    assert URL_SAFE.fullmatch(password)
    assert len(generate_password(64)) == 64
    assert len(generate_password(MIN_PASSWORD_LENGTH)) == MIN_PASSWORD_LENGTH
    assert len({generate_password() for _ in range(200)}) == 200


@pytest.mark.parametrize("length", [0, -1, MIN_PASSWORD_LENGTH - 1])
def test_generate_password_refuses_short_lengths(length: int) -> None:
    with pytest.raises(ValueError):
        generate_password(length)


def test_generate_password_uses_the_whole_alphabet() -> None:
    seen = set("".join(generate_password(64) for _ in range(100)))
    assert seen == set(passwords._PASSWORD_ALPHABET)


@pytest.mark.parametrize("generate", [generate_api_key, generate_secret_key])
def test_api_and_secret_keys(generate: object) -> None:
    assert callable(generate)
    keys = {generate() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert isinstance(key, str)
        assert len(key) == 86  # as CloudStack's
        assert URL_SAFE.fullmatch(key)
        # Nothing any client or CloudStack would encode while signing.
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def test_api_and_secret_keys_differ() -> None:
    assert generate_api_key() != generate_secret_key()


def test_session_key() -> None:
    keys = {generate_session_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert len(key) == 43
        assert URL_SAFE.fullmatch(key)
