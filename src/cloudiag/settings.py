"""Settings from flags and CLOUDIAG_* environment variables (flags win)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudiag.bus.access import BusAccess


def default_data_dir() -> Path:
    """Where the SQLite file, the private NATS store and credentials go by default.

    The one default of every subcommand (serve, demo, user…): root's under sudo.
    """
    return Path.home() / ".local" / "share" / "cloudiag"


def default_denied_networks() -> list[str]:
    """The system-VM package's default policy (imported late: the CLI starts faster)."""
    from cloudiag.sysvm.policy import DEFAULT_DENIED_NETWORKS

    return list(DEFAULT_DENIED_NETWORKS)


def default_data_roots() -> list[str]:
    """The system-VM package's allowed roots of getDiagnosticsData."""
    from cloudiag.sysvm.collect import DEFAULT_ROOTS

    return list(DEFAULT_ROOTS)


class Settings(BaseSettings):
    """Every knob of the server and the agent; one place, one name each."""

    model_config = SettingsConfigDict(env_prefix="CLOUDIAG_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    #: The key that seals API secret keys in the database; unset, <data_dir>/secrets.key.
    #: Kept apart from the database: every server of one database needs the same file.
    secrets_key_file: Path | None = None
    #: An external NATS (no private one is started): one URL, or a cluster's servers
    #: comma-separated (nats://n1:4222,nats://n2:4222,nats://n3:4222; tls:// for TLS).
    #: See docs/nats-security.md.
    nats_url: str | None = None
    #: This process's nkey seed on the bus (an agent's from `cloudiag host add`, the
    #: management servers' shared one); unset, serve keeps one in <data_dir>/nats-server.nk.
    nats_nkey_seed_file: Path | None = None
    #: The CA that signed the NATS servers' certificates (TLS), and this client's own
    #: certificate and key when the servers verify clients.
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    #: Time limit of every diagnostic (seconds); unset, each type has its own (ping 120 s…).
    diagnostics_timeout: float | None = Field(default=None, gt=0, le=3600)
    #: Time limit per type, e.g. CLOUDIAG_TYPE_TIME_LIMITS='{"traceroute": 900}'; wins over
    #: the global one.
    type_time_limits: dict[str, float] = Field(default_factory=dict)
    #: Agents send a heartbeat this often; a host is Disconnected after 3 missed beats.
    heartbeat_interval: float = Field(default=5.0, gt=0, le=300)
    #: Seconds a diagnostic's request may wait for its agent to take it (a paused, busy or
    #: unreachable agent); past it the agent discards the request and the job fails.
    start_timeout: float = Field(default=60.0, gt=0, le=3600)
    #: Each management server stamps its heartbeat and sweeps stale jobs this often; one
    #: whose stamp is three intervals old is dead and another takes over its jobs. The same
    #: value on every server of a cloud.
    sweep_interval: float = Field(default=30.0, ge=0.5, le=600)
    session_timeout: int = Field(default=1800, ge=60, le=86400)
    #: A session ends this long after its login however busy it is (idle timeout aside).
    session_lifetime: int = Field(default=86400, ge=60, le=30 * 86400)
    #: Which server owns a job; unset, a uuid kept in <data_dir>/server-id (one running
    #: server per data directory).
    server_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    #: Destinations diagnostics may not target (e.g. the management network), as CIDRs:
    #: CLOUDIAG_DENIED_NETWORKS='["169.254.0.0/16"]'. Names are checked on the VM after
    #: resolution. By default the VM itself (loopback, unspecified), multicast and
    #: broadcast; '[]' allows every destination.
    denied_networks: list[str] = Field(default_factory=default_denied_networks)
    #: Output kept per stream of one diagnostic; the rest is dropped and `truncated` set.
    #: The agent cuts further when a NATS server's max_payload cannot carry both streams.
    max_output: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    #: Diagnostics running at once per VM, per host agent and per user (0 = unlimited).
    limit_per_vm: int = Field(default=5, ge=0)
    limit_per_host: int = Field(default=100, ge=0)
    limit_per_user: int = Field(default=20, ge=0)
    #: At most rate_limit diagnostics per user in rate_interval seconds (0 = unlimited).
    rate_limit: int = Field(default=300, ge=0)
    rate_interval: int = Field(default=60, ge=1, le=86400)
    #: A signed request whose expires lies further ahead than this (seconds) is refused:
    #: a captured request is then replayable for at most this long (9999-12-31 is refused).
    signature_max_lifetime: int = Field(default=3600, ge=60, le=7 * 86400)
    #: Refuse every signed request without signatureVersion=3 and expires (libcloud sends
    #: neither: its captured URLs never expire, so only the once-only memory stops them).
    require_expires: bool = False
    #: Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed, as addresses or CIDRs:
    #: CLOUDIAG_TRUSTED_PROXIES='["192.0.2.7"]'. None by default: the client is the peer.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: The bearer token /metrics asks for; unset, /metrics answers loopback clients only.
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    #: An agent whose source is a real CloudStack: its management server's base URL
    #: (the API at /client/api), the API key and secret key it signs with, the SSH key for
    #: the system VMs (unset: CloudStack's /root/.ssh/id_rsa.cloud) and a CA bundle for
    #: the management server's TLS certificate (unset: the system's), and see
    #: cloudstack_netns.
    cloudstack_url: str | None = Field(default=None, pattern=r"^https?://")
    cloudstack_api_key: str | None = None
    cloudstack_secret_key: SecretStr | None = None
    cloudstack_key_file: str | None = None
    cloudstack_ca_file: str | None = None
    #: The network namespace of the host the system VMs' control network is in, when the
    #: agent runs outside it (the lab's hypervisor namespace); unset: the agent's own.
    cloudstack_netns: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: getDiagnosticsData, under CloudStack's setting names (a dot is an underscore here:
    #: diagnostics.data.max.file.age is CLOUDIAG_DIAGNOSTICS_DATA_MAX_FILE_AGE).
    #: How long the collection on the VM may take, in seconds.
    diagnostics_data_retrieval_timeout: int = Field(default=1800, ge=10, le=3600)
    #: How long a zip is kept, and its download URL valid, in seconds.
    diagnostics_data_max_file_age: int = Field(default=86400, ge=60, le=365 * 86400)
    #: Whether zips older than max_file_age are deleted, every gc_interval seconds.
    diagnostics_data_gc_enable: bool = True
    diagnostics_data_gc_interval: int = Field(default=86400, ge=60, le=365 * 86400)
    #: Above this share of the data directory's disk in use, collections are refused.
    diagnostics_data_disable_threshold: float = Field(default=0.9, gt=0, le=1)
    #: The directories whose files may be collected (checked again on the VM).
    diagnostics_data_roots: list[str] = Field(default_factory=default_data_roots)
    #: Bytes kept of one collected item, and of one zip.
    diagnostics_data_max_file: int = Field(default=4 << 20, ge=1024, le=64 << 20)
    diagnostics_data_max_zip: int = Field(default=16 << 20, ge=4096, le=64 << 20)
    lab_prefix: str = "cdlab"
    #: The size of the demo's lab: zones, hypervisor hosts (one agent each) and routers per
    #: host (`cloudiag demo --zones --hosts --routers`).
    lab_zones: int = Field(default=1, ge=1)
    lab_hosts: int = Field(default=1, ge=1)
    lab_routers: int = Field(default=1, ge=1)
    #: How the agent reaches the lab's system VMs: ``netns`` (enter their namespaces) or
    #: ``ssh`` (sshd on their control addresses, as CloudStack does; the demo then runs
    #: the lab with sshd).
    executor: Literal["netns", "ssh"] = "netns"
    log_level: str = "INFO"
    log_format: str = Field(default="text", pattern="^(text|json)$")

    @field_validator("type_time_limits")
    @classmethod
    def _known_types(cls, value: dict[str, float]) -> dict[str, float]:
        from cloudiag.sysvm.registry import TYPES

        for name, seconds in value.items():
            if name not in TYPES:
                raise ValueError(f"unknown diagnostics type {name!r}; known: {', '.join(TYPES)}")
            if not 0 < seconds <= 3600:
                raise ValueError(f"time limit of {name} must be in (0, 3600] seconds")
        return value

    @field_validator("denied_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from cloudiag.sysvm.policy import parse_networks

        return [str(n) for n in parse_networks(value)]

    @field_validator("diagnostics_data_roots")
    @classmethod
    def _roots(cls, value: list[str]) -> list[str]:
        from cloudiag.sysvm.collect import check_roots
        from cloudiag.sysvm.errors import DiagnosticsInputError

        try:
            return list(check_roots(value))
        except DiagnosticsInputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(v.strip(), strict=False)) for v in value]

    def bus_access(self) -> BusAccess:
        """This process's credentials and TLS on the bus (the server's seed: see
        resolved_nkey_seed_file)."""
        return BusAccess(
            nkey_seed_file=self.nats_nkey_seed_file,
            tls_ca=self.nats_tls_ca,
            tls_cert=self.nats_tls_cert,
            tls_key=self.nats_tls_key,
        )

    def resolved_nkey_seed_file(self) -> Path:
        """The configured nkey seed, else the management servers' in the data directory."""
        return self.nats_nkey_seed_file or self.data_dir / "nats-server.nk"

    def resolved_secrets_key_file(self) -> Path:
        """The configured secrets key file, else one in the data directory."""
        return self.secrets_key_file or self.data_dir / "secrets.key"

    def resolved_database_url(self) -> str:
        """The configured database, else a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'cloudiag.db'}"
