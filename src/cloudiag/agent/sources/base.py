"""What every source is: where an agent learns its host's identity and the VMs on it."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from cloudiag.bus.messages import VmReport


class Zone(BaseModel):
    """The zone the host belongs to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str


class Host(BaseModel):
    """The host an agent serves; without a name the agent reports the machine's hostname."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str | None = None


class Source(Protocol):
    """The agent asks for its identity once, at start, and for the VMs at every heartbeat."""

    @property
    def zone(self) -> Zone:
        """The zone of the host."""
        ...

    @property
    def host(self) -> Host:
        """The host itself."""
        ...

    async def vms(self) -> list[VmReport]:
        """The VMs on the host now, with their state and their access."""
        ...
