"""getDiagnosticsData end to end: cs starts it and polls it, the zip is downloaded from its
signed URL and its members checked; the URL refuses anyone else, a bad or expired link; a
hostile file list is refused with 431 before anything runs."""

from __future__ import annotations

import io
import time
import zipfile
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cs import CloudStack

from cloudiag.accounts import secret_box
from cloudiag.jobs.data_archive import DataArchives
from cloudiag.lab.topology import CLOUDSTACK_SCRIPT_VM
from tests.integration.stack import Account, Stack, cs_signature

ROLES = ["router", "secondarystoragevm", "consoleproxy"]


def _cs(stack: Stack) -> CloudStack:
    return CloudStack(
        endpoint=stack.api,
        key=stack.admin.apikey,
        secret=stack.admin.secretkey,
        fetch_result=True,
        poll_interval=0.2,
        job_timeout=120,
    )


def _download(url: str, account: Account | None, **extra: str) -> httpx.Response:
    """GET the link, signed with the account's API key as a CloudStack client signs."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    params.update(extra)
    if account is not None:
        params["apiKey"] = account.apikey
        params["signature"] = cs_signature(params, account.secretkey)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return httpx.get(base, params=params, timeout=30)


def _zip(response: httpx.Response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


def _address(stack: Stack, role: str) -> str:
    """The VM's public address, as the lab reports it."""
    return str(stack.vm(role)["publicaddress"])


@pytest.mark.parametrize("role", ROLES)
def test_cs_gets_the_default_files_as_a_zip(stack: Stack, role: str) -> None:
    if _runs_cloudstack_script(stack, role):
        pytest.skip("over SSH this VM runs CloudStack's script (see the test of its refusal)")
    result = _cs(stack).getDiagnosticsData(targetid=stack.vm(role)["uuid"])
    assert set(result) == {"diagnostics"} and set(result["diagnostics"]) == {"url"}
    url = result["diagnostics"]["url"]
    assert url.startswith(stack.url + "/client/diagnosticsdata/")
    archive = _zip(_download(url, stack.admin))
    names = set(archive.namelist())
    assert {"fileinfo.txt", "ipaddr.txt", "iproute.txt", "iprule.txt"} <= names
    # The VM's own network state: its namespace's addresses, not the machine's.
    assert _address(stack, role) in archive.read("ipaddr.txt").decode()
    info = archive.read("fileinfo.txt").decode()
    # Every default item is accounted for, found or missing.
    assert "/var/log/cloud.log: " in info and "iptables: " in info
    assert info.count("\n") >= 10
    if stack.lab.get("ssh") is None:
        return  # Without sshd the lab's VMs have no mount namespace: no files of their own.
    # The VM's own files, from its mount namespace (lab/vm_files.py), on either executor.
    name = stack.vm(role)["name"]
    own = ["var/log/cloud.log", "var/log/daemon.log"]
    if role == "router":
        own += ["etc/dnsmasq.conf", "etc/dnsmasq.d/cloud.conf", "etc/haproxy/haproxy.cfg"]
    else:
        own += ["usr/local/cloud/systemvm/conf/agent.properties"]
    for member in own:
        assert f"# {name}: a cloudiag lab system VM" in archive.read(member).decode(), member
    assert archive.read("etc/cloudstack-release").decode().startswith("Cloudstack Release")


def _runs_cloudstack_script(stack: Stack, role: str) -> bool:
    return stack.executor == "ssh" and stack.vm(role)["name"] == CLOUDSTACK_SCRIPT_VM


@pytest.mark.executor("ssh")
def test_a_vm_with_cloudstacks_script_is_refused_plainly(stack: Stack) -> None:
    vm = next(v for v in stack.lab["namespaces"] if v["name"] == CLOUDSTACK_SCRIPT_VM)
    response = stack.call("getDiagnosticsData", targetid=vm["uuid"])
    assert response.status_code == 431
    assert "CloudStack's own script" in response.json()["getdiagnosticsdataresponse"]["errortext"]


def test_a_chosen_list_holds_only_what_was_asked(stack: Stack) -> None:
    result = _cs(stack).getDiagnosticsData(
        targetid=stack.vm("router")["uuid"], files="iproute,/etc/hosts,/etc/no-such-file"
    )
    archive = _zip(_download(result["diagnostics"]["url"], stack.admin))
    assert set(archive.namelist()) == {"iproute.txt", "etc/hosts", "fileinfo.txt"}
    info = archive.read("fileinfo.txt").decode()
    assert "/etc/no-such-file: MISSING (not found)" in info
    assert "/etc/hosts: collected as etc/hosts" in info


def test_the_url_is_for_its_user_only_signed_and_expiring(stack: Stack) -> None:
    result = _cs(stack).getDiagnosticsData(targetid=stack.vm("router")["uuid"], files="ipaddr")
    url = result["diagnostics"]["url"]
    assert _download(url, None).status_code == 401  # no credentials
    assert _download(url, stack.user).status_code == 432  # another user
    assert _download(url, stack.admin, token="0" * 64).status_code == 401  # tampered
    # A link signed with the server's key, but past its time.
    job_id = urlsplit(url).path.rsplit("/", 1)[-1].removesuffix(".zip")
    key = secret_box.load_or_create(stack.data_dir / "secrets.key").derive("diagnostics-data-url")
    archives = DataArchives(stack.data_dir, key, max_age=60)
    user = dict(parse_qsl(urlsplit(url).query))["user"]
    old = archives.url(job_id, user, now=time.time() - 120)
    expired = _download(stack.url + old, stack.admin)
    assert expired.status_code == 401 and "expired" in expired.text
    fresh = archives.url(job_id, user)
    assert _zip(_download(stack.url + fresh, stack.admin)).namelist()


HOSTILE = [
    "../../etc/shadow",
    "/etc/../root/.ssh/id_rsa",
    "/root/.ssh/id_rsa",
    "/dev/sda",
    "/proc/self/environ",
    "/etc/hosts\n/etc/shadow",
    "[../../bin/sh]",
    "[a/b]",
    "/etc/" + "x" * 300,
    ",".join(f"/etc/f{n}" for n in range(100)),
]


@pytest.mark.parametrize("files", HOSTILE)
def test_hostile_file_lists_are_refused_with_431(stack: Stack, files: str) -> None:
    before = stack.agent_status().spawned
    response = stack.call("getDiagnosticsData", targetid=stack.vm("router")["uuid"], files=files)
    assert response.status_code == 431, response.text
    body = response.json()["getdiagnosticsdataresponse"]
    assert body["errorcode"] == 431
    assert stack.agent_status().spawned == before


def test_listapis_declares_it_as_cloudstack_does(stack: Stack) -> None:
    api = stack.ok("listApis", name="getDiagnosticsData")["api"][0]
    assert api["isasync"] is True
    assert {p["name"]: p["required"] for p in api["params"]} == {"targetid": True, "files": False}
    assert [r["name"] for r in api["response"]] == ["url"]
