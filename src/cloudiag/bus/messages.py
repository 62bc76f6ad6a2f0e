"""Message schemas on the bus (pydantic, JSON on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloudiag.domain import VmType


class Message(BaseModel):
    """Base of every bus message: immutable, JSON bytes on the wire.

    Unknown fields are ignored, not refused, so that a newer server or agent can add fields
    without breaking an older peer.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    def encode(self) -> bytes:
        """The JSON bytes to publish."""
        return self.model_dump_json().encode()


class NetnsAccess(Message):
    """The VM is a network namespace on the agent's host (the lab's system VMs)."""

    kind: Literal["netns"] = "netns"
    namespace: str
    #: The file of the VM's persistent mount namespace on the agent's host (the lab's
    #: mountns.py), entered with its network namespace so that the VM's own files are seen;
    #: None, or while it is not there: `ip netns exec`'s view of the host's files.
    mount: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9_.+/-]{1,1000}$")


#: A command name or an absolute path, plain words only: it is a word of the remote command.
_PYTHON_PATTERN = r"^/?[A-Za-z0-9_.+][A-Za-z0-9_.+-]*(/[A-Za-z0-9_.+-]+)*$"


class SshAccess(Message):
    """The VM is reached over SSH, as CloudStack reaches a system VM on its control address.

    Every field but ``address`` and ``key_file`` has a default, so a report of an older agent
    (address, port, user, key file only) still reads.
    """

    kind: Literal["ssh"] = "ssh"
    #: The VM's control address.
    address: str
    port: int = Field(default=3922, ge=1, le=65535)
    user: str = "root"
    #: Path of the private key on the agent's host (never the key itself: reports are stored).
    key_file: str
    #: Open the TCP socket in this network namespace of the agent's host (as a KVM host
    #: reaches its VMs over cloud0); None: in the agent's own namespace.
    netns: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: cloudiag: our zipapp in a warm session; cloudstack: the VM's own
    #: /opt/cloud/bin/diagnostics.py, one exec per diagnostic; auto: cloudiag when the VM
    #: has a usable python, else cloudstack.
    script: Literal["cloudiag", "cloudstack", "auto"] = "cloudiag"
    #: A pinned host key fingerprint ("SHA256:…"): wins over ``known_hosts`` and TOFU.
    host_key: str | None = Field(default=None, pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$")
    #: A known_hosts file on the agent's host; None: trust on first use, pinned in the
    #: agent's state directory.
    known_hosts: str | None = None
    #: The VM's interpreter for the zipapp (a plain command name or an absolute path).
    python: str = Field(default="python3", pattern=_PYTHON_PATTERN)


#: Every way an agent may reach a VM (a new one is a new model here and an executor).
AccessModel = NetnsAccess | SshAccess
#: How the agent reaches a VM; ``kind`` says which model, and so which executor.
Access = Annotated[AccessModel, Field(discriminator="kind")]


class VmReport(Message):
    """One VM on the host as the agent sees it."""

    id: str
    name: str
    vm_type: VmType
    state: Literal["Running", "Stopped"]
    addresses: dict[str, Any] = Field(default_factory=dict)
    access: Access


class AgentReport(Message):
    """Registration and heartbeat: who the host is and what runs on it."""

    host_id: str
    host_name: str
    zone_id: str
    zone_name: str
    addresses: list[str] = Field(default_factory=list)
    agent_version: str
    #: Random per agent process, so a restart is visible.
    session: str
    #: False in the last report an agent sends when it stops cleanly.
    connected: bool = True
    vms: list[VmReport] = Field(default_factory=list)


class CollectRequest(Message):
    """What a getDiagnosticsData job gathers on the VM (sysvm/collect.py checks it again)."""

    #: Keywords, [script] names and file paths, as checked by the server.
    items: list[str]
    #: The directories file paths must be under.
    roots: list[str]
    #: Bytes kept of one item, and of the whole zip.
    max_file: int
    max_zip: int


class RunRequest(Message):
    """Run one diagnostic in a VM of this host; the agent validates it again."""

    job_id: str
    #: When the job must have started by (Unix time): an agent that receives the request
    #: later (it was paused, or the bus held the request) discards it and says so.
    start_by: float
    vm_id: str
    type: str
    address: str
    params: list[str]
    time_limit: float
    max_output: int = 1 << 20
    #: The operator's forbidden destination networks (CIDRs), checked again on the VM.
    denied_networks: list[str] = Field(default_factory=list)
    #: Set for a getDiagnosticsData job (type "diagnosticsdata", no address nor params).
    collect: CollectRequest | None = None


class OutputLine(Message):
    """One line of a tool's output, streamed while it runs."""

    job_id: str
    seq: int
    stream: Literal["stdout", "stderr"]
    text: str


class RunResult(Message):
    """What the tool printed and how it ended."""

    job_id: str
    stdout: str
    stderr: str
    exitcode: str
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0
    #: Who stopped it, when it was cancelled on request.
    cancelled_by: str = ""
    #: Why the run failed as a whole (e.g. the VM stopped during it); the output is partial.
    error: str = ""
    #: Why the agent did not run the job at all (invalid here, VM stopped, request stale…).
    refused: str = ""
    #: A getDiagnosticsData job's zip, published in chunks before the result
    #: (bus/archives.py): its size and SHA-256 (hex); 0 and "" for every other job.
    archive_size: int = 0
    archive_sha256: str = ""

    @classmethod
    def refusal(cls, job_id: str, why: str) -> RunResult:
        """The result of a job that was not run, and why."""
        return cls(job_id=job_id, stdout="", stderr="", exitcode="-1", refused=why)


class JobRecord(Message):
    """An agent's record of one job in its job table (a JetStream key-value bucket).

    Created once, atomically, when the agent takes the request (or the server withdraws it):
    a duplicated or replayed request finds the record and never runs twice; after any
    restart or reconnect, it tells a server what became of the job.
    """

    state: Literal["running", "finished"]
    #: The agent process that took the job ("" when the server withdrew the request).
    session: str = ""
    #: When the agent took it (Unix time): its time limit runs from then.
    started: float = 0.0
    #: The result, once finished.
    result: RunResult | None = None
    #: Whether the result is in the results stream (the agent sends it until it is).
    published: bool = False


class CancelRequest(Message):
    """Stop a running diagnostic (the tool's process group is killed on the VM)."""

    job_id: str
    by: str


class CancelReply(Message):
    """Whether the agent was running the job and stopped it."""

    cancelled: bool
    error: str = ""


class StatusReply(Message):
    """Which jobs an agent is running now."""

    session: str
    running: list[str]
    #: Processes the agent has started since it began (hostile-input tests assert on it).
    spawned: int = 0
