"""The CloudStack-style ``/opt/cloud/bin/diagnostics.py`` of the lab's system VMs.

Written for the tests, it behaves as the script of a real CloudStack system VM: the words
after the type are joined and split again (``shlex``), ``-c 4`` is added to ping and
arping and ``-m 20`` to traceroute when absent, other types print nothing, and the output
is ``'%s&&' % stdout.strip()``, ``'%s&&' % stderr.strip()``, then the exit code.

Two forms. ``python3``: run by Python 3, the first two are ``b'…'`` reprs (escaped
newlines), as the real script prints under Python 3. ``python2``: raw text, as under
Python 2; run by a real python2.7 when the machine has one, else by Python 3 writing the
raw bytes as Python 2 would (the file's marker line says which).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cloudiag.lab import system

#: Where a CloudStack system VM has the script.
PATH = "/opt/cloud/bin/diagnostics.py"
FORMS = ("python3", "python2")
_MARK = "# cloudiag-lab-script:"

_TEMPLATE = """#!{interpreter}
{mark} form={form} interpreter={interpreter} emulated={emulated}
# A CloudStack-style diagnostics.py made by `cloudiag lab` for its tests.
from __future__ import print_function

import shlex
import subprocess
import sys

# Python 3 running the Python 2 form: write the tool's bytes as they are, as Python 2 does.
RAW = {raw}
# The flag each type gets a default for, and that default, when the caller gave none.
DEFAULTS = {{"ping": ("-c", " -c 4"), "traceroute": ("-m", " -m 20"), "arping": ("-c", " -c 4")}}


def command():
    line = " ".join(sys.argv[1:])
    kind = sys.argv[1]
    if kind not in DEFAULTS:
        return None
    flag, default = DEFAULTS[kind]
    return line if flag in sys.argv else line + default


def emit(data):
    if RAW and isinstance(data, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(data + b"&&\\n")
        sys.stdout.buffer.flush()
    else:
        print("%s&&" % data)


def run(line):
    try:
        proc = subprocess.Popen(shlex.split(line), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate()
        code = proc.returncode
    except OSError as exc:
        out, err, code = "Check your command type", "Exception occurred: %s" % exc, 1
    emit(out.strip())
    emit(err.strip())
    print("%s" % code)


if __name__ == "__main__":
    line = command()
    if line is not None:
        run(line)
"""


@dataclass(frozen=True)
class ScriptInfo:
    """What a VM's script is: its form, the interpreter that runs it, and whether the
    Python 2 form is only emulated (no python2.7 on the machine)."""

    form: str
    interpreter: str
    emulated: bool


def python3() -> str:
    """The system's Python 3 (a VM's own, not a virtualenv's)."""
    return (
        "/usr/bin/python3" if Path("/usr/bin/python3").exists() else system.which("python3") or ""
    )


def python2() -> str | None:
    """A real python2.7 (pyenv's first, as scripts/setup.sh finds it for cloudmonkey), or None."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = sorted(str(p) for p in root.glob("versions/2.7*/bin/python2.7"))
    candidates = [*found, system.which("python2.7")]
    for candidate in (c for c in candidates if c):
        # A pyenv shim for a version that is not selected exists but fails: run it.
        try:
            ok = subprocess.run(
                [candidate, "-c", "import sys"], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok.returncode == 0:
            return candidate
    return None


def render(form: str) -> tuple[str, ScriptInfo]:
    """The script's text in that form, and what it is; ValueError for an unknown form."""
    if form not in FORMS:
        raise ValueError(f"unknown script form {form!r}; one of: {', '.join(FORMS)}")
    real2 = python2() if form == "python2" else None
    interpreter = real2 or python3()
    info = ScriptInfo(form, interpreter, emulated=form == "python2" and real2 is None)
    text = _TEMPLATE.format(
        interpreter=interpreter,
        mark=_MARK,
        form=form,
        emulated="yes" if info.emulated else "no",
        raw=info.emulated,
    )
    return text, info


def write(path: Path, form: str) -> ScriptInfo:
    """Write the script in that form at ``path`` (a VM's own tree), executable."""
    text, info = render(form)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o755)
    # Renamed into place: a run starting now reads the old script or the new, never half.
    tmp.replace(path)
    return info


def read(path: Path) -> ScriptInfo | None:
    """What the script at ``path`` is, from its marker line; None without one."""
    try:
        lines = path.read_text().splitlines()[:2]
    except OSError:
        return None
    mark = next((line for line in lines if line.startswith(_MARK)), None)
    if mark is None:
        return None
    fields = dict(f.split("=", 1) for f in mark[len(_MARK) :].split() if "=" in f)
    return ScriptInfo(
        fields.get("form", "?"), fields.get("interpreter", "?"), fields.get("emulated") == "yes"
    )
