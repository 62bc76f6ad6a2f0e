"""The system VM's wall for getDiagnosticsData: what collect.py refuses, reads and zips."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

from cloudiag.sysvm import collect
from cloudiag.sysvm.errors import DiagnosticsInputError
from cloudiag.sysvm.framing import RecordWriter, decode_record
from cloudiag.sysvm.orphans import Guardian
from cloudiag.sysvm.session import Session


def _records(out: bytes) -> list[tuple[str, str, int | None]]:
    records = [decode_record(line) for line in out.splitlines()]
    return [(r.stream, r.data, r.code) for r in records if r is not None]


def _run(words: list[str]) -> tuple[int, list[tuple[str, str, int | None]]]:
    out = io.BytesIO()
    code = collect.run(words, RecordWriter(out))
    return code, _records(out.getvalue())


def _zip_of(records: list[tuple[str, str, int | None]]) -> zipfile.ZipFile:
    data = b"".join(base64.b64decode(d) for s, d, _ in records if s == "zip")
    return zipfile.ZipFile(io.BytesIO(data))


def _words(root: Path, *items: str, max_file: int = 1 << 20, max_zip: int = 4 << 20) -> list[str]:
    return collect.collect_arguments(items, [str(root)], max_file, max_zip)[1:]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "etc"
    (tree / "dnsmasq.d").mkdir(parents=True)
    (tree / "dnsmasq.conf").write_text("interface=eth0\n")
    (tree / "dnsmasq.d" / "cloud.conf").write_text("dhcp-range=192.0.2.10,192.0.2.99\n")
    (tmp_path / "secret").write_text("outside the roots\n")
    return tree


HOSTILE = [
    "../etc/passwd",
    "/etc/../root/.ssh/id_rsa",
    "/etc/./passwd",
    "/etc//passwd",
    "/dev/sda",
    "/proc/self/environ",
    "/sys/kernel/notes",
    "/root/.ssh/id_rsa",
    "etc/passwd",
    "/etc/pass\x00wd",
    "/etc/hosts\n/etc/shadow",
    "/etc/" + "a" * 300,
    "[a/b]",
    "[../x]",
    "[..]",
    "[]",
    "[name",
    "-rf",
    "",
]


@pytest.mark.parametrize("item", HOSTILE)
def test_hostile_items_are_refused_by_the_vm(item: str) -> None:
    with pytest.raises(DiagnosticsInputError) as refused:
        collect.check_items([item], collect.DEFAULT_ROOTS)
    assert refused.value.field == "files"


def test_a_hostile_item_refuses_the_whole_run_with_nothing_collected(root: Path) -> None:
    code, records = _run(_words(root, f"{root}/dnsmasq.conf", f"{root}/../secret"))
    assert code == 2
    assert [s for s, _, _ in records] == ["refused", "exit"]
    assert "'..'" in records[0][1]


def test_too_many_items_are_refused() -> None:
    items = [f"/etc/file{n}" for n in range(collect.MAX_ITEMS + 1)]
    with pytest.raises(DiagnosticsInputError, match="at most"):
        collect.check_items(items, collect.DEFAULT_ROOTS)


@pytest.mark.parametrize("root", ["/", "/dev", "/proc/sys", "relative", "/etc/../dev", "/a//b"])
def test_bad_roots_are_refused(root: str) -> None:
    with pytest.raises(DiagnosticsInputError):
        collect.check_roots([root])


def test_unknown_options_and_caps_beyond_the_ceiling_are_refused(root: Path) -> None:
    for words in (
        ["--shell", "x", "--", "/etc/hosts"],
        ["--max-file", str(collect.MAX_FILE_LIMIT + 1), "--", "/etc/hosts"],
        ["--max-zip", "-1", "--", "/etc/hosts"],
        ["/etc/hosts"],
    ):
        code, records = _run(words)
        assert (code, records[0][0]) == (2, "refused"), words


def test_files_are_zipped_under_their_paths_with_a_fileinfo(root: Path) -> None:
    code, records = _run(
        _words(root, f"{root}/dnsmasq.conf", f"{root}/dnsmasq.d/cloud.conf", f"{root}/absent")
    )
    assert code == 0
    assert records[-1] == ("exit", "", 0)
    archive = _zip_of(records)
    assert archive.read(f"{root}/dnsmasq.conf".lstrip("/")) == b"interface=eth0\n"
    assert b"dhcp-range" in archive.read(f"{root}/dnsmasq.d/cloud.conf".lstrip("/"))
    info = archive.read(collect.INFO_NAME).decode()
    assert f"{root}/dnsmasq.conf: collected as" in info
    assert f"{root}/absent: MISSING (not found)" in info


def test_a_symlink_out_of_the_roots_is_not_followed(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret")
    (root / "inside").symlink_to(root / "dnsmasq.conf")
    _, records = _run(_words(root, f"{root}/escape", f"{root}/inside"))
    archive = _zip_of(records)
    names = archive.namelist()
    assert f"{root}/escape".lstrip("/") not in names
    assert archive.read(f"{root}/inside".lstrip("/")) == b"interface=eth0\n"
    info = archive.read(collect.INFO_NAME).decode()
    assert "escape: MISSING (refused: it resolves to" in info
    assert b"outside the roots" not in b"".join(archive.read(n) for n in names)


def test_devices_fifos_sockets_and_directories_are_never_read(root: Path) -> None:
    (root / "null").symlink_to("/dev/null")
    os.mknod(root / "zero", 0o600 | 0o020000, os.makedev(1, 5))  # a character device
    os.mkfifo(root / "fifo")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "sock"))
    try:
        items = [f"{root}/{name}" for name in ("null", "zero", "fifo", "sock", "dnsmasq.d")]
        # A FIFO opened for reading would block the collection: it must end at once.
        code, records = _run(_words(root, *items))
    finally:
        listener.close()
    info = _zip_of(records).read(collect.INFO_NAME).decode()
    assert code == 0
    assert info.count("MISSING (refused: not a regular file)") == 4
    assert f"{root}/null: MISSING (refused: it resolves to /dev/null" in info


def test_size_caps_per_file_and_per_zip(root: Path) -> None:
    (root / "big.log").write_bytes(os.urandom(40_000))
    (root / "other.log").write_bytes(os.urandom(40_000))
    _, records = _run(
        _words(root, f"{root}/big.log", f"{root}/other.log", max_file=30_000, max_zip=50_000)
    )
    archive = _zip_of(records)
    assert len(archive.read(f"{root}/big.log".lstrip("/"))) == 30_000
    info = archive.read(collect.INFO_NAME).decode()
    assert "(truncated at 30000 bytes)" in info
    assert "other.log: MISSING (the zip would exceed 50000 bytes)" in info
    assert sum(len(base64.b64decode(d)) for s, d, _ in records if s == "zip") <= 50_000


def test_keywords_run_their_commands_and_a_missing_script_is_noted(root: Path) -> None:
    _, records = _run(_words(root, "ipaddr", "iproute", "[no-such-script]"))
    archive = _zip_of(records)
    assert b"lo" in archive.read("ipaddr.txt")
    assert "iproute.txt" in archive.namelist()
    info = archive.read(collect.INFO_NAME).decode()
    assert "[no-such-script]: MISSING (not found)" in info


def test_a_collection_runs_in_a_warm_session_and_sends_its_zip_in_pieces(root: Path) -> None:
    (root / "big.log").write_bytes(os.urandom(3 * collect.CHUNK))
    out = io.BytesIO()
    session = Session(RecordWriter(out), 4, guardian=Guardian())
    args = ["collect", *_words(root, f"{root}/big.log")]
    session.handle(json.dumps({"op": "run", "j": "job-1", "args": args}).encode() + b"\n")
    for _ in range(200):
        if not session.running():
            break
        time.sleep(0.05)
    records = [decode_record(line) for line in out.getvalue().splitlines()]
    pieces = [r for r in records if r is not None and r.stream == "zip"]
    assert len(pieces) >= 3 and all(r.job == "job-1" for r in pieces)
    assert records[-1] is not None and (records[-1].stream, records[-1].code) == ("exit", 0)
    archive = _zip_of([(r.stream, r.data, r.code) for r in pieces])
    assert len(archive.read(f"{root}/big.log".lstrip("/"))) == 3 * collect.CHUNK


def test_a_stopped_collection_notes_what_it_left_out(root: Path) -> None:
    stop = threading.Event()
    stop.set()
    req = collect.parse_arguments(_words(root, f"{root}/dnsmasq.conf"))
    archive = zipfile.ZipFile(io.BytesIO(collect.build_zip(req, stop)))
    assert "MISSING (cancelled)" in archive.read(collect.INFO_NAME).decode()


def test_a_directory_swapped_for_a_symlink_after_the_check_is_caught_at_the_open(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if a directory of the path became a symlink out of the roots right after
    # realpath looked: lstat and open both follow it, the opened file's real path does not lie.
    (root / "swapped").symlink_to(root.parent)
    monkeypatch.setattr(collect.os.path, "realpath", lambda path: str(path))
    _, records = _run(_words(root, f"{root}/swapped/secret"))
    archive = _zip_of(records)
    assert archive.namelist() == [collect.INFO_NAME]
    info = archive.read(collect.INFO_NAME).decode()
    assert f"refused: it was opened as {root.parent}/secret, outside the allowed roots" in info
