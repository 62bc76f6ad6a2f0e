"""SQLAlchemy 2 models: the records the management servers share."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cloudiag.domain import JobStatus


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_uuid() -> str:
    """A fresh random uuid as text (ids are strings in the API)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of every model."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Zone(Base):
    """An availability zone, as reported by the agents of its hosts."""

    __tablename__ = "zones"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Host(Base):
    """A hypervisor host; its agent registers it and sends heartbeats."""

    __tablename__ = "hosts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[str] = mapped_column(ForeignKey("zones.id"))
    addresses: Mapped[list[Any]] = mapped_column(default=list)
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    #: Random id of the agent process now serving the host; changes on every agent start.
    agent_session: Mapped[str] = mapped_column(String(64), default="")
    connected: Mapped[bool] = mapped_column(default=False)
    last_heartbeat: Mapped[datetime | None] = mapped_column(default=None)
    #: The fingerprint of the agent report this row and its VMs were last made from: a
    #: heartbeat repeating it only refreshes last_heartbeat (services/heartbeats.py).
    report_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class VirtualMachine(Base):
    """A VM the agent of its host reports: system VMs (diagnosable) and user VMs."""

    __tablename__ = "vms"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: domainrouter | secondarystoragevm | consoleproxy | uservm
    vm_type: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(32), default="Running")
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"), default=None)
    zone_id: Mapped[str] = mapped_column(ForeignKey("zones.id"))
    #: Interface addresses by role: {"public": .., "control": .., "guest": .., "interfaces": [...]}
    addresses: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: How the agent reaches the VM: {"executor": "netns", "namespace": ...}
    access: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """An account user with a role and API credentials."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    #: Admin | DomainAdmin | User
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    api_key: Mapped[str] = mapped_column(String(255), unique=True)
    secret_key: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(String(36), default=new_uuid)
    domain_id: Mapped[str] = mapped_column(String(36))
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Session(Base):
    """A login session; only hashes of the cookie and of the session key are kept."""

    __tablename__ = "sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime] = mapped_column()


class AsyncJob(Base):
    """An async job (CloudStack's async_job); the result is JSON text as the API returns it."""

    __tablename__ = "async_jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[str] = mapped_column(String(36))
    cmd: Mapped[str] = mapped_column(String(255))
    #: A JobStatus: 0 pending, 1 succeeded, 2 failed
    status: Mapped[int] = mapped_column(Integer, default=JobStatus.PENDING, index=True)
    result_code: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    instance_type: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    host_id: Mapped[str | None] = mapped_column(String(36), default=None)
    #: The request as validated, e.g. {"type": "ping", "ipaddress": .., "params": [..]}
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Which management server process runs the job (recovery after a crash).
    server_id: Mapped[str] = mapped_column(String(64), default="")
    #: The job this one is a part of (a run over many VMs); a parent's status follows its
    #: children's (jobs/parents.py).
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("async_jobs.id", name="fk_async_jobs_parent_id"), default=None, index=True
    )
    created: Mapped[datetime] = mapped_column(default=utcnow)
    completed: Mapped[datetime | None] = mapped_column(default=None)

    # listAsyncJobs and the per-user rate limit: one user's jobs over a span of time.
    __table_args__ = (Index("ix_async_jobs_user_created", "user_id", "created"),)


class ManagementServer(Base):
    """A management server (CloudStack's mshost): its id and its heartbeat.

    Every server stamps its row each sweep; the sweeps of the others fail the pending jobs
    of a server whose stamp has gone stale, and leave a live one's jobs to it.
    """

    __tablename__ = "management_servers"
    #: The persistent id of jobs/server_identity.py, as async_jobs.server_id holds it.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: hostname:port at its last start, for people: ownership goes by id.
    name: Mapped[str] = mapped_column(String(255), default="")
    started: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """The audit trail: who did what to which resource, when, and the outcome."""

    __tablename__ = "events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    type: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16), default="INFO")
    #: Scheduled | Started | Completed
    state: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(String(36))
    username: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(String(36))
    domain_id: Mapped[str] = mapped_column(String(36))
    resource_type: Mapped[str] = mapped_column(String(32), default="")
    resource_id: Mapped[str] = mapped_column(String(36), default="")
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_events_created", "created"),)


class LoginFailure(Base):
    """Failed logins per user and source, shared by every server (throttling and lockout)."""

    __tablename__ = "login_failures"
    #: "<username>|<source address>", or "<username>|*" for the count over all sources.
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    first: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class UsedSignature(Base):
    """A signature already accepted for a command that changes something (replay protection).

    Shared by every management server: the primary key makes a second use fail to insert,
    whichever server it reaches, however close together the two arrive.
    """

    __tablename__ = "used_signatures"
    #: Hex SHA-256 of the signature's HMAC bytes (api/signing.py signature_digest).
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: When the signature stops being accepted anyway, so the row can go; None: never (a
    #: request without signatureVersion=3 and expires is valid for good).
    expires: Mapped[datetime | None] = mapped_column(default=None, index=True)


class AgentKey(Base):
    """A host registered with `cloudiag host add`: its agent's nkey on the bus.

    The bus's authorization is made from these rows (bus/authorization.py); removing one
    revokes the agent. The host's row in `hosts` comes with its agent's first report.
    """

    __tablename__ = "agent_keys"
    host_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: The public half of the agent's nkey (U…); the seed is only in the agent's config.
    public_key: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(default=utcnow)
