"""The API commands; importing this package registers every one of them."""

from cloudiag.api.commands import (
    apis,
    auth,
    cancel,
    diagnostics,
    diagnostics_types,
    events,
    infra,
    jobs,
)

__all__ = [
    "apis",
    "auth",
    "cancel",
    "diagnostics",
    "diagnostics_types",
    "events",
    "infra",
    "jobs",
]
