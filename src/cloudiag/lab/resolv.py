"""Each lab namespace's resolv.conf, so that names looked up in the lab ask the lab.

``/etc/netns/<namespace>/resolv.conf`` points at the lab's DNS server; `ip netns exec`
mounts it over /etc/resolv.conf, so a lookup inside the lab never reaches the host's
resolver. Only files written here are ever removed.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from cloudiag.lab.topology import DNS, DNS_DOMAIN

log = logging.getLogger(__name__)

#: `ip netns exec NS` bind-mounts every file of /etc/netns/NS over the one of /etc.
ETC_NETNS = Path("/etc/netns")
_RESOLV_MARK = "# cloudiag lab: names resolve through the lab's own DNS server"


def write_resolv(ns: str) -> None:
    """Point namespace `ns` at the lab's DNS server; best effort, a failure is logged."""
    # Without a host /etc/resolv.conf to mount over, `ip netns exec` would warn on every
    # call (noise in every diagnostic's stderr): then the lab just does without.
    if not Path("/etc/resolv.conf").exists():
        return
    # Best effort: a read-only /etc only costs name resolution inside the lab.
    try:
        d = ETC_NETNS / ns
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(
            f"{_RESOLV_MARK}\nnameserver {DNS}\nsearch {DNS_DOMAIN}\noptions timeout:1 attempts:2\n"
        )
    except OSError as exc:
        log.warning("cannot write %s: %s", ETC_NETNS / ns / "resolv.conf", exc)


def remove_resolv(ns: str) -> None:
    """Remove the resolv.conf `write_resolv` made for `ns`, and its directory if empty."""
    path = ETC_NETNS / ns / "resolv.conf"
    with contextlib.suppress(OSError):
        # Only a file this module wrote: someone's own netns config is not ours to remove.
        if path.read_text().startswith(_RESOLV_MARK):
            path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()
