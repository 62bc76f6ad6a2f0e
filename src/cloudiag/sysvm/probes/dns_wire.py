"""DNS messages by hand (RFC 1035): a query to send, an answer read into plain fields.

Only what a lookup needs: one question, the answer and authority sections, the record
types of types/dns.py (others as hex), name compression with a bound on its pointers.
"""

from __future__ import annotations

import socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TYPE_CODES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
TYPE_NAMES = {code: name for name, code in TYPE_CODES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_CLASS_IN = 1
_FLAG_QR, _FLAG_AA, _FLAG_TC, _FLAG_RD, _FLAG_RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
# More pointers than a name has labels would be a loop.
_MAX_POINTERS = 128


class WireError(ValueError):
    """An answer that cannot be read."""


def query(qid: int, name: str, qtype: str) -> bytes:
    """A recursive query for ``name`` (already checked: ASCII labels) and ``qtype``."""
    header = struct.pack("!HHHHHH", qid, _FLAG_RD, 1, 0, 0, 0)
    labels = [label for label in name.rstrip(".").split(".") if label]
    qname = b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"
    return header + qname + struct.pack("!HH", TYPE_CODES[qtype], _CLASS_IN)


def _name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (with a trailing dot) and the offset after it."""
    labels: list[str] = []
    end = -1
    for _ in range(_MAX_POINTERS):
        if offset >= len(data):
            raise WireError("a name runs past the end of the answer")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise WireError("a name pointer runs past the end of the answer")
            if end < 0:
                end = offset + 2
            offset = (length & 0x3F) << 8 | data[offset + 1]
            continue
        if length == 0:
            text = ".".join(labels) + "."
            return text, (end if end >= 0 else offset + 1)
        label = data[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise WireError("a label runs past the end of the answer")
        labels.append(
            "".join(chr(b) if 0x21 <= b < 0x7F and b != 0x2E else f"\\{b:03d}" for b in label)
        )
        offset += 1 + length
    raise WireError("a name has too many compression pointers")


def _strings(rdata: bytes) -> list[str]:
    """The character-strings of a TXT record."""
    found, offset = [], 0
    while offset < len(rdata):
        length = rdata[offset]
        chunk = rdata[offset + 1 : offset + 1 + length]
        found.append(chunk.decode("utf-8", errors="backslashreplace"))
        offset += 1 + length
    return found


def _rdata(data: bytes, rtype: int, start: int, length: int) -> dict[str, Any]:
    """The fields of one record's data: RDATA as dig shows it, and per-type fields."""
    rdata = data[start : start + length]
    name = TYPE_NAMES.get(rtype, "")
    if name == "A" and length == 4:
        return {"RDATA": socket.inet_ntop(socket.AF_INET, rdata)}
    if name == "AAAA" and length == 16:
        return {"RDATA": socket.inet_ntop(socket.AF_INET6, rdata)}
    if name in ("NS", "PTR", "CNAME"):
        return {"RDATA": _name(data, start)[0]}
    if name == "MX" and length >= 3:
        (pref,) = struct.unpack("!H", rdata[:2])
        exchange = _name(data, start + 2)[0]
        return {"RDATA": f"{pref} {exchange}", "PREF": pref, "EXCHANGE": exchange}
    if name == "TXT":
        strings = _strings(rdata)
        return {"RDATA": " ".join(f'"{s}"' for s in strings), "STRINGS": strings}
    if name == "SOA":
        mname, offset = _name(data, start)
        rname, offset = _name(data, offset)
        numbers = struct.unpack("!IIIII", data[offset : offset + 20])
        fields = dict(
            zip(("SERIAL", "REFRESH", "RETRY", "EXPIRE", "MINIMUM"), numbers, strict=True)
        )
        return {
            "RDATA": f"{mname} {rname} " + " ".join(map(str, numbers)),
            "MNAME": mname,
            "RNAME": rname,
            **fields,
        }
    return {"RDATA": rdata.hex()}


def _records(data: bytes, offset: int, count: int) -> tuple[list[dict[str, Any]], int]:
    records = []
    for _ in range(count):
        name, offset = _name(data, offset)
        if offset + 10 > len(data):
            raise WireError("a record runs past the end of the answer")
        rtype, _, ttl, length = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        if offset + length > len(data):
            raise WireError("a record's data runs past the end of the answer")
        record = {"NAME": name, "TYPE": TYPE_NAMES.get(rtype, f"TYPE{rtype}"), "TTL": ttl}
        record.update(_rdata(data, rtype, offset, length))
        records.append(record)
        offset += length
    return records, offset


def header(data: bytes) -> tuple[int, int, int, int, int, int]:
    """(ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT) of a message."""
    if len(data) < 12:
        raise WireError("the answer is shorter than a DNS header")
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
    return qid, flags, qd, an, ns, ar


def is_truncated(data: bytes) -> bool:
    """Whether the server set TC (the answer did not fit in UDP)."""
    return bool(header(data)[1] & _FLAG_TC)


def read_answer(data: bytes) -> dict[str, Any]:
    """The fields of an answer, named as RIPE Atlas names them where it does; WireError
    for one that cannot be read (whatever a server sends)."""
    try:
        return _read(data)
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"the answer cannot be read: {exc}") from None


def _read(data: bytes) -> dict[str, Any]:
    qid, flags, qdcount, ancount, nscount, arcount = header(data)
    if not flags & _FLAG_QR:
        raise WireError("the message is not an answer")
    offset = 12
    for _ in range(qdcount):
        offset = _name(data, offset)[1] + 4
    answers, offset = _records(data, offset, ancount)
    authority, offset = _records(data, offset, nscount)
    rcode = flags & 0xF
    return {
        "ID": qid,
        "QDCOUNT": qdcount,
        "ANCOUNT": ancount,
        "NSCOUNT": nscount,
        "ARCOUNT": arcount,
        "size": len(data),
        "rcode": RCODES.get(rcode, f"RCODE{rcode}"),
        "flags": {
            "aa": bool(flags & _FLAG_AA),
            "tc": bool(flags & _FLAG_TC),
            "rd": bool(flags & _FLAG_RD),
            "ra": bool(flags & _FLAG_RA),
        },
        "answers": answers,
        "authority": authority,
    }
