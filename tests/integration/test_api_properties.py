"""Property-based checks of runDiagnostics over HTTP: whatever the parameters, the answer is
an accepted job or a 431 that created nothing, never a server error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.stack import Stack

ALPHABET = st.sampled_from(list("-cCiIwWmqsnt46 0123456789.;|&$`'\"\\\n\t*?/:@eth"))
PARAMS = st.text(ALPHABET, max_size=24)
ADDRESSES = st.one_of(
    st.sampled_from(["198.51.100.10", "web.lab.test", "203.0.113.1", "192.0.2.100"]),
    st.text(st.sampled_from(list("0123456789.:abcdef-;$ /\n")), min_size=0, max_size=20),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(params=PARAMS, address=ADDRESSES, type_=st.sampled_from(["ping", "traceroute", "arping"]))
def test_any_input_is_a_job_or_a_clean_431(
    stack: Stack, params: str, address: str, type_: str
) -> None:
    before = stack.ok("listAsyncJobs", listall="true").get("count", 0)
    r = stack.call(
        "runDiagnostics",
        targetid=stack.vm("router")["uuid"],
        type=type_,
        ipaddress=address,
        params=params,
    )
    after = stack.ok("listAsyncJobs", listall="true").get("count", 0)
    assert r.status_code in (200, 431), r.text
    body = r.json()["rundiagnosticsresponse"]
    if r.status_code == 431:
        assert body["errortext"] and after == before
        return
    assert after == before + 1
    # Valid but possibly long (-c 90): stop it, and it must still end cleanly.
    stack.call("cancelDiagnostics", jobid=body["jobid"])
    job = stack.wait_job(body["jobid"], timeout=30)
    assert job["jobstatus"] in (1, 2)
