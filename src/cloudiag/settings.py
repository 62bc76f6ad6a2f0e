"""Settings from flags and CLOUDIAG_* environment variables (flags win)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Where the SQLite file, the private NATS store and credentials go by default."""
    return Path.home() / ".local" / "share" / "cloudiag"


class Settings(BaseSettings):
    """Every knob of the server and the agent; one place, one name each."""

    model_config = SettingsConfigDict(env_prefix="CLOUDIAG_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    nats_url: str | None = None
    #: Time limit of every diagnostic (seconds); unset, each type has its own (ping 120 s…).
    diagnostics_timeout: float | None = Field(default=None, gt=0, le=3600)
    #: Agents send a heartbeat this often; a host is Disconnected after 3 missed beats.
    heartbeat_interval: float = Field(default=5.0, gt=0, le=300)
    #: Jobs the server runs at once (each waits on an agent, so this bounds memory, not CPU).
    job_concurrency: int = Field(default=200, ge=1, le=10000)
    session_timeout: int = Field(default=1800, ge=60, le=86400)
    lab_prefix: str = "cdlab"
    log_level: str = "INFO"
    log_format: str = Field(default="text", pattern="^(text|json)$")

    def resolved_database_url(self) -> str:
        """The configured database, else a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'cloudiag.db'}"
