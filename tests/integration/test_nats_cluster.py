"""A three-node NATS cluster with JetStream: cloudiag's streams get three replicas, and a
node killed during a run of jobs loses none of them (server and agent fail over)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from cloudiag.bus import subjects
from cloudiag.bus.embedded import AUTHORIZATION_FILE, server_urls
from tests.integration.stack import Stack, launch
from tests.nats_cluster import Cluster, nats_cluster

#: Raised so that a batch of jobs runs at once on three VMs.
LIMITS = {
    "CLOUDIAG_LIMIT_PER_VM": "20",
    "CLOUDIAG_LIMIT_PER_USER": "100",
    "CLOUDIAG_LIMIT_PER_HOST": "100",
}
ROLES = ("router", "secondarystoragevm", "consoleproxy")


@pytest.fixture(scope="module")
def clustered(
    lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Cluster]]:
    """A stack whose server and agent use a NATS cluster of three nodes."""
    folder = tmp_path_factory.mktemp("nats-cluster")
    with nats_cluster(folder, folder / AUTHORIZATION_FILE) as cluster:
        with launch(
            "sqlite",
            lab,
            folder,
            server_env=LIMITS,
            nats_url=cluster.url,
            start_nats=lambda _: cluster.start(),
        ) as st:
            yield st, cluster


def _leader(st: Stack, stream: str) -> str:
    """The name of the node that leads a stream."""

    async def ask() -> str:
        nc = await nats.connect(server_urls(st.nats_url), **st.bus_options())
        try:
            cluster = (await nc.jetstream().stream_info(stream)).cluster
            assert cluster is not None and cluster.leader
            return cluster.leader
        finally:
            await nc.close()

    return asyncio.run(ask())


def _replicas(st: Stack) -> dict[str, int]:
    async def ask() -> dict[str, int]:
        nc = await nats.connect(server_urls(st.nats_url), **st.bus_options())
        try:
            js = nc.jetstream()
            names = [
                subjects.REQUESTS_STREAM,
                subjects.RESULTS_STREAM,
                subjects.OUTPUT_STREAM,
                f"KV_{subjects.JOBS_BUCKET}",
            ]
            return {n: int((await js.stream_info(n)).config.num_replicas or 1) for n in names}
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_streams_and_bucket_have_three_replicas(clustered: tuple[Stack, Cluster]) -> None:
    st, _ = clustered
    assert set(_replicas(st).values()) == {3}


def test_a_node_killed_during_a_run_of_jobs_loses_none(clustered: tuple[Stack, Cluster]) -> None:
    st, cluster = clustered
    web = st.lab["targets"]["web"]
    jobs: list[str] = []
    lock = threading.Lock()

    def submit(role: str, count: int) -> None:
        for _ in range(count):
            jobid = st.start_job(role, "ping", web, "-c 6 -i 0.5")
            with lock:
                jobs.append(jobid)

    first = [threading.Thread(target=submit, args=(role, 6)) for role in ROLES]
    for t in first:
        t.start()
    for t in first:
        t.join()
    # The node that leads the requests stream goes, with jobs queued and running (with one
    # replica their requests would go with it).
    leader = _leader(st, subjects.REQUESTS_STREAM)
    victim = next(node for node in cluster.nodes if node.name == leader)
    victim.kill()
    # More jobs while the cluster has two nodes left (a quorum for R3).
    submit("router", 4)
    assert len(jobs) == 22
    for jobid in jobs:
        job = st.wait_job(jobid, timeout=90)
        assert job["jobstatus"] == 1, job
        assert "6 packets transmitted, 6 received" in job["jobresult"]["diagnostics"]["stdout"]
    events = st.ok("listEvents", pagesize=2000)["event"]
    for jobid in jobs:
        states = sorted(e["state"] for e in events if e.get("jobid") == jobid)
        assert states == ["Completed", "Started"], (jobid, states)
    # The node comes back and the cluster carries on with all three.
    victim.start()
    cluster.wait_ready()
    assert st.run("secondarystoragevm", "ping", web, "-c 1")["jobstatus"] == 1
