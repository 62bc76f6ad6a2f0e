"""The output cap per stream, end to end: the result says it was truncated."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.integration.stack import Stack, start_server, stop
from tests.integration.vm_files import vm_file


def test_output_beyond_the_cap_is_dropped_and_flagged(stack: Stack) -> None:
    proc, port = start_server(
        stack.database_url,
        stack.nats_url,
        stack.data_dir,
        "capped.log",
        {"CLOUDIAG_MAX_OUTPUT": "1024"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API")
        r = stack.call_at(
            url,
            "runDiagnostics",
            targetid=stack.vm("router")["uuid"],
            type="ping",
            ipaddress=stack.lab["targets"]["web"],
            params="-c 20 -i 0.2",
        )
        job = stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])
    finally:
        stop(proc)
    diag = job["jobresult"]["diagnostics"]
    assert diag["truncated"] is True
    assert diag["exitcode"] == "0"  # the tool ran to its end; only the text was cut
    assert len(diag["stdout"].encode()) <= 1024
    assert diag["stdout"].startswith("PING ")
    assert "output truncated at 1024 bytes" in diag["stderr"]


def test_a_result_at_the_default_cap_gets_through_the_bus(stack: Stack, tmp_path: Path) -> None:
    """Both streams of a result travel in one NATS message: one at the 1 MiB cap must fit."""
    # A stand-in for ping: 3 MiB of reply lines, no packet sent.
    fake = (
        "#!/bin/sh\nyes '64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.1 ms' "
        "| head -c 3145728\n"
    )
    if stack.executor == "ssh":
        # Over SSH the tool runs with the VM's own PATH: the stand-in is the VM's ping.
        with vm_file(stack.prefix, stack.vm("router")["name"], "/usr/bin/ping", fake):
            job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    else:
        # The netns executor's tools inherit the agent's PATH: the stand-in comes first.
        tools = tmp_path / "bin"
        tools.mkdir()
        (tools / "ping").write_text(fake)
        (tools / "ping").chmod(0o755)
        stack.stop_agent()
        try:
            stack.start_agent(env={"PATH": f"{tools}:{os.environ['PATH']}"})
            job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
        finally:
            stack.stop_agent()
            stack.start_agent()
    assert job["jobstatus"] == 1, job
    diag = job["jobresult"]["diagnostics"]
    assert diag["truncated"] is True
    assert diag["exitcode"] == "0"
    assert len(diag["stdout"].encode()) == 1 << 20
    assert diag["stdout"].startswith("64 bytes from 198.51.100.10")
