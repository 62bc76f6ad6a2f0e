"""Read-only value classes without dataclasses.

The script starts once per diagnostic: importing dataclasses (with inspect, ast, dis and
tokenize) and creating each dataclass costs it several milliseconds, more than all the rest
of the package. The package's declarations and records are plain classes with ``__slots__``
built on these two helpers instead.
"""

from __future__ import annotations


class Frozen:
    """Base of a read-only class: fields are set once, by ``__init__`` through set_fields()."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        # Declarations are read-only so that no caller can widen the rules at run time.
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        names: tuple[str, ...] = getattr(type(self), "__slots__", ())
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


def set_fields(obj: Frozen, **values: object) -> None:
    """Set the fields of a Frozen object (from its ``__init__`` only)."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)
