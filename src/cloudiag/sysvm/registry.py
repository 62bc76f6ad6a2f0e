"""The registry of diagnostic types, by name, gathered from ``types/``."""

from __future__ import annotations

from types import MappingProxyType

from .errors import DiagnosticsInputError
from .types import MODULES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .diagnostic_type import DiagnosticType

#: Every diagnostic type by name, in the order they are offered (their ``order``, then name);
#: read-only so that no caller can widen the rules.
TYPES: Mapping[str, DiagnosticType] = MappingProxyType(
    {t.name: t for t in sorted((m.TYPE for m in MODULES), key=lambda t: (t.order, t.name))}
)


def get_type(name: str) -> DiagnosticType:
    """Return the diagnostic type called ``name`` (case-insensitive)."""
    dtype = TYPES.get(name.lower()) if isinstance(name, str) else None
    if dtype is None:
        raise DiagnosticsInputError("type", f"{name} Is not a valid diagnostics command type.")
    return dtype


def types_for_vm(vm_type: str) -> list[DiagnosticType]:
    """The diagnostic types a system VM type supports ([] for an unknown VM type)."""
    wanted = vm_type.lower()
    return [t for t in TYPES.values() if wanted in t.vm_types]
