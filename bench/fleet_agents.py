"""Many simulated agents in one process, for bench/fleet.py: each a real cloudiag Agent (its
own NATS connection, consumer, heartbeats, job table) of a host of its own, whose VMs are
simulated.

Each agent has its own nkey on the bus (the seeds file the bench wrote, and the bus's
authorization holds each host's permissions), as a registered host's agent has.

The simulation is in two places only, both said here:
- the executor answers in-process: a ping "runs" for a millisecond and prints what
  `ping -c 1` prints (no process, no namespace), so that 2,000 hosts fit on one machine;
- the host's own addresses are made up (the real agent asks `ip`, once per agent).
Everything else is the agent as it runs on a real host.

    CLOUDIAG_NATS_URL=… python bench/fleet_agents.py --seeds FILE --first 0 --count 500
        [--vms 5] [--heartbeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudiag.agent import agent as agent_module
from cloudiag.agent.agent import Agent
from cloudiag.agent.executors.base import OnRecord, Outcome
from cloudiag.agent.executors.registry import Executors
from cloudiag.agent.sources.base import Host, Zone
from cloudiag.bus.access import BusAccess
from cloudiag.bus.messages import NetnsAccess, RunRequest, VmReport

#: The simulated fleet's ids: the same for every run of the bench (uuid5 of these names).
FLEET = uuid.UUID("6f0c1d2e-8c4b-4a55-9a57-2f4f0b1c0de5")
VM_TYPES = ("domainrouter", "secondarystoragevm", "consoleproxy")
ZONES = 4


def host_id(n: int) -> str:
    """The id of simulated host n."""
    return str(uuid.uuid5(FLEET, f"host-{n}"))


def vm_id(host: int, vm: int) -> str:
    """The id of VM number ``vm`` of simulated host ``host``."""
    return str(uuid.uuid5(FLEET, f"host-{host}-vm-{vm}"))


class SimSource:
    """A simulated host's identity and its VMs: routers, and one SSVM and one CPVM on the
    first hosts of each zone's."""

    def __init__(self, n: int, vms: int) -> None:
        self.n = n
        zone = n % ZONES
        self._zone = Zone(id=str(uuid.uuid5(FLEET, f"zone-{zone}")), name=f"sim-zone-{zone}")
        self._host = Host(id=host_id(n), name=f"sim-host-{n}")
        self._vms = [
            VmReport(
                id=vm_id(n, i),
                name=f"r-{n * vms + i + 1}-VM",
                vm_type=VM_TYPES[i % len(VM_TYPES)] if n < ZONES else "domainrouter",
                state="Running",
                addresses={"control": f"169.254.{n // 250}.{(n % 250) + 1}"},
                access=NetnsAccess(namespace=f"sim-{n}-{i}"),
            )
            for i in range(vms)
        ]

    @property
    def zone(self) -> Zone:
        return self._zone

    @property
    def host(self) -> Host:
        return self._host

    async def vms(self) -> list[VmReport]:
        return self._vms


class SimExecutor:
    """Answers a diagnostic in-process, as `ping -c 1` to a neighbour would (no process)."""

    def __init__(self) -> None:
        self.runs = 0

    async def execute(
        self, vm: VmReport, request: RunRequest, *, on_record: OnRecord, stop: asyncio.Event
    ) -> Outcome:
        started = time.monotonic()
        self.runs += 1
        head = f"PING {request.address} ({request.address}) 56(84) bytes of data.\n"
        await on_record("stdout", head)
        await asyncio.sleep(0.001)
        reply = f"64 bytes from {request.address}: icmp_seq=1 ttl=64 time=0.050 ms\n"
        await on_record("stdout", reply)
        tail = (
            f"\n--- {request.address} ping statistics ---\n"
            "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n"
            "rtt min/avg/max/mdev = 0.050/0.050/0.050/0.000 ms\n"
        )
        await on_record("stdout", tail)
        return Outcome(head + reply + tail, "", "0", time.monotonic() - started)

    def spawned(self) -> int:
        return 0

    async def close(self) -> None:
        return None


async def _fake_addresses() -> list[str]:
    return ["192.0.2.250"]


async def main(
    nats_url: str, seeds: dict[str, str], first: int, count: int, vms: int, heartbeat: float
) -> None:
    agent_module.host_addresses = _fake_addresses  # type: ignore[assignment]  # simulated
    agents = [
        Agent(
            nats_url,
            SimSource(n, vms),
            Executors({NetnsAccess: SimExecutor()}),
            heartbeat_interval=heartbeat,
            access=BusAccess(nkey_seed=seeds[host_id(n)]),
        )
        for n in range(first, first + count)
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [a.stop() for a in agents])
    await asyncio.gather(*(a.run() for a in agents), return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=Path, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--vms", type=int, default=5)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    args = parser.parse_args()
    seeds = json.loads(args.seeds.read_text())
    url = os.environ["CLOUDIAG_NATS_URL"]
    asyncio.run(main(url, seeds, args.first, args.count, args.vms, args.heartbeat))
