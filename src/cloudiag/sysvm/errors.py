"""The one error of the system-VM package: refused input, naming CloudStack's field."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DiagnosticsInputError(ValueError):
    """Refused input; ``field`` is "type", "ipaddress" or "params" (CloudStack's names)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the two-argument constructor picklable (multiprocessing, caches).
        return (type(self), (self.field, self.message))
