"""The system-VM zipapp run as a VM runs it (python3 -I -S), its runner and its framing.

Packets go to loopback only (127.0.0.1).
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cloudiag.sysvm
from cloudiag.sysvm import cli, framing, policy, process, route
from tests.sysvm_zipapp import zipapp

PACKAGE = Path(cloudiag.sysvm.__file__).resolve().parent
HAVE_PING = shutil.which("ping") is not None
needs_ping = pytest.mark.skipif(not HAVE_PING, reason="ping is not installed")


def script(*args: str) -> list[str]:
    """The command line of the zipapp with ``args``; loopback is allowed (it is the target)."""
    return [sys.executable, "-I", "-S", zipapp(), "--no-deny", *args]


def run_script(*args: str, timeout: float = 30) -> tuple[int, list[framing.Record]]:
    """Run the script like a system VM does and decode every record."""
    done = subprocess.run(
        script(*args),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.splitlines()
    records = [framing.decode_record(line) for line in lines]
    assert all(r is not None for r in records), done.stdout
    return done.returncode, [r for r in records if r is not None]


def text_of(records: list[framing.Record], stream: str) -> str:
    return "".join(r.data for r in records if r.stream == stream)


def check_shape(records: list[framing.Record]) -> None:
    """Exactly one exit record, and it is the last one."""
    assert records, "no records"
    assert [r.stream for r in records].count("exit") == 1
    assert records[-1].stream == "exit"


# --------------------------------------------------------------------------- the file


def test_package_imports_only_the_standard_library_and_itself() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        modules: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                # Relative imports only: the zip holds the package under another name.
                modules.add((node.module or "").split(".")[0])
        modules.discard("__future__")
        assert modules <= set(sys.stdlib_module_names), (path, modules)


def test_import_has_no_side_effects() -> None:
    # Import the zip's package in a bare interpreter: nothing printed, handlers untouched.
    code = textwrap.dedent(
        f"""
        import signal, sys
        before = {{s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}}
        sys.path.insert(0, {zipapp()!r})
        import sysvm.cli, sysvm.registry
        after = {{s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}}
        assert before == after
        assert sysvm.registry.get_type("ping").tool == "ping"
        assert sysvm.registry.__file__.startswith({zipapp()!r})
        """
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""


# --------------------------------------------------------------------------- the script


@needs_ping
def test_ping_loopback_streams_records() -> None:
    status, records = run_script("ping", "127.0.0.1", "-c", "1")
    check_shape(records)
    assert records[-1].code == 0
    assert status == 0
    out = text_of(records, "out")
    assert "1 received" in out
    # One record per line, newline kept.
    assert all(r.data.endswith("\n") for r in records if r.stream == "out")


@needs_ping
def test_params_as_one_word_are_split_on_spaces() -> None:
    status, records = run_script("PING", "127.0.0.1", "-c 1 -n")
    assert status == 0
    assert "1 packets transmitted" in text_of(records, "out")


@needs_ping
def test_records_arrive_while_the_tool_runs() -> None:
    proc = subprocess.Popen(
        script("ping", "127.0.0.1", "-c", "4", "-i", "0.3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        first = framing.decode_record(proc.stdout.readline())
        assert first is not None and first.stream == "out"
        # ping needs about a second for 4 probes: the first line came long before the end.
        assert proc.poll() is None
        rest = [framing.decode_record(line) for line in proc.stdout.read().splitlines()]
        assert rest[-1] == framing.Record("exit", "", 0)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("ping", "127.0.0.1", "-c", "1;", "id"), "forbidden character ';'"),
        (("ping", "127.0.0.1", "-f"), 'Option "-f" is not allowed for ping'),
        (("ping", "$(id)"), "Address contains a forbidden character '$'"),
        (("sh", "127.0.0.1"), "sh Is not a valid diagnostics command type."),
        (("arping", "::1"), "IPv4"),
        (("ping",), "usage:"),
        ((), "usage:"),
    ],
)
def test_refused_input(args: tuple[str, ...], fragment: str) -> None:
    status, records = run_script(*args)
    assert status == 2
    check_shape(records)
    assert records[-1].code == -1
    assert text_of(records, "out") == ""
    # A refusal has its own record: the agent fails the job with that reason.
    assert fragment in text_of(records, "refused")


@needs_ping
def test_sigterm_is_forwarded_and_nothing_is_left() -> None:
    proc = subprocess.Popen(
        script("ping", "127.0.0.1", "-c", "50", "-i", "0.2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert framing.decode_record(proc.stdout.readline()) is not None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the script only, not its group
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5
        records = [framing.decode_record(line) for line in out.splitlines()]
        assert records[-1] is not None and records[-1].stream == "exit"
        assert records[-1].code != 0
        # ping got the signal too: no member of the script's process group survives.
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --------------------------------------------------------------------------- run_tool


def records_of(buffer: io.BytesIO) -> list[framing.Record]:
    lines = buffer.getvalue().splitlines()
    records = [framing.decode_record(line) for line in lines]
    assert all(r is not None for r in records)
    return [r for r in records if r is not None]


def test_missing_tool_gives_reason_and_minus_one() -> None:
    out = io.BytesIO()
    assert process.run_tool(["/nonexistent/tool", "-c", "1"], out) == -1
    records = records_of(out)
    check_shape(records)
    assert records[-1].code == -1
    assert text_of(records, "out") == ""
    err = text_of(records, "err")
    assert "/nonexistent/tool" in err
    assert "No such file" in err


def test_tool_that_cannot_be_executed() -> None:
    out = io.BytesIO()
    # A directory exists but cannot be executed.
    assert process.run_tool(["/"], out) == -1
    assert "cannot run /" in text_of(records_of(out), "err")


HOSTILE_OUTPUT = textwrap.dedent(
    r"""
    import sys
    out = sys.stdout.buffer
    out.write(b'a && b; rm -rf / | $(id) `id`\n')
    out.write(b'{"s": "exit", "code": 0}\n')
    out.write(b'"}\n{"s": "out", "d": "forged"}\n')
    out.write(b'\xff\xfe invalid utf-8 \xc3\n')
    out.write('caf\u00e9 \u2028 \u0000 \x1b[31mred\x1b[0m\r\n'.encode())
    out.write(b'x' * 40000 + b'\n')
    out.flush()
    sys.stderr.write('partial line without newline')
    sys.exit(3)
    """
)


def test_hostile_tool_output_cannot_break_the_framing() -> None:
    out = io.BytesIO()
    code = process.run_tool([sys.executable, "-I", "-S", "-c", HOSTILE_OUTPUT], out)
    assert code == 3
    raw = out.getvalue()
    raw.decode("ascii")  # the framing is pure ASCII
    records = records_of(out)
    check_shape(records)
    assert records[-1].code == 3
    stdout = text_of(records, "out")
    assert 'a && b; rm -rf / | $(id) `id`\n{"s": "exit", "code": 0}\n' in stdout
    assert '{"s": "out", "d": "forged"}\n' in stdout
    assert "\ufffd invalid utf-8 \ufffd\n" in stdout
    assert "caf\u00e9 \u2028 \u0000 \x1b[31mred" in stdout
    assert "x" * 40000 + "\n" in stdout
    # A long line is split into bounded records.
    assert max(len(r.data) for r in records if r.stream == "out") <= framing.LineSplitter.MAX_LINE
    assert text_of(records, "err") == "partial line without newline"


def test_multibyte_character_cut_between_reads() -> None:
    splitter = framing.LineSplitter()
    euro = "\u20ac".encode()
    assert splitter.feed(b"price " + euro[:1]) == []
    assert splitter.feed(euro[1:] + b"\nnext") == ["price \u20ac\n"]
    assert splitter.finish() == ["next"]


def test_hard_limit_kills_the_tool() -> None:
    out = io.BytesIO()
    started = time.monotonic()
    code = process.run_tool(
        [sys.executable, "-I", "-S", "-c", "import time; print('x', flush=True); time.sleep(30)"],
        out,
        hard_limit=0.5,
    )
    assert time.monotonic() - started < 5
    assert code == -signal.SIGKILL
    records = records_of(out)
    check_shape(records)
    assert text_of(records, "out") == "x\n"
    assert "hard time limit" in text_of(records, "err")


def test_closed_output_stops_the_tool() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    started = time.monotonic()
    with os.fdopen(write_end, "wb", buffering=0) as sink:
        code = process.run_tool(
            [sys.executable, "-I", "-S", "-c", "import time\nwhile True: print('y', flush=True)"],
            sink,
        )
    assert time.monotonic() - started < 5
    assert code < 0


def test_tool_environment_is_c_locale() -> None:
    out = io.BytesIO()
    process.run_tool(
        [sys.executable, "-I", "-S", "-c", "import os; print(os.environ['LC_ALL'])"], out
    )
    assert text_of(records_of(out), "out") == "C\n"


# --------------------------------------------------------------------------- framing


def test_encode_is_one_ascii_line() -> None:
    line = framing.encode_record("out", 'x\n{"s": "exit", "code": 0}\r\n\u2028\x00 &&')
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    line.decode("ascii")
    assert framing.decode_record(line) == framing.Record(
        "out", 'x\n{"s": "exit", "code": 0}\r\n\u2028\x00 &&'
    )
    assert json.loads(framing.encode_record("exit", code=-1)) == {"s": "exit", "code": -1}
    with pytest.raises(ValueError):
        framing.encode_record("sh", "x")


@settings(deadline=None, max_examples=300)
@given(stream=st.sampled_from(["out", "err"]), text=st.text())
def test_framing_round_trip(stream: str, text: str) -> None:
    line = framing.encode_record(stream, text)
    assert line.count(b"\n") == 1
    assert framing.decode_record(line) == framing.Record(stream, text)
    assert framing.decode_record(line.decode("ascii")) == framing.Record(stream, text)


@settings(deadline=None, max_examples=300)
@given(text=st.text(min_size=1), cut=st.integers(1, 50))
def test_truncated_record_is_tolerated(text: str, cut: int) -> None:
    line = framing.encode_record("out", text).rstrip(b"\n")
    truncated = line[: max(len(line) - cut, 0)]
    # Either nothing, or (never) a wrong record: a cut JSON object does not parse.
    assert framing.decode_record(truncated) is None


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b"{",
        b'{"s": "out", "d": "x',
        b"[1, 2]",
        b'"just a string"',
        b'{"s": "out"}',
        b'{"s": "out", "d": 5}',
        b'{"s": "exit"}',
        b'{"s": "exit", "code": "0"}',
        b'{"s": "exit", "code": true}',
        b'{"s": "exit", "code": 1.5}',
        b'{"s": "sh", "d": "x"}',
        b"\xff\xfe",
        b"PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.",
    ],
)
def test_decode_rejects_non_records(line: bytes) -> None:
    assert framing.decode_record(line) is None


# --------------------------------------------------------------------------- interface


def test_route_table_longest_prefix(tmp_path: Path) -> None:
    # /proc/net/route stores addresses in host byte order; build it the same way.
    def hexaddr(addr: str) -> str:
        return f"{struct.unpack('=I', socket.inet_aton(addr))[0]:08X}"

    header = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT"
    rows = [
        ("eth0", "0.0.0.0", "0003", "100", "0.0.0.0"),
        ("eth1", "198.51.100.0", "0001", "0", "255.255.255.0"),
        ("eth2", "198.51.100.128", "0001", "0", "255.255.255.128"),
        ("eth3", "203.0.113.0", "0000", "0", "255.255.255.0"),  # not RTF_UP
    ]
    lines = [header] + [
        f"{i}\t{hexaddr(dst)}\t00000000\t{fl}\t0\t0\t{m}\t{hexaddr(mask)}\t0\t0\t0"
        for i, dst, fl, m, mask in rows
    ]
    table = tmp_path / "route"
    table.write_text("\n".join(lines) + "\n")
    assert route._route_dev_proc("198.51.100.200", str(table)) == "eth2"
    assert route._route_dev_proc("198.51.100.5", str(table)) == "eth1"
    assert route._route_dev_proc("203.0.113.5", str(table)) == "eth0"
    assert route._route_dev_proc("192.0.2.1", str(tmp_path / "missing")) is None


def test_choose_interface_never_returns_loopback() -> None:
    assert route.choose_interface("127.0.0.1") != "lo"
    assert route.choose_interface("::1") is None


def _with_limit(limit: str, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-I", "-S", zipapp(), "--time-limit", limit, "--no-deny", *args],
        capture_output=True,
        timeout=30,
    )
    records = [r for r in map(framing.decode_record, done.stdout.splitlines()) if r is not None]
    return done.returncode, text_of(records, "refused")


def test_the_callers_time_limit_bounds_the_options() -> None:
    # 30 pings at 1 s intervals imply ~40 s: over a 15 s limit, within the default 120 s.
    code, why = _with_limit("15", "ping", "127.0.0.1", "-c", "30")
    assert code == 2 and "more than the limit of 15 s" in why
    code, _ = _with_limit("15", "ping", "127.0.0.1", "-c", "1")
    assert code == 0


@pytest.mark.parametrize("limit", ["-1", "0", "3601", "inf", "nan", "1e3", "", "15 "])
def test_a_malformed_time_limit_is_refused(limit: str) -> None:
    code, why = _with_limit(limit, "ping", "127.0.0.1", "-c", "1")
    assert code == 2 and "--time-limit" in why


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--verbose", "ping", "192.0.2.1"], "unknown option"),
        (["--deny"], "missing value"),
        (["--time-limit", "5", "--time-limit", "6", "ping", "192.0.2.1"], "one number"),
        (["--no-deny", "--deny", "10.0.0.0/8", "ping", "192.0.2.1"], "cannot be used together"),
        (["--deny", "10.0.0.0/33", "ping", "192.0.2.1"], "not a network"),
        (["--time-limit", "5"], "a type and a target"),
    ],
)
def test_the_scripts_own_arguments_are_checked_strictly(args: list[str], fragment: str) -> None:
    with pytest.raises(cli.UsageError, match=fragment):
        cli.parse_arguments(args)


def test_the_scripts_own_arguments() -> None:
    limit, networks, words = cli.parse_arguments(
        ["--time-limit", "7.5", "--deny", "10.0.0.0/8", "--deny", "::1", "ping", "x", "-c", "1"]
    )
    assert limit == 7.5
    assert [str(n) for n in networks] == ["10.0.0.0/8", "::1/128"]
    assert words == ["ping", "x", "-c", "1"]
    assert cli.parse_arguments(["--no-deny", "ping", "x"])[1] == []
    default = cli.parse_arguments(["ping", "x"])[1]
    assert default == policy.parse_networks(policy.DEFAULT_DENIED_NETWORKS)
