"""The API commands; importing this package registers every one of them."""

from cloudiag.api.commands import apis, auth, diagnostics, diagnostics_extra, events, infra, jobs

__all__ = ["apis", "auth", "diagnostics", "diagnostics_extra", "events", "infra", "jobs"]
