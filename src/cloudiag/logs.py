"""Structured logs: one line per record, with the job id on every line of a job's path."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

#: Set while code runs on behalf of one job; every log line then carries it.
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = job_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger message job_id=…` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        # One record, one line: a newline in logged input must not forge a second entry.
        line = _CONTROL.sub(lambda m: repr(m.group())[1:-1], super().format(record))
        job_id = getattr(record, "job_id", None)
        return f"{line} job_id={job_id}" if job_id else line


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs would repeat the query string, which can hold a signature or a session key.
    logging.getLogger("uvicorn.access").disabled = True
    # asyncssh says every channel's open and close at INFO (about 8 lines a job over SSH);
    # its warnings and errors still show, and the executor logs what a job needs.
    logging.getLogger("asyncssh").setLevel(max(logging.WARNING, root.level))
