"""Bad credentials, roles and parameters: the right code, a clear text, and nothing created."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.stack import Stack, cs_signature


def _counts(stack: Stack) -> tuple[int, int]:
    jobs = stack.ok("listAsyncJobs", listall="true").get("count", 0)
    events = stack.ok("listEvents", listall="true").get("count", 0)
    return jobs, events


def _error(r: httpx.Response, code: int) -> str:
    assert r.status_code == code, r.text
    body = next(iter(r.json().values()))
    assert body["errorcode"] == code
    assert body["uuidList"] == []
    assert body["errortext"]
    text: str = body["errortext"]
    return text


def _signed(stack: Stack, params: dict[str, str], secret: str | None = None) -> dict[str, str]:
    query = {"response": "json", "apiKey": stack.admin.apikey, **params}
    query["signature"] = cs_signature(query, secret or stack.admin.secretkey)
    return query


def test_wrong_secret_is_401(stack: Stack) -> None:
    q = _signed(stack, {"command": "listZones"}, secret="not-the-secret")
    r = httpx.get(stack.api, params=q)
    _error(r, 401)
    assert "cserrorcode" not in r.json()["listzonesresponse"]


def test_tampered_parameter_is_401(stack: Stack) -> None:
    q = _signed(stack, {"command": "listRouters", "keyword": "r-1"})
    q["keyword"] = "s-2"
    _error(httpx.get(stack.api, params=q), 401)


def test_unknown_api_key_is_401(stack: Stack) -> None:
    q = _signed(stack, {"command": "listZones"})
    q["apiKey"] = "nobody"
    _error(httpx.get(stack.api, params=q), 401)


def test_no_credentials_is_401(stack: Stack) -> None:
    _error(httpx.get(stack.api, params={"command": "listZones", "response": "json"}), 401)


def test_expired_signature_is_401(stack: Stack) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    q = _signed(stack, {"command": "listZones", "signatureVersion": "3", "expires": past})
    assert "expire" in _error(httpx.get(stack.api, params=q), 401).lower()
    future = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    q = _signed(stack, {"command": "listZones", "signatureVersion": "3", "expires": future})
    assert httpx.get(stack.api, params=q).status_code == 200


def test_user_role_cannot_run_diagnostics(stack: Stack) -> None:
    before = _counts(stack)
    r = stack.call(
        "runDiagnostics",
        stack.user,
        targetid=stack.vm("router")["uuid"],
        type="ping",
        ipaddress=stack.lab["targets"]["web"],
    )
    assert "not allowed" in _error(r, 432)
    assert _counts(stack) == before
    # And listApis does not offer it to that role.
    names = {a["name"] for a in stack.ok("listApis", stack.user)["api"]}
    assert "runDiagnostics" not in names and "listZones" in names


def test_unknown_command_is_432(stack: Stack) -> None:
    r = stack.call("deployVirtualMachine")
    assert r.status_code == 432
    assert r.json()["errorresponse"]["errorcode"] == 432


def test_a_signed_request_without_command_is_432(stack: Stack) -> None:
    query = {"response": "json", "apiKey": stack.admin.apikey}
    query["signature"] = cs_signature(query, stack.admin.secretkey)
    r = httpx.get(stack.api, params=query)
    assert r.status_code == 432
    assert r.json()["errorresponse"]["errortext"] == "Invalid request, no command sent"


def _run(stack: Stack, **params: Any) -> httpx.Response:
    return stack.call("runDiagnostics", **params)


BAD_PARAMS = [
    pytest.param({"targetid": str(uuid.uuid4())}, "Unable to find a system vm", id="unknown-uuid"),
    pytest.param({"targetid": "not-a-uuid"}, "uuid", id="malformed-uuid"),
    pytest.param(
        {"type": "nmap"},
        "nmap Is not a valid diagnostics command type. This VM offers: ping, traceroute, arping",
        id="unknown-type",
    ),
    pytest.param({"type": ""}, "Parameter type must not be empty", id="empty-type"),
    pytest.param({"type": " nmap"}, "Is not a valid diagnostics command type", id="padded-type"),
    pytest.param({"ipaddress": None}, "missing parameter ipaddress", id="missing-ipaddress"),
    pytest.param({"targetid": None}, "missing parameter targetid", id="missing-targetid"),
    pytest.param({"params": "-c 1; id"}, "", id="params-semicolon"),
    pytest.param({"params": "-c 1 | nc"}, "", id="params-pipe"),
    pytest.param({"params": "$(id)"}, "", id="params-subst"),
    pytest.param({"params": "`id`"}, "", id="params-backtick"),
    pytest.param({"params": "-c 1 && id"}, "", id="params-and"),
    pytest.param({"params": "-c 1\nid"}, "", id="params-newline"),
    pytest.param({"params": "-c 1000"}, "", id="params-out-of-range"),
    pytest.param({"params": "-f"}, "-f", id="params-flood"),
    pytest.param({"ipaddress": "-oProxyCommand=id"}, "", id="address-dash"),
    pytest.param({"ipaddress": "--help"}, "", id="address-double-dash"),
    pytest.param({"ipaddress": "198.51.100.10; id"}, "", id="address-semicolon"),
    pytest.param({"ipaddress": "$(reboot)"}, "", id="address-subst"),
    pytest.param({"ipaddress": "a b"}, "", id="address-space"),
    pytest.param({"ipaddress": "http://198.51.100.10/"}, "", id="address-url"),
    pytest.param({"ipaddress": "../../etc/passwd"}, "", id="address-path"),
]


@pytest.mark.parametrize(("override", "text"), BAD_PARAMS)
def test_bad_parameters_are_431_and_create_nothing(
    stack: Stack, override: dict[str, str | None], text: str
) -> None:
    params: dict[str, Any] = {
        "targetid": stack.vm("router")["uuid"],
        "type": "ping",
        "ipaddress": stack.lab["targets"]["web"],
    }
    params.update(override)
    params = {k: v for k, v in params.items() if v is not None}
    before = _counts(stack)
    r = _run(stack, **params)
    errortext = _error(r, 431)
    assert text.lower() in errortext.lower()
    # The parameter concerned, for a form to show the text beside its field.
    assert r.headers.get("x-cloudiag-param") == next(iter(override))
    assert _counts(stack) == before


def test_user_vm_is_refused(stack: Stack) -> None:
    before = _counts(stack)
    r = _run(stack, targetid=stack.vm("uservm")["uuid"], type="ping", ipaddress="198.51.100.10")
    assert "Unable to find a system vm" in _error(r, 431)
    assert _counts(stack) == before


def test_router_only_type_on_ssvm_is_refused(stack: Stack) -> None:
    r = _run(stack, targetid=stack.vm("secondarystoragevm")["uuid"], type="ping6", ipaddress="::1")
    assert "not available" in _error(r, 431)


def test_a_large_body_is_refused_before_authentication(stack: Stack) -> None:
    """Anyone can POST to the API: a body past 64 KiB is answered 413 and not read on."""
    r = httpx.post(
        f"{stack.api}?command=login&response=json",
        data={"username": stack.admin.username, "password": "x" * 100_000},
    )
    assert "larger than 65536 bytes" in _error(r, 413)
    assert r.json()["loginresponse"]["cserrorcode"] == 9999
    # The server is fine, and a normal login still works.
    ok = stack.login(stack.admin.username, stack.admin.password)
    assert ok.status_code == 200, ok.text


@pytest.mark.executor("ssh")
def test_a_name_for_the_cloudstack_script_vm_is_431_and_creates_nothing(stack: Stack) -> None:
    """Over SSH the CPVM runs CloudStack's own script, which would hand a host name to the
    tool unresolved: with denied networks set (the default), the API refuses the name as a
    bad parameter at once, rather than the agent failing the job, and an IP address runs."""
    cpvm = stack.vm("consoleproxy")
    before = _counts(stack)
    r = _run(stack, targetid=cpvm["uuid"], type="ping", ipaddress="web.lab.test")
    assert _error(r, 431) == (
        f"the CloudStack script on {cpvm['name']} cannot check where web.lab.test points "
        "against the denied networks: give an IP address"
    )
    assert r.headers.get("x-cloudiag-param") == "ipaddress"
    assert _counts(stack) == before
    # The same VM takes the address itself, and the SSVM (our zipapp) takes the name.
    web = stack.lab["targets"]["web"]
    assert stack.run("consoleproxy", "ping", web, "-c 1")["jobstatus"] == 1
    assert stack.run("secondarystoragevm", "ping", "web.lab.test", "-c 1")["jobstatus"] == 1
