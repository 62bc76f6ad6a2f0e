"""getDiagnosticsData on the server: the first wall, the storage threshold, the signed links,
the garbage collector, and the agent's reassembly of the zip."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudiag.agent.executors.collect import Collector
from cloudiag.domain import InvalidInput
from cloudiag.jobs.data_archive import DataArchives
from cloudiag.services.diagnostics_data import check_files, storage_refusal
from cloudiag.settings import Settings
from cloudiag.sysvm import collect
from cloudiag.sysvm.framing import Record

JOB = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"
USER = "0b1c2d3e-4f50-4a6b-8c7d-8e9f0a1b2c3d"
OTHER = "1c2d3e4f-5061-4b7c-9d8e-9fa0b1c2d3e4"


def _archives(tmp_path: Path, max_age: int = 3600) -> DataArchives:
    return DataArchives(tmp_path / "zips", b"k" * 32, max_age)


def _link(archives: DataArchives, now: float | None = None) -> dict[str, str]:
    query = archives.url(JOB, USER, now).split("?", 1)[1]
    return dict(part.split("=", 1) for part in query.split("&"))


def test_defaults_per_vm_type_are_cloudstacks() -> None:
    router = check_files(None, "domainrouter", collect.DEFAULT_ROOTS)
    assert router[:4] == ["iptables", "ipaddr", "iprule", "iproute"]
    assert "/etc/dnsmasq.conf" in router and "/etc/haproxy/haproxy.cfg" in router
    ssvm = check_files(None, "secondarystoragevm", collect.DEFAULT_ROOTS)
    assert "/usr/local/cloud/systemvm/conf/agent.properties" in ssvm
    assert "/etc/dnsmasq.conf" not in ssvm
    assert check_files(None, "consoleproxy", collect.DEFAULT_ROOTS) == ssvm


@pytest.mark.parametrize(
    "files", ["../etc/shadow", "/etc/hosts,/dev/mem", "[x/y]", "/var/tmp/a", "/etc/a\nb"]
)
def test_the_server_refuses_hostile_lists_naming_files(files: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_files(files, "domainrouter", collect.DEFAULT_ROOTS)
    assert refused.value.param == "files"


def test_a_list_is_split_on_commas_and_kept_in_order() -> None:
    assert check_files(" /etc/hosts , ipaddr,,[netusage.sh] ", "domainrouter", ("/etc",)) == [
        "/etc/hosts",
        "ipaddr",
        "[netusage.sh]",
    ]


def test_retrieval_is_refused_above_the_disk_threshold(tmp_path: Path) -> None:
    assert "disk usage above threshold" in storage_refusal(tmp_path / "d", 1e-9)
    assert storage_refusal(tmp_path / "d", 1.0) == ""


def test_a_link_is_valid_for_its_user_until_it_expires(tmp_path: Path) -> None:
    archives = _archives(tmp_path)
    now = time.time()
    link = _link(archives, now)
    assert link["user"] == USER
    assert archives.refusal(JOB, USER, link["until"], link["token"], now) == ""
    # Another user's id, another job, a changed expiry or token: not this link.
    assert archives.refusal(JOB, OTHER, link["until"], link["token"], now)
    assert archives.refusal(OTHER, USER, link["until"], link["token"], now)
    assert archives.refusal(JOB, USER, str(int(link["until"]) + 1), link["token"], now)
    assert archives.refusal(JOB, USER, "soon", link["token"], now)
    assert "expired" in archives.refusal(JOB, USER, link["until"], link["token"], now + 3601)
    # Another server key signs other links.
    other_key = DataArchives(archives.directory, b"o" * 32, 3600)
    assert other_key.refusal(JOB, USER, link["until"], link["token"], now)


def test_the_garbage_collector_removes_only_zips_past_their_age(tmp_path: Path) -> None:
    archives = _archives(tmp_path, max_age=600)
    archives.directory.mkdir()
    old, new = archives.path(JOB), archives.path(OTHER)
    old.write_bytes(b"PK")
    new.write_bytes(b"PK")
    past = time.time() - 601
    os.utime(old, (past, past))
    assert archives.collect_garbage() == 1
    assert not old.exists() and new.exists()
    assert _archives(tmp_path / "none").collect_garbage() == 0


def test_a_path_is_made_of_a_job_id_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _archives(tmp_path).path("../../etc/passwd")


def test_the_settings_refuse_a_root_that_holds_device_files() -> None:
    with pytest.raises(ValidationError):
        Settings(diagnostics_data_roots=["/"])
    with pytest.raises(ValidationError):
        Settings(diagnostics_data_roots=["/dev"])
    assert Settings().diagnostics_data_roots == list(collect.DEFAULT_ROOTS)


def _pieces(sink: Collector, *pieces: str) -> None:
    async def feed() -> None:
        for piece in pieces:
            await sink.record(Record("zip", piece, None, "job"))

    asyncio.run(feed())


def test_the_agent_puts_the_pieces_together_apart_from_the_output() -> None:
    sink = Collector(1024, None, max_archive=100)
    _pieces(sink, base64.b64encode(b"PK" * 10).decode(), base64.b64encode(b"x").decode())
    assert sink.archive == b"PK" * 10 + b"x"
    assert sink.text("stdout") == "" and sink.archive_error == ""


def test_the_agent_refuses_a_zip_beyond_its_cap_or_not_base64() -> None:
    big = Collector(1024, None, max_archive=10)
    _pieces(big, base64.b64encode(b"y" * 11).decode())
    assert big.archive == b"" and "more than 10 bytes" in big.archive_error
    junk = Collector(1024, None, max_archive=10)
    _pieces(junk, "not base64!")
    assert junk.archive == b"" and "not base64" in junk.archive_error
