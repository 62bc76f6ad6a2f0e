"""A three-node NATS cluster with JetStream on loopback ports, of a test's own.

Each node has its own store, client port, cluster port and monitoring port (to tell when
the cluster is ready); all include one authorization file (bus/authorization.py: the
managers' and agents' nkeys), which the stack writes before the cluster starts. A node can
be killed and started again with the same ports and store, as a crashed and restarted
cluster member would be.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cloudiag.bus.embedded import MAX_PAYLOAD, find_nats_server, free_port

#: How long a fresh cluster may take to elect its JetStream meta leader.
READY_TIMEOUT = 30.0


@dataclass
class Node:
    """One nats-server of the cluster."""

    name: str
    port: int
    cluster_port: int
    monitor_port: int
    config: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the node (again), with its config, ports and store."""
        self.proc = subprocess.Popen(
            [find_nats_server(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """SIGKILL the node, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def monitor(self, path: str) -> dict[str, Any]:
        """An answer of the node's monitoring endpoint, e.g. ``connz`` or ``jsz``."""
        r = httpx.get(f"http://127.0.0.1:{self.monitor_port}/{path}", timeout=5)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data


@dataclass
class Cluster:
    """The nodes and the URL setting naming all of them."""

    nodes: list[Node]
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = ",".join(f"nats://127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        """Start every node and wait until the cluster has a JetStream leader."""
        for node in self.nodes:
            node.start()
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every node is up and the cluster has a JetStream meta leader."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(n.monitor("jsz").get("meta_cluster", {}).get("leader") for n in self.nodes):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the NATS cluster elected no JetStream leader")
            time.sleep(0.2)


def _config(node: Node, peers: list[Node], store: Path, authorization: Path) -> str:
    routes = [f"nats-route://127.0.0.1:{p.cluster_port}" for p in peers if p is not node]
    return (
        f"server_name: {json.dumps(node.name)}\n"
        f"listen: {json.dumps(f'127.0.0.1:{node.port}')}\n"
        f"http: {json.dumps(f'127.0.0.1:{node.monitor_port}')}\n"
        f"max_payload: {MAX_PAYLOAD}\n"
        f"jetstream {{ store_dir: {json.dumps(str(store))} }}\n"
        # nats-server reads an include relative to the config's folder, absolute or not.
        f"include {json.dumps(os.path.relpath(authorization, node.config.parent))}\n"
        "cluster {\n"
        '  name: "cloudiag-test"\n'
        f"  listen: {json.dumps(f'127.0.0.1:{node.cluster_port}')}\n"
        f"  routes: {json.dumps(routes)}\n"
        "}\n"
    )


@contextlib.contextmanager
def nats_cluster(folder: Path, authorization: Path, size: int = 3) -> Iterator[Cluster]:
    """A cluster of ``size`` nodes with JetStream whose configs include ``authorization``,
    not started yet (Cluster.start); every node stopped at the end."""
    nodes = [
        Node(f"n{i}", free_port(), free_port(), free_port(), folder / f"n{i}.conf")
        for i in range(1, size + 1)
    ]
    for node in nodes:
        node.config.write_text(_config(node, nodes, folder / f"{node.name}-store", authorization))
        node.config.chmod(0o600)
    cluster = Cluster(nodes)
    try:
        yield cluster
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.kill()
