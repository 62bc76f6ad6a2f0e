"""The API commands; importing this package registers every one of them."""

from cloudiag.api.commands import (
    apis,
    auth,
    cancel,
    diagnostics_types,
    events,
    get_diagnostics_data,
    infra,
    jobs,
    run_diagnostics,
)

__all__ = [
    "apis",
    "auth",
    "cancel",
    "diagnostics_types",
    "events",
    "get_diagnostics_data",
    "infra",
    "jobs",
    "run_diagnostics",
]
