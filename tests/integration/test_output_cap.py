"""The output cap per stream, end to end: the result says it was truncated."""

from __future__ import annotations

import httpx

from tests.integration.stack import Stack, start_server, stop


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
