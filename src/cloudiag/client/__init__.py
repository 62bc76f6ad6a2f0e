"""The typed Python client of cloudiag's CloudStack-compatible API (used by tests and benches,
and the CLI's base): signed or session calls, async jobs, live output, typed answers."""

from cloudiag.client.async_client import AsyncClient
from cloudiag.client.credentials import ApiKey, signature
from cloudiag.client.errors import ApiCallError, JobTimeout
from cloudiag.client.models import (
    AsyncJob,
    DiagnosticsOption,
    DiagnosticsResult,
    DiagnosticsType,
    Host,
    Login,
    OutputLine,
    SystemVm,
    Zone,
)
from cloudiag.client.sync_client import Client

__all__ = [
    "ApiCallError",
    "ApiKey",
    "AsyncClient",
    "AsyncJob",
    "Client",
    "DiagnosticsOption",
    "DiagnosticsResult",
    "DiagnosticsType",
    "Host",
    "JobTimeout",
    "Login",
    "OutputLine",
    "SystemVm",
    "Zone",
    "signature",
]
