"""NATS subjects, streams, consumers and buckets: the one place that names them."""

from __future__ import annotations

PREFIX = "cloudiag"

#: Every subject an agent publishes on names its host (cloudiag.agent.<host>.…), so that
#: the bus's permissions (bus/authorization.py) can hold each agent to its own host's, and
#: a server checks that a message's body is about the host of its subject.
#: Agents publish their inventory and heartbeats on their host's; servers share every
#: host's in a queue group.
AGENT_REPORTS = f"{PREFIX}.agent.*.report"
SERVERS_QUEUE = "cloudiag-servers"

#: JetStream stream of job requests, one subject per job under its host: an agent consumes
#: its host's, and a request is gone once its agent has acknowledged it (work queue).
REQUESTS_STREAM = "CLOUDIAG_REQUESTS"
REQUESTS_SUBJECTS = f"{PREFIX}.agent.*.run.*"

#: JetStream stream of job results: removed only once a management server has stored one.
RESULTS_STREAM = "CLOUDIAG_RESULTS"
RESULTS_SUBJECTS = f"{PREFIX}.agent.*.result.*"
#: The durable consumer of results that every management server shares.
RESULTS_CONSUMER = "cloudiag-servers"

#: JetStream key-value bucket: each agent's table of its recent jobs, key <host>.<job>.
JOBS_BUCKET = "CLOUDIAG_AGENT_JOBS"
#: JetStream stream of getDiagnosticsData zips in chunks, one subject per chunk under its
#: host and job, for the management server that stores the job's result to take.
DATA_STREAM = "CLOUDIAG_DATA"
DATA_SUBJECTS = f"{PREFIX}.agent.*.data.*.*"

#: JetStream stream that keeps every job's output lines for a while, for late viewers.
OUTPUT_STREAM = "CLOUDIAG_OUTPUT"
OUTPUT_SUBJECTS = f"{PREFIX}.agent.*.output.*"


def agent_report(host_id: str) -> str:
    """Where the agent of a host publishes its heartbeats and inventory."""
    return f"{PREFIX}.agent.{host_id}.report"


def host_of(subject: str) -> str:
    """The host an agent's subject names (cloudiag.agent.<host>.…)."""
    return subject.split(".")[2]


def job_of(subject: str) -> str:
    """The job of a result or output subject (cloudiag.agent.<host>.result.<job>)."""
    return subject.split(".")[4]


def agent_inbox_prefix(host_id: str) -> str:
    """The agent's reply inboxes (nats-py's inbox_prefix): its own, so that no other
    agent may subscribe to the replies it gets (JetStream's acks of its results…)."""
    return f"_INBOX.{PREFIX}.{host_id}"


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


def job_output(host_id: str, job_id: str) -> str:
    """Output lines of a job running on this host, in order, as the tool prints them
    (best effort)."""
    return f"{PREFIX}.agent.{host_id}.output.{job_id}"


def job_data(host_id: str, job_id: str, chunk: int | str) -> str:
    """Chunk number `chunk` of a getDiagnosticsData job's zip (``*`` or ``>``: all)."""
    return f"{PREFIX}.agent.{host_id}.data.{job_id}.{chunk}"


def job_result(host_id: str, job_id: str) -> str:
    """The final result of a job of this host (JetStream: durable until a server has
    stored it)."""
    return f"{PREFIX}.agent.{host_id}.result.{job_id}"
