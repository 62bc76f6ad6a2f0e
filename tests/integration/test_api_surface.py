"""The API beyond runDiagnostics: listApis for cloudmonkey, sessions, lists, XML."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import httpx

from tests.integration.stack import Stack, tool_pids

EXPECTED = {
    "listApis",
    "listCapabilities",
    "login",
    "logout",
    "listZones",
    "listHosts",
    "listSystemVms",
    "listRouters",
    "queryAsyncJobResult",
    "listAsyncJobs",
    "listEvents",
    "runDiagnostics",
}


def test_list_apis_has_the_shape_cloudmonkey_sync_reads(stack: Stack) -> None:
    # cmk sends listall=true; legacy cloudmonkey sends nothing.
    for extra in ({"listall": "true"}, {}):
        body = stack.ok("listApis", **extra)
        apis = body["api"]
        assert body["count"] == len(apis)
        assert {a["name"] for a in apis} >= EXPECTED
        for api in apis:
            assert isinstance(api["name"], str) and isinstance(api["description"], str)
            assert isinstance(api["isasync"], bool)
            assert isinstance(api["since"], str)
            assert isinstance(api["params"], list) and isinstance(api["response"], list)
            # Both clients split the name into verb and noun at the first capital.
            assert re.fullmatch(r"[a-z]+([A-Z][A-Za-z0-9]*)?", api["name"]), api["name"]
            for p in api["params"]:
                assert isinstance(p["name"], str) and isinstance(p["description"], str)
                assert isinstance(p["type"], str) and isinstance(p["required"], bool)
                assert isinstance(p["length"], int) and int(p["length"]) > 0
                assert isinstance(p["since"], str)
            for field in api["response"]:
                assert {"name", "description", "type"} <= set(field)
    run = stack.ok("listApis", name="runDiagnostics")["api"][0]
    assert run["isasync"] is True
    params = {p["name"]: p for p in run["params"]}
    assert params["targetid"]["required"] and params["targetid"]["type"] == "uuid"
    assert params["ipaddress"]["required"] and params["type"]["required"]
    assert not params["params"]["required"]
    # CloudStack's three fields, and the summary beside them.
    assert [f["name"] for f in run["response"]] == ["stdout", "stderr", "exitcode", "parsed"]
    assert "RIPE Atlas" in run["response"][3]["description"]


def test_login_session_needs_cookie_and_key(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url) as web:
        r = web.get(
            "/client/api",
            params={
                "command": "login",
                "username": "tester",
                "password": stack.admin.password,
                "response": "json",
            },
        )
        assert r.status_code == 405
        bad = stack.login("tester", "wrong", web)
        assert bad.status_code == 531
        r = stack.login("tester", stack.admin.password, web)
        assert r.status_code == 200, r.text
        login = r.json()["loginresponse"]
        key = login["sessionkey"]
        assert login["username"] == "tester" and login["type"] == "1"
        assert "JSESSIONID" in web.cookies and web.cookies["sessionkey"] == key
        # Cookie alone (what a cross-site request would carry): refused.
        alone = web.get("/client/api", params={"command": "listZones", "response": "json"})
        assert alone.status_code == 401
        assert "without its session key" in alone.json()["listzonesresponse"]["errortext"]
        # Key alone, without the cookie: refused.
        anon = httpx.get(
            stack.api, params={"command": "listZones", "response": "json", "sessionkey": key}
        )
        assert anon.status_code == 401
        # Both: accepted, by parameter or by header.
        ok = web.get(
            "/client/api", params={"command": "listRouters", "response": "json", "sessionkey": key}
        )
        assert ok.status_code == 200 and ok.json()["listroutersresponse"]["count"] == 1
        ok = web.get(
            "/client/api",
            params={"command": "listZones", "response": "json"},
            headers={"sessionkey": key},
        )
        assert ok.status_code == 200
        out = web.post(
            "/client/api", data={"command": "logout", "response": "json", "sessionkey": key}
        )
        assert out.json() == {"logoutresponse": {"description": "success"}}
        again = web.get(
            "/client/api", params={"command": "listZones", "response": "json", "sessionkey": key}
        )
        assert again.status_code == 401


def test_lists_and_filters(stack: Stack) -> None:
    zones = stack.ok("listZones")
    assert zones["count"] == 1
    zone_id = zones["zone"][0]["id"]
    hosts = stack.ok("listHosts")["host"]
    assert hosts[0]["state"] == "Up" and hosts[0]["zoneid"] == zone_id
    vms = stack.ok("listSystemVms")
    assert vms["count"] == 2
    assert {v["systemvmtype"] for v in vms["systemvm"]} == {"secondarystoragevm", "consoleproxy"}
    ssvm = stack.ok("listSystemVms", systemvmtype="secondarystoragevm")["systemvm"]
    assert [v["name"] for v in ssvm] == [stack.vm("secondarystoragevm")["name"]]
    assert ssvm[0]["publicip"] == stack.vm("secondarystoragevm")["publicaddress"]
    assert (
        stack.ok("listSystemVms", state="Running", hostid=hosts[0]["id"], zoneid=zone_id)["count"]
        == 2
    )
    assert stack.ok("listSystemVms", state="Stopped") == {}
    page = stack.ok("listSystemVms", page=2, pagesize=1)
    assert page["count"] == 2 and len(page["systemvm"]) == 1
    routers = stack.ok("listRouters", keyword="r-")["router"]
    assert routers[0]["guestipaddress"] == stack.vm("router")["guestaddress"]
    assert "ping" in routers[0]["diagnosticstypes"]
    assert stack.call("listSystemVms", systemvmtype="bogus").status_code == 431
    assert stack.call("listSystemVms", page="x").status_code == 431


def test_xml_is_the_default(stack: Stack) -> None:
    r = stack.call("listZones", response="xml")
    assert r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "listzonesresponse"
    assert root.findtext("count") == "1"
    assert root.find("zone/id") is not None


def test_capabilities(stack: Stack) -> None:
    cap = stack.ok("listCapabilities")["capability"]
    assert cap["cloudstackversion"].startswith("4.")


def test_cs_reads_a_cancel_as_a_success(stack: Stack) -> None:
    # cs waits on any answer that carries a jobid: on a cancel's, it waited on the job just
    # cancelled, which ends failed, and printed "Job failure" and exited 1.
    # Not the CPVM: over SSH its CloudStack script cannot stop its tool, which would ping on
    # for 30 s after the cancel.
    vm = stack.vm("secondarystoragevm")
    jobid = stack.start_job(
        "secondarystoragevm", "ping", stack.lab["targets"]["web"], "-c 60 -i 0.5"
    )
    stack.wait_for(lambda: bool(tool_pids(vm["namespace"], "ping")), "ping to run on the VM")
    env = {
        **os.environ,
        "CLOUDSTACK_ENDPOINT": stack.api,
        "CLOUDSTACK_KEY": stack.admin.apikey,
        "CLOUDSTACK_SECRET": stack.admin.secretkey,
    }
    cs = subprocess.run(
        [sys.executable, "-m", "cs", "cancelDiagnostics", f"jobid={jobid}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cs.returncode == 0, cs.stdout + cs.stderr
    assert "failure" not in (cs.stdout + cs.stderr).lower()
    answer = json.loads(cs.stdout)
    assert answer["success"] is True and jobid in answer["displaytext"]
    job = stack.wait_job(jobid, timeout=10)
    assert job["jobstatus"] == 2 and job["jobresult"]["cancelled"] is True
