"""NATS subjects, streams, consumers and buckets: the one place that names them."""

from __future__ import annotations

PREFIX = "cloudiag"

#: Agents publish their inventory and heartbeats here; servers share it in a queue group.
AGENT_REPORTS = f"{PREFIX}.agents.report"
SERVERS_QUEUE = "cloudiag-servers"

#: JetStream stream of job requests, one subject per job under its host: an agent consumes
#: its host's, and a request is gone once its agent has acknowledged it (work queue).
REQUESTS_STREAM = "CLOUDIAG_REQUESTS"
REQUESTS_SUBJECTS = f"{PREFIX}.agent.*.run.*"

#: JetStream stream of job results: removed only once a management server has stored one.
RESULTS_STREAM = "CLOUDIAG_RESULTS"
RESULTS_SUBJECTS = f"{PREFIX}.job.*.result"
#: The durable consumer of results that every management server shares.
RESULTS_CONSUMER = "cloudiag-servers"

#: JetStream key-value bucket: each agent's table of its recent jobs, key <host>.<job>.
JOBS_BUCKET = "CLOUDIAG_AGENT_JOBS"
#: The object store where an agent puts a getDiagnosticsData zip (named by its job id) for
#: the management server that stores the job's result to take.
DATA_BUCKET = "CLOUDIAG_DIAGNOSTICS_DATA"

#: JetStream stream that keeps every job's output lines for a while, for late viewers.
OUTPUT_STREAM = "CLOUDIAG_OUTPUT"
OUTPUT_SUBJECTS = f"{PREFIX}.job.*.output"


def agent_request(host_id: str, job_id: str) -> str:
    """The request to run one job on a VM of this host (JetStream)."""
    return f"{PREFIX}.agent.{host_id}.run.{job_id}"


def agent_requests(host_id: str) -> str:
    """Every request for this host: its agent's consumer filter."""
    return f"{PREFIX}.agent.{host_id}.run.*"


def agent_consumer(host_id: str) -> str:
    """The durable consumer of one host's requests."""
    return f"agent-{host_id}"


def agent_status(host_id: str) -> str:
    """Ask the agent of a host which jobs it is running (request/reply, live)."""
    return f"{PREFIX}.agent.{host_id}.status"


def agent_cancel(host_id: str) -> str:
    """Cancel a running job on the agent of a host (request/reply, live)."""
    return f"{PREFIX}.agent.{host_id}.cancel"


def job_key(host_id: str, job_id: str) -> str:
    """The key of a job in the agents' job table."""
    return f"{host_id}.{job_id}"


def job_output(job_id: str) -> str:
    """Output lines of a running job, in order, as the tool prints them (best effort)."""
    return f"{PREFIX}.job.{job_id}.output"


def job_result(job_id: str) -> str:
    """The final result of a job (JetStream: durable until a server has stored it)."""
    return f"{PREFIX}.job.{job_id}.result"
