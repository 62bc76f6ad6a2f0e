"""The README's examples work as written: which Python runs them, where curl keeps its
cookies, and every namespace the lab makes."""

from __future__ import annotations

import re
from pathlib import Path

from cloudiag.lab.topology import all_namespaces

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(title: str) -> str:
    """The text of one README section, from its heading to the next one."""
    text = README.read_text()
    start = text.index(title)
    following = re.search(r"^#{1,3} ", text[start + len(title) :], re.MULTILINE)
    return text[start : start + len(title) + following.start()] if following else text[start:]


def test_the_libcloud_snippet_says_which_python_runs_it() -> None:
    assert ".venv/bin/python" in _section("### libcloud")


def test_curl_keeps_its_cookies_in_a_temporary_file_it_removes() -> None:
    text = README.read_text()
    jars = re.findall(r"curl [^\n]*?-[bc] (\S+)", text)
    assert jars, "no curl example with a cookie jar"
    assert set(jars) == {'"$JAR"'}, jars
    assert "JAR=$(mktemp)" in text
    assert 'rm -f "$JAR"' in text


def test_the_lab_table_lists_every_namespace() -> None:
    table = _section("## The lab")
    listed = set(re.findall(r"`(cdlab-[^`]+)`", table))
    assert set(all_namespaces("cdlab")) <= listed
