"""The agent's configuration file (TOML) that `cloudiag host add` writes and
`cloudiag agent --config FILE` reads: where the bus is, who the agent is on it, its host
and where it learns its VMs. Flags and CLOUDIAG_* variables win over it."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudiag.agent.sources.inventory import describe


class ConfigFileError(ValueError):
    """The file cannot be read or holds what an agent's config may not."""


class AgentConfig(BaseModel):
    """What an agent's config file may say."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The NATS server(s), comma-separated; tls:// for TLS.
    nats_url: str
    #: Its nkey seed (SU…): the secret that makes it its host's agent on the bus.
    nkey_seed: str
    host_id: str
    host_name: str | None = None
    #: TLS: the CA of the servers' certificates; a certificate of its own if they ask.
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Where it learns its VMs: a static inventory file, else the lab of this prefix.
    inventory: Path | None = None
    lab_prefix: str | None = None
    executor: Literal["netns", "ssh"] | None = None
    heartbeat_interval: float | None = Field(default=None, gt=0, le=300)
    data_dir: Path | None = None


def load(path: Path) -> AgentConfig:
    """The config in `path`; raises ConfigFileError."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path} is not TOML: {exc}") from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError(f"{path}: {describe(exc)}") from None


def render(config: AgentConfig) -> str:
    """The config as TOML, the fields that are set only."""
    lines = [
        "# cloudiag agent --config THIS-FILE (written by `cloudiag host add`).",
        "# It holds the agent's nkey seed: keep it 0600, readable by the agent only.",
    ]
    for name, value in config.model_dump(exclude_none=True, mode="json").items():
        # A JSON string or number is a TOML basic string or number.
        lines.append(f"{name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write(path: Path, config: AgentConfig) -> Path:
    """Write the config, mode 0600 (it holds the seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file.
    with os.fdopen(fd, "w") as fh:
        fh.write(render(config))
    return path
