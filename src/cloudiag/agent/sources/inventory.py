"""A static inventory: the zone, the host and its VMs, declared in a JSON or TOML file.

```toml
[zone]
id = "…"
name = "zone-1"

[host]
id = "…"

[[vms]]
id = "…"
name = "r-4-VM"
vm_type = "domainrouter"
addresses = { public = "203.0.113.10", control = "169.254.3.4" }
access = { kind = "netns", namespace = "r-4-VM" }
```

A VM's ``state`` defaults to Running. The VMs are read again at every heartbeat (off the
event loop), so an edit shows at the next one; an unreadable file keeps the last good read.
The zone and the host are the agent's identity, taken once at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudiag.agent.sources.base import Host, Zone
from cloudiag.bus.messages import VmReport

log = logging.getLogger(__name__)


class DeclaredVm(VmReport):
    """A VM as an inventory declares it: a report whose state may be left out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: Literal["Running", "Stopped"] = "Running"


class Inventory(BaseModel):
    """The whole file. Unknown keys are refused, so that a typo fails loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zone: Zone
    host: Host
    vms: list[DeclaredVm] = Field(default_factory=list)


class InventoryError(ValueError):
    """The inventory file cannot be read or does not hold a valid inventory."""


def parse(text: str, *, toml: bool) -> Inventory:
    """The inventory in ``text`` (TOML or JSON); raises InventoryError with the reason."""
    try:
        data: Any = tomllib.loads(text) if toml else json.loads(text)
    except ValueError as exc:  # TOML and JSON syntax errors alike.
        raise InventoryError(f"not {'TOML' if toml else 'JSON'}: {exc}") from None
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """A validation error in one line per problem: where it is, then what is wrong."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'the file'}: {err['msg']}"
        for err in exc.errors()
    )


def load(path: Path) -> Inventory:
    """The inventory in the file at ``path``: TOML if it ends in .toml, else JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"cannot read the inventory {path}: {exc.strerror}") from None
    try:
        return parse(text, toml=path.suffix == ".toml")
    except InventoryError as exc:
        raise InventoryError(f"invalid inventory {path}: {exc}") from None


class InventorySource:
    """The VMs of an inventory file, in the state the file declares."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inventory = load(path)
        # The agent's identity is fixed at start: it names the subjects it listens on.
        self._zone, self._host = self._inventory.zone, self._inventory.host

    @property
    def zone(self) -> Zone:
        """The zone the file declared at start."""
        return self._zone

    @property
    def host(self) -> Host:
        """The host the file declared at start."""
        return self._host

    async def vms(self) -> list[VmReport]:
        """The file's VMs, read again; the last good read if it is broken now."""
        try:
            self._inventory = await asyncio.to_thread(load, self.path)
        except InventoryError as exc:
            log.warning("%s; reporting the VMs of the last good read", exc)
        return list(self._inventory.vms)
