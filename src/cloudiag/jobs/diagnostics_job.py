"""One diagnostics job as the engine runs it, and how running it can fail."""

from __future__ import annotations

from dataclasses import dataclass

from cloudiag.bus.messages import RunRequest


@dataclass(frozen=True)
class DiagnosticsJob:
    """What the engine needs to run and account for one diagnostics job."""

    job_id: str
    host_id: str
    host_name: str
    vm_name: str
    vm_type: str
    request: RunRequest
    user_id: str
    username: str
    account_id: str
    domain_id: str
    #: Whether its host's heartbeats were fresh when the job was made: a host that went
    #: silent is asked whether its agent is there before the job waits on it.
    host_up: bool = True
    #: The job this one is a part of (a run over many VMs), whose status follows its parts'.
    parent_id: str | None = None
    #: When the job was created (Unix time; 0 unknown), for its duration in the metrics.
    created: float = 0.0


class JobFailed(Exception):
    """The job could not produce a result; the message is the job's errortext."""
