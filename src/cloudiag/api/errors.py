"""API errors as CloudStack reports them: an HTTP status (``errorcode``) and a ``cserrorcode``.

``errorcode`` is CloudStack's ``ApiErrorCode`` and doubles as the HTTP status. ``cserrorcode``
comes from CloudStack's ``CSExceptionErrorCode``: a ``ServerApiException`` raised on its own
carries 9999, one that wraps a typed exception carries that exception's code (for example
``InvalidParameterValueException`` -> 4350, ``PermissionDeniedException`` -> 4365). A 401
carries no ``cserrorcode`` at all.
"""

from __future__ import annotations

from typing import Final

from cloudiag import domain

__all__ = [
    "ACCOUNT_ERROR",
    "API_LIMIT_EXCEEDED",
    "CS_INVALID_PARAMETER_VALUE",
    "CS_PERMISSION_DENIED",
    "CS_REQUEST_LIMIT",
    "CS_SERVER_API",
    "INTERNAL_ERROR",
    "METHOD_NOT_ALLOWED",
    "PARAM_ERROR",
    "UNAUTHORIZED",
    "UNSUPPORTED_ACTION",
    "ApiError",
]

# ApiErrorCode values (also the HTTP status of the response).
UNAUTHORIZED: Final = 401
METHOD_NOT_ALLOWED: Final = 405
API_LIMIT_EXCEEDED: Final = 429
PARAM_ERROR: Final = 431
UNSUPPORTED_ACTION: Final = 432
INTERNAL_ERROR: Final = domain.INTERNAL_ERROR_CODE
ACCOUNT_ERROR: Final = 531

# CSExceptionErrorCode values.
CS_SERVER_API: Final = 9999  # ServerApiException thrown on its own (missing parameter, ...)
CS_INVALID_PARAMETER_VALUE: Final = 4350  # InvalidParameterValueException (bad value, bad id)
CS_PERMISSION_DENIED: Final = 4365  # PermissionDeniedException
CS_REQUEST_LIMIT: Final = 4545  # RequestLimitException (CloudStack itself answers 429 with 9999)

# CloudStack's own wording for a refused API-key or session request.
_UNAUTHORIZED_TEXT: Final = "unable to verify user credentials and/or request signature"


class ApiError(Exception):
    """An error answered to an API client; render it with ``render.error_payload``.

    ``errorcode`` is also the HTTP status. ``cserrorcode`` is ``None`` for a 401 whatever is
    passed, because CloudStack's 401 body has no such field.
    """

    errorcode: int
    errortext: str
    cserrorcode: int | None
    #: The request parameter the error concerns, when there is one (sent as a header, so a
    #: form can show the text beside its field while the body stays CloudStack's).
    parameter: str | None

    def __init__(
        self,
        errorcode: int,
        errortext: str,
        cserrorcode: int | None = CS_SERVER_API,
        param: str | None = None,
    ) -> None:
        """Create an error with HTTP status ``errorcode`` and client-visible ``errortext``."""
        super().__init__(errortext)
        self.errorcode = errorcode
        self.errortext = errortext
        self.cserrorcode = None if errorcode == UNAUTHORIZED else cserrorcode
        self.parameter = param

    def __repr__(self) -> str:
        return (
            f"ApiError(errorcode={self.errorcode!r}, errortext={self.errortext!r}, "
            f"cserrorcode={self.cserrorcode!r})"
        )

    @property
    def description_header(self) -> str:
        """``errortext`` made safe for the ``X-Description`` header legacy cloudmonkey prints.

        A header value must be one line of Latin-1 without whitespace at either end (h11
        refuses to send any other, and the client would get no response at all): line breaks
        and other control characters become spaces (no header injection), other characters
        are replaced by ``?``, and the ends are stripped.
        """
        one_line = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in self.errortext)
        return one_line.encode("latin-1", "replace").decode("latin-1").strip()

    @classmethod
    def unauthorized(cls, text: str = _UNAUTHORIZED_TEXT) -> ApiError:
        """401: bad signature, unknown key, expired request, no or stale session."""
        return cls(UNAUTHORIZED, text, None)

    @classmethod
    def method_not_allowed(cls, text: str) -> ApiError:
        """405: wrong HTTP method (``login`` over GET)."""
        return cls(METHOD_NOT_ALLOWED, text)

    @classmethod
    def limit_exceeded(cls, text: str) -> ApiError:
        """429: API request limit exceeded (CloudStack sends 9999 here, not 4545)."""
        return cls(API_LIMIT_EXCEEDED, text)

    @classmethod
    def param(
        cls, text: str, cserrorcode: int = CS_INVALID_PARAMETER_VALUE, name: str | None = None
    ) -> ApiError:
        """431: a parameter value is invalid.

        Defaults to 4350 as for CloudStack's ``InvalidParameterValueException``, which is what
        commands raise (unknown system VM id, bad diagnostics type, bad ``params``); pass
        ``CS_SERVER_API`` for framework checks such as a missing required parameter, for
        which CloudStack sends 9999. ``name`` is the parameter concerned.
        """
        return cls(PARAM_ERROR, text, cserrorcode, name)

    @classmethod
    def forbidden(cls, text: str) -> ApiError:
        """432: the command is unsupported or not permitted for this caller."""
        return cls(UNSUPPORTED_ACTION, text)

    @classmethod
    def no_command(cls) -> ApiError:
        """432 for a request without a ``command`` (under ``errorresponse``)."""
        return cls(UNSUPPORTED_ACTION, "Invalid request, no command sent")

    @classmethod
    def internal(cls, text: str) -> ApiError:
        """530: an internal error."""
        return cls(INTERNAL_ERROR, text)

    @classmethod
    def account(cls, text: str, cserrorcode: int = CS_SERVER_API) -> ApiError:
        """531: account error, e.g. failed login (pass ``CS_PERMISSION_DENIED`` for a denial)."""
        return cls(ACCOUNT_ERROR, text, cserrorcode)

    @classmethod
    def from_domain(cls, err: domain.DomainError) -> ApiError:
        """The CloudStack error a service's refusal is reported as."""
        if isinstance(err, domain.InvalidInput):
            return cls.param(err.text, name=err.param)
        if isinstance(err, domain.PermissionDenied):
            return cls(UNSUPPORTED_ACTION, err.text, CS_PERMISSION_DENIED, err.param)
        if isinstance(err, domain.LimitExceeded):
            return cls.limit_exceeded(err.text)
        if isinstance(err, domain.AuthenticationFailed):
            return cls.account(err.text)
        return cls.internal(err.text)
