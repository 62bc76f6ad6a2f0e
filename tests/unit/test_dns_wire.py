"""The dns check's own message reader on answers a server might send: real ones, cut ones,
compression loops and random bytes never give anything but fields or WireError."""

from __future__ import annotations

import random
import struct

import pytest

from cloudiag.sysvm.probes import dns_wire


def answer(records: bytes, count: int, flags: int = 0x8180) -> bytes:
    """An answer to "lab.test. IN <type>" with ``records`` in its answer section."""
    question = b"\x03lab\x04test\x00" + struct.pack("!HH", 15, 1)
    return struct.pack("!HHHHHH", 0x1234, flags, 1, count, 0, 0) + question + records


# "lab.test." by pointer to offset 12; MX 10 web.lab.test. (web + pointer).
MX = b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 600, 8) + b"\x00\x0a\x03web\xc0\x0c"
SOA_DATA = b"\x03dns\xc0\x0c\x0ahostmaster\xc0\x0c" + struct.pack("!IIIII", 7, 1, 2, 3, 4)
SOA = b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 60, len(SOA_DATA)) + SOA_DATA


def test_the_query_is_what_a_server_expects() -> None:
    q = dns_wire.query(0xBEEF, "web.lab.test.", "AAAA")
    assert q == (
        struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0)
        + b"\x03web\x03lab\x04test\x00"
        + struct.pack("!HH", 28, 1)
    )


def test_mx_and_soa_with_compressed_names() -> None:
    mx = dns_wire.read_answer(answer(MX, 1))
    assert mx["rcode"] == "NOERROR" and mx["ID"] == 0x1234 and mx["flags"]["ra"]
    assert mx["answers"] == [
        {
            "NAME": "lab.test.",
            "TYPE": "MX",
            "TTL": 600,
            "RDATA": "10 web.lab.test.",
            "PREF": 10,
            "EXCHANGE": "web.lab.test.",
        }
    ]
    soa = dns_wire.read_answer(answer(SOA, 1))["answers"][0]
    assert (soa["MNAME"], soa["RNAME"], soa["SERIAL"], soa["MINIMUM"]) == (
        "dns.lab.test.",
        "hostmaster.lab.test.",
        7,
        4,
    )


def test_nxdomain_and_the_truncation_flag() -> None:
    nx = dns_wire.read_answer(answer(b"", 0, flags=0x8183))
    assert (nx["rcode"], nx["answers"]) == ("NXDOMAIN", [])
    assert dns_wire.is_truncated(answer(b"", 0, flags=0x8380))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x12\x34",
        answer(MX, 2),  # one record promised more than there is
        answer(MX[:-3], 1),  # cut inside the record's data
        answer(SOA[:-6], 1),  # an SOA without all its numbers
        answer(b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 60, 2) + b"\xc0\x0c", 1),
        # A name that points at itself, forever.
        struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c",
        struct.pack("!HHHHHH", 1, 0x0100, 0, 0, 0, 0),  # a query, not an answer
    ],
)
def test_broken_answers_raise_wire_error(data: bytes) -> None:
    with pytest.raises(dns_wire.WireError):
        dns_wire.read_answer(data)


def test_random_and_mutated_answers_never_raise_anything_else() -> None:
    rng = random.Random(12)
    base = answer(MX + SOA, 2)
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytearray(base)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = data[: rng.randint(0, len(data))]
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 80)))
        try:
            dns_wire.read_answer(bytes(data))
        except dns_wire.WireError:
            pass
