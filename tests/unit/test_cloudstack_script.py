"""The CloudStack script's command line and its ``&&`` output, in its Python 3 and 2 forms."""

from __future__ import annotations

import pytest

from cloudiag.agent.executors.cloudstack_script import (
    ScriptOutputError,
    ScriptResult,
    command,
    parse,
)
from cloudiag.sysvm import registry
from cloudiag.sysvm.policy import script_cannot_run
from cloudiag.sysvm.validate import validate


def python3_form(stdout: bytes, stderr: bytes, code: int) -> bytes:
    """What the script prints under Python 3 (its own print statements, verbatim)."""
    lines = ["%s&&" % stdout.strip(), "%s&&" % stderr.strip(), "%s" % code]  # noqa: UP031
    return "".join(line + "\n" for line in lines).encode()


def python2_form(stdout: bytes, stderr: bytes, code: int) -> bytes:
    """What it prints under Python 2: the bytes themselves."""
    return stdout.strip() + b"&&\n" + stderr.strip() + b"&&\n" + str(code).encode() + b"\n"


PING = b"PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.\n64 bytes from 198.51.100.10\n"
TRICKY = [
    PING,
    b"a && b\n&&\nb'&&'\n&&",  # && at line ends, a fake repr, a trailing &&
    b'it\'s "quoted" \\ back\\slash\n',  # both quotes: the repr uses '...' with \'
    b"only 'single' quotes",  # the repr switches to "..."
    "caf\u00e9 \u2192 \U0001f600\n".encode(),  # UTF-8 (\x.. escapes in the repr)
    b"\x00\x01\xff binary\r\n\t",
    b"",
]


@pytest.mark.parametrize("stdout", TRICKY, ids=range(len(TRICKY)))
def test_the_python3_form_keeps_any_stdout_whole(stdout: bytes) -> None:
    parsed = parse(python3_form(stdout, b"ping: warning && more\n", 1))
    expected = stdout.strip().decode("utf-8", errors="replace")
    assert parsed == ScriptResult(
        stdout=expected + "\n" if expected else "",
        stderr="ping: warning && more\n",
        exit_code=1,
        form="python3",
    )


@pytest.mark.parametrize("stdout", TRICKY, ids=range(len(TRICKY)))
def test_the_python2_form_keeps_any_stdout_whole(stdout: bytes) -> None:
    # The rule: stdout may hold anything, stderr no "&&" at a line's end.
    parsed = parse(python2_form(stdout, b"ping: warning && more", 0))
    expected = stdout.strip().decode("utf-8", errors="replace")
    assert parsed.form == "python2"
    assert parsed.stdout == (expected + "\n" if expected else "")
    assert (parsed.stderr, parsed.exit_code) == ("ping: warning && more\n", 0)


def test_the_python2_rules_limit_stderr_ending_a_line_with_ampersands() -> None:
    # Known limit of the raw form: the split is at the last "&&" ending a line, so the
    # first part of such a stderr is read as stdout. The Python 3 form has no such limit.
    parsed = parse(python2_form(b"out", b"err1&&\nerr2", 2))
    assert (parsed.stdout, parsed.stderr, parsed.exit_code) == ("out&&\nerr1\n", "err2\n", 2)
    exact = parse(python3_form(b"out", b"err1&&\nerr2", 2))
    assert (exact.stdout, exact.stderr) == ("out\n", "err1&&\nerr2\n")


def test_empty_output_and_non_zero_exits() -> None:
    assert parse(b"b''&&\nb''&&\n0\n") == ScriptResult("", "", 0, "python3")
    assert parse(b"&&\n&&\n1\n") == ScriptResult("", "", 1, "python2")
    assert parse(python3_form(b"", b"ping: unknown host", 2)).exit_code == 2
    assert parse(python3_form(b"x", b"", -15)).exit_code == -15
    # The script's print of the code may come without its newline (a cut channel).
    assert parse(b"b'x'&&\nb''&&\n1").exit_code == 1


@pytest.mark.parametrize(
    "output",
    [
        b"",
        b"\n",
        b"Traceback (most recent call last):\n  File ...\nNameError: x\n",
        b"b'x'&&\nb''&&\n",
        b"b'x'&&\nb''&&\nzero\n",
        b"b'x'&&\nb''&&\n0\nextra\n",
        b"only one&&\n0\n",
        b"b'x'\nb''\n0\n",
        b"&&\n&&\n99999999999\n",
    ],
    ids=[
        "empty",
        "newline",
        "traceback",
        "unterminated",
        "no-code",
        "after-code",
        "one-part",
        "no-ampersands",
        "huge-code",
    ],
)
def test_garbage_is_refused_with_the_reason(output: bytes) -> None:
    with pytest.raises(ScriptOutputError):
        parse(output)


def test_a_byte_repr_that_does_not_read_is_not_evaluated_as_anything_else() -> None:
    # Only a bytes literal is accepted: ast.literal_eval never runs code anyway, and a
    # str or number literal in its place is refused, then read as the raw form.
    parsed = parse(b"b'\\x'&&\nb''&&\n0\n")
    assert parsed.form == "python2" and parsed.stdout == "b'\\x'\n"


def test_the_command_is_the_script_with_the_validated_words() -> None:
    req = validate("ping", "198.51.100.10", "-c 1 -W 2")
    assert command(req) == "/opt/cloud/bin/diagnostics.py ping 198.51.100.10 -c 1 -W 2"
    req = validate("arping", "203.0.113.1", "-I eth2 -c 1")
    assert command(req) == "/opt/cloud/bin/diagnostics.py arping 203.0.113.1 -I eth2 -c 1"


@pytest.mark.parametrize("type_", sorted(registry.TYPES))
def test_only_the_scripts_own_types_go_to_it(type_: str) -> None:
    # The real script prints nothing for another type: the API and the agent refuse it.
    why = script_cannot_run(type_, "v-3-VM")
    if type_ in ("ping", "traceroute", "arping"):
        assert why is None
    else:
        assert why == (
            f"the CloudStack script on v-3-VM runs only arping, ping, traceroute, not {type_}"
        )
