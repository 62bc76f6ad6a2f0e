"""Validation of a whole request against its type's declaration: the option grammar.

``params`` is options (a flag, then its value if it takes one) and, for types that declare
them, positional words. Every rule comes from the type's declaration; nothing here knows a
particular tool.
"""

from __future__ import annotations

from .errors import DiagnosticsInputError
from .frozen import Frozen, set_fields
from .registry import get_type
from .tokens import format_number, parse_ip, split_params

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .diagnostic_type import DiagnosticType


class Request(Frozen):
    """A validated diagnostics request: safe to turn into an argv with build_argv().

    ``address`` is the normalized target (an address or host name for most types),
    ``params`` the options as a normalized argv fragment, ``positionals`` the positional
    words by name, with their prefixes, in declaration order. ``given`` is the target as
    validated, before pin_destination() aimed it at the address its name resolved to (a
    URL's name is still needed for the Host header and the certificate check).
    """

    __slots__ = ("address", "estimated_seconds", "given", "params", "positionals", "type")
    type: DiagnosticType
    address: str
    params: list[str]
    estimated_seconds: float
    positionals: tuple[tuple[str, str], ...]
    given: str

    def __init__(
        self,
        type: DiagnosticType,
        address: str,
        params: list[str],
        estimated_seconds: float,
        positionals: tuple[tuple[str, str], ...] = (),
        given: str = "",
    ) -> None:
        set_fields(
            self,
            type=type,
            address=address,
            params=params,
            estimated_seconds=estimated_seconds,
            positionals=positionals,
            given=given or address,
        )

    def aimed_at(self, address: str) -> Request:
        """The same request with another target (``given`` stays the first one)."""
        return Request(
            self.type, address, self.params, self.estimated_seconds, self.positionals, self.given
        )


def _unexpected(dtype: DiagnosticType, token: str) -> DiagnosticsInputError:
    allowed = ", ".join(dtype.allowed_flags())
    if not dtype.positionals:
        return DiagnosticsInputError(
            "params",
            f'Unexpected argument "{token}" for {dtype.name}: parameters are options; '
            f"allowed: {allowed}",
        )
    words = ", ".join(p.prefix + p.name for p in dtype.positionals)
    return DiagnosticsInputError(
        "params",
        f'Unexpected argument "{token}" for {dtype.name}: it takes the words {words} '
        f"and the options {allowed}",
    )


def _positional(dtype: DiagnosticType, token: str, filled: dict[str, str]) -> None:
    """Give ``token`` to the positional it fills, checked."""
    for spec in dtype.positionals:
        if spec.prefix and token.startswith(spec.prefix):
            if spec.name in filled:
                raise DiagnosticsInputError(
                    "params",
                    f'"{spec.prefix}{spec.name}" is given more than once for {dtype.name}.',
                )
            break
    else:
        free = [p for p in dtype.positionals if not p.prefix and p.name not in filled]
        if not free:
            raise _unexpected(dtype, token)
        spec = free[0]
    filled[spec.name] = spec.prefix + spec.check(token[len(spec.prefix) :])


def _split(
    dtype: DiagnosticType, params: str | Sequence[str] | None
) -> tuple[list[str], dict[str, str]]:
    """The checked options (normalized argv fragment) and positionals of ``params``."""
    tokens = split_params(params, dtype.extra_token_chars())
    allowed = ", ".join(dtype.allowed_flags())
    seen: set[str] = set()
    filled: dict[str, str] = {}
    result: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("-"):
            _positional(dtype, token, filled)
            continue
        spec = dtype.options.get(token)
        if spec is None:
            hint = ""
            glued = dtype.options.get(token[:2])
            if glued is not None and glued.takes_value and len(token) > 2:
                hint = f' (write the value after a space: "{token[:2]} {token[2:]}")'
            if token in dtype.forced_options:
                hint = f" ({dtype.name} always uses {token})"
            raise DiagnosticsInputError(
                "params",
                f'Option "{token}" is not allowed for {dtype.name}; allowed: {allowed}{hint}',
            )
        if token in seen:
            raise DiagnosticsInputError(
                "params", f'Option "{token}" is given more than once for {dtype.name}.'
            )
        if spec.takes_value:
            if index >= len(tokens):
                raise DiagnosticsInputError(
                    "params",
                    f'Option "{token}" of {dtype.name} needs a value: {spec.describe_value()}',
                )
            result.extend((token, spec.check(tokens[index], dtype.name)))
            index += 1
        else:
            result.append(token)
        seen.add(token)
    for group in dtype.conflicts:
        given = sorted(group.intersection(seen))
        if len(given) > 1:
            raise DiagnosticsInputError(
                "params",
                f"Options {' and '.join(given)} cannot be used together for {dtype.name}.",
            )
    for positional in dtype.positionals:
        if positional.required and positional.name not in filled:
            raise DiagnosticsInputError(
                "params",
                f'{dtype.name} needs "{positional.prefix}{positional.name}": '
                f"{positional.description}",
            )
    return result, filled


def parse_params(dtype: DiagnosticType, params: str | Sequence[str] | None) -> list[str]:
    """Check the options of ``dtype`` and return them as a normalized argv fragment.

    ``params`` is one string (words separated by ASCII spaces) or a list of words.
    Raises DiagnosticsInputError(field="params") naming the offending option.
    """
    return _split(dtype, params)[0]


def options_of(params: Sequence[str], dtype: DiagnosticType) -> dict[str, str]:
    """Map flag -> value ("" for flags) of normalized params plus the type's defaults."""
    options: dict[str, str] = {}
    index = 0
    while index < len(params):
        flag = params[index]
        if dtype.options[flag].takes_value:
            options[flag] = params[index + 1]
            index += 2
        else:
            options[flag] = ""
            index += 1
    for flag, value in dtype.default_options:
        options.setdefault(flag, value)
    return options


def validate(
    type_name: str,
    address: str,
    params: str | Sequence[str] | None,
    *,
    time_limit: float | None = None,
) -> Request:
    """Validate a whole request; raise DiagnosticsInputError naming the bad field.

    ``time_limit`` (seconds) overrides the type's limit for the estimated duration.
    """
    return validate_for(get_type(type_name), address, params, time_limit=time_limit)


def validate_for(
    dtype: DiagnosticType,
    address: str,
    params: str | Sequence[str] | None,
    *,
    time_limit: float | None = None,
) -> Request:
    """validate() for a type given by its declaration rather than its registered name."""
    target = dtype.target.check(address, dtype.name)
    argv, filled = _split(dtype, params)
    options: Mapping[str, str] = options_of(argv, dtype)
    dtype.extra_check(dtype, parse_ip(dtype.target.host(target)), options)
    estimate = float(dtype.estimate(options))
    limit = dtype.time_limit if time_limit is None else float(time_limit)
    if estimate > limit:
        raise DiagnosticsInputError(
            "params",
            f"The options of {dtype.name} may take up to {format_number(estimate)} s, more "
            f"than the limit of {format_number(limit)} s; lower the count, wait or hop "
            "options.",
        )
    positionals = tuple((p.name, filled[p.name]) for p in dtype.positionals if p.name in filled)
    return Request(
        type=dtype,
        address=target,
        params=argv,
        estimated_seconds=estimate,
        positionals=positionals,
    )
