"""The host's own addresses, as the agent reports them."""

from __future__ import annotations

import asyncio
import json


async def host_addresses() -> list[str]:
    """The host's global addresses, as `ip` reports them."""
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "-j",
        "addr",
        "show",
        "scope",
        "global",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    try:
        data = json.loads(out or b"[]")
    except ValueError:
        return []
    return [a["local"] for link in data for a in link.get("addr_info", []) if "local" in a]
