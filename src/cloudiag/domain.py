"""What every layer shares and no layer owns: the caller, job status, VM types, limits, errors.

Declared once here; ``api/`` maps the errors to CloudStack's codes, ``services/`` and ``jobs/``
raise them. The system-VM package (``sysvm/``) is shipped on its own and keeps its own copy of
the few facts it needs; a test holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final


class JobStatus(IntEnum):
    """An async job's ``jobstatus`` as CloudStack reports it."""

    PENDING = 0
    SUCCEEDED = 1
    FAILED = 2


class VmType(StrEnum):
    """CloudStack's names of the VM types the inventory holds."""

    DOMAIN_ROUTER = "domainrouter"
    SECONDARY_STORAGE = "secondarystoragevm"
    CONSOLE_PROXY = "consoleproxy"
    USER_VM = "uservm"


#: The VM types a diagnostic can run on (CloudStack's runDiagnostics refuses user VMs).
SYSTEM_VM_TYPES: Final = frozenset(
    {VmType.DOMAIN_ROUTER, VmType.SECONDARY_STORAGE, VmType.CONSOLE_PROXY}
)

#: CloudStack's ApiErrorCode.INTERNAL_ERROR: the HTTP status of a 530 answer, and the
#: result code of a failed async job.
INTERNAL_ERROR_CODE: Final = 530

#: The longest time limit any diagnostic may be given, in seconds.
MAX_TIME_LIMIT: Final = 3600.0


@dataclass(frozen=True)
class Caller:
    """The authenticated user of a request."""

    id: str
    username: str
    role: str
    account_id: str
    domain_id: str

    @property
    def is_admin(self) -> bool:
        """Root admins see and may do everything."""
        return self.role == "Admin"


class DomainError(Exception):
    """A refusal that a client must hear about, in words fit to show it.

    ``param`` names the request parameter the error concerns, when there is one.
    """

    def __init__(self, text: str, *, param: str | None = None) -> None:
        """An error with client-visible ``text``."""
        super().__init__(text)
        self.text = text
        self.param = param


class InvalidInput(DomainError):
    """A value the caller gave is invalid (CloudStack: InvalidParameterValueException)."""


class NotFound(InvalidInput):
    """An id names nothing the caller may see (CloudStack reports it as a bad value too)."""


class PermissionDenied(DomainError):
    """The caller may not do this (CloudStack: PermissionDeniedException)."""


class AuthenticationFailed(DomainError):
    """A login refused: wrong credentials, or locked out (CloudStack: an account error)."""


class LimitExceeded(DomainError):
    """A quota or rate limit is used up."""


class Unavailable(DomainError):
    """A part the request needs (database, bus, agent) cannot serve it now."""
