"""The responses the client reads, as pydantic models.

Each model declares the fields the client relies on; any other field the server sends is kept
(``extra="allow"``), so a newer server loses nothing and ``model_dump(exclude_unset=True)``
gives back what was received.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudiag.domain import JobStatus

__all__ = [
    "AsyncJob",
    "DiagnosticsOption",
    "DiagnosticsResult",
    "DiagnosticsType",
    "Host",
    "Login",
    "OutputLine",
    "SystemVm",
    "Zone",
]


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class DiagnosticsResult(_Response):
    """What a diagnostic printed and how it ended (``jobresult.diagnostics``)."""

    #: A string, as CloudStack's runDiagnostics reports it.
    exitcode: str
    stdout: str = ""
    stderr: str = ""
    timedout: bool = False
    truncated: bool = False
    durationms: int | None = None
    #: The parser's summary of the output, when the type has one.
    parsed: dict[str, Any] | None = None


class AsyncJob(_Response):
    """An async job as queryAsyncJobResult (and the stream's ``end`` event) shows it."""

    jobid: str
    jobstatus: JobStatus
    jobresultcode: int = 0
    jobresult: dict[str, Any] | None = None
    cmd: str = ""
    jobinstancetype: str | None = None
    jobinstanceid: str | None = None
    created: str | None = None
    completed: str | None = None
    #: What was asked (type, ipaddress, params): a cloudiag extension.
    request: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        """Whether the job is final (succeeded or failed)."""
        return self.jobstatus != JobStatus.PENDING

    @property
    def diagnostics(self) -> DiagnosticsResult | None:
        """The diagnostic's result, also kept for a failed (e.g. cancelled) job."""
        found = (self.jobresult or {}).get("diagnostics")
        return None if found is None else DiagnosticsResult.model_validate(found)

    @property
    def errortext(self) -> str | None:
        """Why a failed job failed."""
        text = (self.jobresult or {}).get("errortext")
        return None if text is None else str(text)


class OutputLine(_Response):
    """One line of a job's live output (the stream's ``line`` event)."""

    seq: int
    stream: str
    text: str


class Login(_Response):
    """The answer to login; ``sessionkey`` goes with every later call of the session."""

    username: str
    userid: str
    sessionkey: str
    timeout: str | None = None
    type: str | None = None


class Zone(_Response):
    """A zone (listZones)."""

    id: str
    name: str


class Host(_Response):
    """A hypervisor host (listHosts); ``state`` is Up while its agent's heartbeats arrive."""

    id: str
    name: str
    state: str
    zoneid: str | None = None
    zonename: str | None = None
    ipaddress: str = ""
    version: str = ""


class SystemVm(_Response):
    """A system VM (listSystemVms) or a virtual router (listRouters)."""

    id: str
    name: str
    state: str
    hostid: str | None = None
    hostname: str | None = None
    zoneid: str | None = None
    zonename: str | None = None
    #: listSystemVms only; routers carry ``role`` instead.
    systemvmtype: str | None = None
    publicip: str | None = None
    linklocalip: str | None = None
    #: The diagnostics types the VM offers, comma-separated.
    diagnosticstypes: str = ""
    #: What getDiagnosticsData collects on it by default, comma-separated.
    diagnosticsdatafiles: str = ""


class DiagnosticsOption(_Response):
    """One option of a diagnostics type, with its bounds."""

    flag: str
    description: str = ""
    takes_value: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] = []


class DiagnosticsType(_Response):
    """A diagnostics type (listDiagnosticsTypes): its options and where it runs."""

    name: str
    description: str = ""
    vm_types: list[str] = []
    options: list[DiagnosticsOption] = []
    time_limit: float | None = None
