"""The agent's CloudStack source (agent/sources/cloudstack.py), tested against a SECOND
cloudiag server acting as the CloudStack management server: the stack's own server, whose
listHosts, listRouters and listSystemVms answer as CloudStack's do (hostid, linklocalip,
privateip, count, page and pagesize, signed requests), and which knows the lab's system VMs
from its lab agent. No real CloudStack runs here; the source only speaks its API.

Then an agent whose only source is that "CloudStack" registers the host and its VMs with a
management server of its own (its own database and NATS): the VMs it finds on its own are
the ones CloudStack places on the host, and a diagnostic through that server reaches one
over SSH on the control address CloudStack gave, with the key it was told.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudiag.agent.sources.cloudstack import (
    CLOUD_KEY,
    CloudStackConfig,
    CloudStackError,
    open_source,
)
from cloudiag.bus.embedded import AUTHORIZATION_FILE, find_nats_server, free_port, write_config
from cloudiag.bus.messages import SshAccess
from cloudiag.client import ApiKey, Client
from tests.databases import sqlite_url
from tests.integration.stack import Stack, cloudiag, manager_seed_file, start_server, stop


def _config(stack: Stack, host: str, **changes: Any) -> CloudStackConfig:
    admin = stack.admin
    fields: dict[str, Any] = {
        "url": stack.url,
        "api_key": admin.apikey,
        "secret_key": admin.secretkey,
        "host": host,
    }
    return CloudStackConfig(**(fields | changes))


def _lab_host(stack: Stack) -> dict[str, Any]:
    hosts: list[dict[str, Any]] = stack.ok("listHosts")["host"]
    assert len(hosts) == 1
    return hosts[0]


def _expected(stack: Stack, host_id: str) -> dict[str, tuple[str, str]]:
    """What the "CloudStack" lists on the host: VM id -> (name, control address)."""
    vms = stack.ok("listRouters")["router"] + stack.ok("listSystemVms")["systemvm"]
    return {vm["id"]: (vm["name"], vm["linklocalip"]) for vm in vms if vm["hostid"] == host_id}


async def test_the_source_finds_every_system_vm_of_its_host(stack: Stack) -> None:
    host = _lab_host(stack)
    # One VM a page: the source must follow the pages to find them all.
    source = await open_source(_config(stack, host["name"], page_size=1, key_file="/k/id"))
    try:
        assert source.host.id == host["id"] and source.host.name == host["name"]
        assert source.zone.id == host["zoneid"] and source.zone.name == host["zonename"]
        vms = await source.vms()
        expected = _expected(stack, host["id"])
        assert len(expected) >= 3  # A router, an SSVM and a CPVM at least.
        assert {vm.id: (vm.name, vm.addresses["control"]) for vm in vms} == expected
        assert {vm.vm_type for vm in vms} == {"domainrouter", "secondarystoragevm", "consoleproxy"}
        for vm in vms:
            assert vm.state == "Running"
            assert isinstance(vm.access, SshAccess)
            assert vm.access.address == expected[vm.id][1]
            assert (vm.access.port, vm.access.user, vm.access.key_file) == (3922, "root", "/k/id")
            assert vm.access.netns is None  # The host's own namespace, as on cloud0.
    finally:
        await source.close()


async def test_the_host_is_found_by_its_uuid_too(stack: Stack) -> None:
    host = _lab_host(stack)
    source = await open_source(_config(stack, host["id"]))
    try:
        assert source.host.id == host["id"]
        assert {vm.access.key_file for vm in await source.vms()} == {CLOUD_KEY}
    finally:
        await source.close()


async def test_an_unknown_host_or_a_wrong_key_is_a_clear_error(stack: Stack) -> None:
    with pytest.raises(CloudStackError, match="0 hosts named or identified 'no-such-host'"):
        await open_source(_config(stack, "no-such-host"))
    wrong = _config(stack, _lab_host(stack)["name"], secret_key="x" * 40)
    with pytest.raises(CloudStackError, match=r"listHosts failed.*401"):
        await open_source(wrong)


@contextlib.contextmanager
def _management_server(data_dir: Path, host: dict[str, Any]) -> Iterator[tuple[Path, Client]]:
    """A management server of its own: an authorized nats-server, SQLite, `cloudiag serve`,
    with `host` registered (`cloudiag host add`); its agent's config file and an admin's
    client."""
    port = free_port()
    nats_url = f"nats://127.0.0.1:{port}"
    db_url = sqlite_url(data_dir)
    agent_config = data_dir / "agent.toml"
    added = cloudiag(
        "host", "add", host["name"], "--host-id", host["id"], "--out", str(agent_config),
        "--authorization", str(data_dir / AUTHORIZATION_FILE),
        "--database-url", db_url, "--data-dir", str(data_dir),
        env={**os.environ, "CLOUDIAG_NATS_URL": nats_url,
             "CLOUDIAG_NATS_NKEY_SEED_FILE": str(manager_seed_file(data_dir))},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    config = write_config(data_dir / "nats.conf", "127.0.0.1", port, data_dir / "nats")
    nats = subprocess.Popen([find_nats_server(), "-c", str(config)])
    server = None
    client = None
    try:
        made = cloudiag(
            "user", "create", "ops", "--role", "admin", "--json",
            "--database-url", db_url, "--data-dir", str(data_dir),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        server, api_port = start_server(db_url, nats_url, data_dir)
        url = f"http://127.0.0.1:{api_port}"
        Stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "server B")
        admin = json.loads(made.stdout)
        client = Client(url, ApiKey(admin["apikey"], admin["secretkey"]))
        yield agent_config, client
    finally:
        if client is not None:
            client.close()
        stop(server)
        stop(nats)


@pytest.mark.executor("ssh")
def test_an_agent_on_cloudstack_registers_the_hosts_vms_with_its_own_server(
    stack: Stack, tmp_path: Path
) -> None:
    host = _lab_host(stack)
    expected = _expected(stack, host["id"])
    with _management_server(tmp_path, host) as (agent_config, server_b):
        log = (tmp_path / "agent.log").open("w")
        agent = subprocess.Popen(
            [sys.executable, "-m", "cloudiag", "agent", "--config", str(agent_config),
             "--cloudstack-url", stack.url, "--host-name", host["name"],
             "--heartbeat-interval", "1"],
            stdout=log, stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "CLOUDIAG_DATA_DIR": str(tmp_path / "agent"),
                "CLOUDIAG_CLOUDSTACK_API_KEY": stack.admin.apikey,
                "CLOUDIAG_CLOUDSTACK_SECRET_KEY": stack.admin.secretkey,
                "CLOUDIAG_CLOUDSTACK_KEY_FILE": stack.lab["ssh"]["key_file"],
                # The lab's control network is in its hypervisor namespace (a KVM host's
                # cloud0 is in the host's own).
                "CLOUDIAG_CLOUDSTACK_NETNS": stack.lab["ssh"]["hypervisor"],
            },
        )  # fmt: skip
        try:

            def registered() -> bool:
                hosts = server_b.call("listHosts").get("host", [])
                return [(h["id"], h["state"]) for h in hosts] == [(host["id"], "Up")]

            Stack.wait_for(registered, "the agent's host on server B", timeout=30)
            found = (
                server_b.call("listRouters")["router"] + server_b.call("listSystemVms")["systemvm"]
            )
            assert {vm["id"]: (vm["name"], vm["linklocalip"]) for vm in found} == expected
            assert {vm["hostid"] for vm in found} == {host["id"]}
            # Diagnosed through server B, over SSH on the address CloudStack gave.
            router = stack.vm("router")["uuid"]
            jobid = server_b.run_diagnostics(router, "ping", stack.lab["targets"]["web"], "-c 1")
            job = server_b.wait_job(jobid, timeout=60).model_dump(exclude_unset=True)
            assert job["jobstatus"] == 1, job
            assert job["jobresult"]["diagnostics"]["exitcode"] == "0"
            assert "1 received" in job["jobresult"]["diagnostics"]["stdout"]
        finally:
            stop(agent)
            log.close()
