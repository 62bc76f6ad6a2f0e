"""The operator's forbidden destinations, judged in every form an address can take.

An IPv6 address can carry an IPv4 one (IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4,
Teredo) and the unspecified address reaches the host itself, so an address is judged as
each host it may reach, not only as written. A name is judged on the VM, where it is
resolved: pin_destination() checks what it resolves to and hands the tool that very address.
"""

from __future__ import annotations

import ipaddress

from .errors import DiagnosticsInputError
from .tokens import parse_ip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .validate import Request

    Network = ipaddress.IPv4Network | ipaddress.IPv6Network
    Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Denied unless the operator says otherwise: the VM itself (loopback, and the unspecified
#: address, which reaches it), multicast and broadcast.
DEFAULT_DENIED_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "0.0.0.0/8",
    "::/128",
    "224.0.0.0/4",
    "ff00::/8",
    "255.255.255.255/32",
)

# IPv6 prefixes that embed an IPv4 address in their last 32 bits: IPv4-translated (SIIT,
# RFC 2765), NAT64's well-known prefix (RFC 6052) and IPv4-compatible (deprecated).
_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(net) for net in ("::ffff:0:0:0/96", "64:ff9b::/96", "::/96")
)
# NAT64's local-use prefix (RFC 8215) is a /48: the IPv4 address sits in bits 48-63 and
# 72-87, around the reserved octet "u" (RFC 6052, section 2.2).
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_LOOPBACKS = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def parse_networks(specs: Sequence[str]) -> list[Network]:
    """Networks from their text form; ValueError names a malformed one."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not a network: {spec!r}") from None
    return networks


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries in one of its standard forms."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.append(ip.teredo[1])  # The client: where the packets end up.
    value = int(ip)
    for net in _LAST_32_BITS:
        if ip in net and not ip.is_loopback and not ip.is_unspecified:
            found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if ip in _NAT64_LOCAL:
        high = (value >> 64) & 0xFFFF
        low = (value >> 40) & 0xFFFF
        found.append(ipaddress.IPv4Address(high << 16 | low))
    return found


def reachable_hosts(ip: Address) -> list[Address]:
    """The address itself and every host a packet sent to it may reach."""
    hosts: list[Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        hosts += _embedded_ipv4(ip)
    # Linux delivers packets to 0.0.0.0 (and "::") to the host itself.
    if any(h.is_unspecified or (h.version == 4 and h in _THIS_NETWORK) for h in hosts):
        hosts += _LOOPBACKS
    return list(dict.fromkeys(hosts))


def _denied(shown_as: str, addresses: Sequence[str], networks: Sequence[Network]) -> str | None:
    for address in addresses:
        written = ipaddress.ip_address(address.split("%")[0])
        for ip in reachable_hosts(written):
            for net in networks:
                if ip.version == net.version and ip in net:
                    shown = shown_as if str(ip) == shown_as else f"{shown_as} ({ip})"
                    return f"Destination {shown} is in {net}, which the operator does not allow"
    return None


#: The types CloudStack's own diagnostics.py runs; it prints nothing for any other.
CLOUDSTACK_SCRIPT_TYPES = ("arping", "ping", "traceroute")


def script_cannot_run(type_name: str, vm_name: str) -> str | None:
    """Why a VM that runs CloudStack's own script cannot run a diagnostic of this type, or
    None: that script knows only its three types."""
    if type_name in CLOUDSTACK_SCRIPT_TYPES:
        return None
    return (
        f"the CloudStack script on {vm_name} runs only {', '.join(CLOUDSTACK_SCRIPT_TYPES)}, "
        f"not {type_name}"
    )


def unchecked_name(host: str, vm_name: str, denied: Sequence[str]) -> str | None:
    """Why a VM that runs CloudStack's own script cannot take the destination ``host``, or
    None: that script hands a host name to the tool unresolved, so where the name points
    cannot be checked against the operator's denied networks."""
    if not denied or parse_ip(host) is not None:
        return None
    return (
        f"the CloudStack script on {vm_name} cannot check where {host} points against the "
        "denied networks: give an IP address"
    )


def denied_destination(address: str, networks: Sequence[Network]) -> str | None:
    """Why the operator's policy forbids this IP literal, or None (also for a host name)."""
    if not networks or parse_ip(address) is None:
        return None
    return _denied(address, [address], networks)


def destination(req: Request) -> str | None:
    """The host a request sends packets to: its target's host, or the value of the type's
    destination option (None when that option is not given: the VM's own choice)."""
    flag = req.type.destination_option
    if not flag:
        return req.type.target.host(req.address)
    params = req.params
    return params[params.index(flag) + 1] if flag in params else None


def denied_request(req: Request, networks: Sequence[Network]) -> str | None:
    """Why the operator's policy forbids where this request goes (judged as written, as
    denied_destination does), or None."""
    host = destination(req)
    return None if host is None else denied_destination(host, networks)


def _resolve(name: str, family: int = 0) -> list[str]:
    """The addresses of a host name, in the order a tool would try them (OSError if none)."""
    import socket  # Only here: most runs need no resolution.

    infos = socket.getaddrinfo(name, None, family, socket.SOCK_DGRAM)
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise OSError(f"no address for {name}")
    return found


def _family_of(req: Request) -> int:
    """The address family the tool would resolve a name in (0: either)."""
    import socket

    flags = {*req.type.forced_options, *req.params}
    if "-4" in flags or req.type.address_families == frozenset({4}):
        return socket.AF_INET
    if "-6" in flags or req.type.address_families == frozenset({6}):
        return socket.AF_INET6
    return 0


def pin_destination(req: Request, networks: Sequence[Network]) -> Request:
    """The request aimed at one checked address when the operator denies some networks.

    A literal is checked as it is. A host name is resolved once, here: every address it has
    must be allowed, and the tool gets the first one (the one it would have picked) instead
    of the name. Given the name, the tool would resolve it again, and a second answer may
    differ from the one checked (DNS rebinding). Raises DiagnosticsInputError when the
    destination is refused or the name does not resolve.
    """
    if not networks:
        return req
    host = destination(req)
    if host is None:
        return req
    if req.type.destination_option:
        # An option's destination is an IP literal (its kind says so): nothing to pin.
        denied = denied_destination(host, networks)
        if denied:
            raise DiagnosticsInputError("params", denied)
        return req
    if parse_ip(host) is not None:
        addresses = [host]
    else:
        try:
            addresses = _resolve(host, _family_of(req))
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DiagnosticsInputError(
                "ipaddress", f"{host} cannot be resolved ({reason})."
            ) from None
    denied = _denied(host, addresses, networks)
    if denied:
        raise DiagnosticsInputError("ipaddress", denied)
    return req.aimed_at(req.type.target.with_host(req.address, addresses[0]))
