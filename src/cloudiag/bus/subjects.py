"""NATS subjects: the one place that names them."""

from __future__ import annotations

PREFIX = "cloudiag"

#: Agents publish their inventory and heartbeats here; servers share it in a queue group.
AGENT_REPORTS = f"{PREFIX}.agents.report"
SERVERS_QUEUE = "cloudiag-servers"


def agent_run(host_id: str) -> str:
    """Run a diagnostic on a VM of this host (request/reply: the reply is the acceptance)."""
    return f"{PREFIX}.agent.{host_id}.diagnostics"


def agent_status(host_id: str) -> str:
    """Ask the agent of a host which jobs it is running (request/reply)."""
    return f"{PREFIX}.agent.{host_id}.status"


def agent_cancel(host_id: str) -> str:
    """Cancel a running job on the agent of a host (request/reply)."""
    return f"{PREFIX}.agent.{host_id}.cancel"


#: JetStream stream that keeps every job's output lines for a while, for late viewers.
OUTPUT_STREAM = "CLOUDIAG_OUTPUT"
OUTPUT_SUBJECTS = f"{PREFIX}.job.*.output"


def job_output(job_id: str) -> str:
    """Output lines of a running job, in order, as the tool prints them."""
    return f"{PREFIX}.job.{job_id}.output"


def job_result(job_id: str) -> str:
    """The final result of a job, published once by the agent."""
    return f"{PREFIX}.job.{job_id}.result"


def job_all(job_id: str) -> str:
    """Wildcard over every subject of one job."""
    return f"{PREFIX}.job.{job_id}.*"
