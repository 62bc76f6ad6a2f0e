"""The command registry: each API command declares its parameters once.

Validation, `listApis` and the docs all read these declarations.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloudiag.api.errors import CS_SERVER_API, ApiError
from cloudiag.services.accounts import ROLES

if TYPE_CHECKING:
    from cloudiag.api.context import RequestContext

ADMIN, DOMAIN_ADMIN, USER = ROLES["admin"], ROLES["domainadmin"], ROLES["user"]
ALL_ROLES = frozenset({ADMIN, DOMAIN_ADMIN, USER})
ROLE_TYPES = {ADMIN: 1, DOMAIN_ADMIN: 2, USER: 0}

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Param:
    """One API parameter: its name, type and limits, as listApis shows them."""

    name: str
    type: str  # uuid | string | integer | boolean
    description: str
    required: bool = False
    length: int = 255
    since: str = "4.0.0"
    related: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None

    def convert(self, command: str, raw: str) -> Any:
        """The value in its declared type, or ApiError 431 naming the parameter."""
        if len(raw) > self.length:
            raise ApiError.param(
                f"Parameter {self.name} is too long: {len(raw)} characters, at most {self.length}"
            )
        if _CONTROL.search(raw):
            raise ApiError.param(f"Parameter {self.name} contains control characters")
        if self.type == "uuid":
            try:
                return str(uuid.UUID(raw.strip()))
            except ValueError:
                raise ApiError.param(
                    f"Invalid parameter {self.name} value={raw!r}: not a valid uuid"
                ) from None
        if self.type == "integer":
            try:
                value = int(raw.strip())
            except ValueError:
                raise ApiError.param(
                    f"Invalid parameter {self.name} value={raw!r}: not an integer"
                ) from None
            if self.minimum is not None and value < self.minimum:
                raise ApiError.param(f"Parameter {self.name} must be at least {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise ApiError.param(f"Parameter {self.name} must be at most {self.maximum}")
            return value
        if self.type == "boolean":
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ApiError.param(f"Invalid parameter {self.name} value={raw!r}: not a boolean")
        if self.choices:
            for choice in self.choices:
                if raw.strip().lower() == choice.lower():
                    return choice
            raise ApiError.param(
                f"Invalid parameter {self.name} value={raw!r}; allowed: {', '.join(self.choices)}"
            )
        return raw

    def describe(self) -> dict[str, Any]:
        """The listApis entry of this parameter."""
        entry: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "type": self.type,
            "required": self.required,
            "length": self.length,
            "since": self.since,
        }
        if self.related:
            entry["related"] = self.related
        return entry


@dataclass(frozen=True)
class ResponseField:
    """One field of a command's response, as listApis shows it."""

    name: str
    type: str
    description: str


Handler = Callable[["RequestContext", dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Command:
    """An API command: name, parameters, who may call it, how it answers."""

    name: str
    description: str
    handler: Handler
    params: tuple[Param, ...] = ()
    response: tuple[ResponseField, ...] = ()
    roles: frozenset[str] = ALL_ROLES
    is_async: bool = False
    since: str = "4.0.0"
    related: str = ""
    #: False only for login: the caller has no credentials yet.
    needs_auth: bool = True
    post_only: bool = False
    #: Starts or changes something: a signature of it is accepted once (api/auth.py
    #: spend_signature), so a captured request cannot be replayed. Read-only commands stay
    #: repeatable (clients sign identical list calls within one second).
    changes_state: bool = False
    #: The handler spends that signature itself (RequestContext.signature) in the
    #: transaction of what it does, rather than the API in one of its own before it.
    spends_signature: bool = False
    #: The Java class name CloudStack reports as a job's `cmd`.
    cmd_class: str = ""

    def validate(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """Declared parameters converted to their types; unknown ones are dropped."""
        values: dict[str, Any] = {}
        lowered = {k.lower(): v for k, v in raw.items()}
        for p in self.params:
            value = lowered.get(p.name.lower())
            if p.required and value is not None and not value.strip():
                raise ApiError.param(
                    f"Parameter {p.name} must not be empty", CS_SERVER_API, name=p.name
                )
            if value is None or (value.strip() == "" and p.type != "string"):
                if p.required:
                    # A framework check: CloudStack answers it with 9999.
                    raise ApiError.param(
                        f"Unable to execute API command {self.name.lower()} "
                        f"due to missing parameter {p.name}",
                        CS_SERVER_API,
                        name=p.name,
                    )
                continue
            try:
                values[p.name] = p.convert(self.name, value)
            except ApiError as exc:
                exc.parameter = p.name
                raise
        return values

    def describe(self) -> dict[str, Any]:
        """The listApis entry of this command."""
        entry: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "isasync": self.is_async,
            "since": self.since,
            "params": [p.describe() for p in self.params],
            "response": [
                {"name": r.name, "type": r.type, "description": r.description}
                for r in self.response
            ],
        }
        if self.related:
            entry["related"] = self.related
        return entry


@dataclass
class Registry:
    """All commands, by name."""

    commands: dict[str, Command] = field(default_factory=dict)

    def add(self, command: Command) -> Command:
        """Register a command; a name may be declared only once."""
        key = command.name.lower()
        if key in self.commands:
            raise ValueError(f"command {command.name} declared twice")
        self.commands[key] = command
        return command

    def get(self, name: str) -> Command | None:
        """The command of that name (CloudStack's names, matched case-insensitively)."""
        return self.commands.get(name.lower())

    def allowed(self, role: str) -> list[Command]:
        """The commands a role may call, sorted by name."""
        return sorted((c for c in self.commands.values() if role in c.roles), key=lambda c: c.name)


REGISTRY = Registry()

# Parameters every list command shares (CloudStack's BaseListCmd).
PAGE = Param("page", "integer", "the page number of the result set", minimum=1, maximum=10**6)
PAGESIZE = Param(
    "pagesize",
    "integer",
    "the number of entries per page (-1: all of them, without page)",
    minimum=-1,
    maximum=10000,
)
KEYWORD = Param("keyword", "string", "List by keyword")
LISTALL = Param(
    "listall", "boolean", "If set to false, list only resources belonging to the command's caller"
)
LIST_PARAMS = (KEYWORD, PAGE, PAGESIZE)
