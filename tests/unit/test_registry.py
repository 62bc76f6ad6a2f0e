"""The command registry: declared parameters drive validation and listApis."""

from __future__ import annotations

import pytest

import cloudiag.api.commands  # noqa: F401  (registers the commands)
from cloudiag.api.errors import ApiError
from cloudiag.api.registry import REGISTRY, Param


def test_every_command_is_declared_once_with_cloudstack_names() -> None:
    names = {c.name for c in REGISTRY.commands.values()}
    assert {
        "listApis",
        "listCapabilities",
        "login",
        "logout",
        "listZones",
        "listHosts",
        "listSystemVms",
        "listRouters",
        "queryAsyncJobResult",
        "listAsyncJobs",
        "listEvents",
        "runDiagnostics",
    } <= names
    for command in REGISTRY.commands.values():
        params = [p.name for p in command.params]
        assert len(params) == len(set(params)), command.name


def test_missing_required_parameter_names_it() -> None:
    run = REGISTRY.get("runDiagnostics")
    assert run is not None
    with pytest.raises(ApiError) as err:
        run.validate({"targetid": "7d4c5c5e-3c5b-4a48-9a8a-7f1f7e0f2a11", "type": "ping"})
    assert err.value.errorcode == 431
    assert "missing parameter ipaddress" in err.value.errortext


@pytest.mark.parametrize("name", ["type", "ipaddress", "targetid"])
@pytest.mark.parametrize("empty", ["", " ", "\t"])
def test_an_empty_required_parameter_is_refused_as_empty(name: str, empty: str) -> None:
    run = REGISTRY.get("runDiagnostics")
    assert run is not None
    given = {"targetid": "7d4c5c5e-3c5b-4a48-9a8a-7f1f7e0f2a11", "type": "ping"}
    with pytest.raises(ApiError) as err:
        run.validate({**given, "ipaddress": "198.51.100.10", name: empty})
    assert (err.value.errorcode, err.value.cserrorcode) == (431, 9999)
    assert err.value.errortext == f"Parameter {name} must not be empty"
    assert err.value.parameter == name


def test_an_empty_optional_string_is_kept() -> None:
    run = REGISTRY.get("runDiagnostics")
    assert run is not None
    given = {"targetid": "7d4c5c5e-3c5b-4a48-9a8a-7f1f7e0f2a11", "type": "ping"}
    assert run.validate({**given, "ipaddress": "198.51.100.10", "params": ""})["params"] == ""


def test_parameter_names_are_case_insensitive_and_unknown_ones_dropped() -> None:
    run = REGISTRY.get("rundiagnostics")
    assert run is not None
    values = run.validate(
        {
            "TargetId": "7D4C5C5E-3C5B-4A48-9A8A-7F1F7E0F2A11",
            "type": "ping",
            "ipaddress": "198.51.100.10",
            "bogus": "; rm -rf /",
        }
    )
    assert values == {
        "targetid": "7d4c5c5e-3c5b-4a48-9a8a-7f1f7e0f2a11",
        "type": "ping",
        "ipaddress": "198.51.100.10",
    }


@pytest.mark.parametrize(
    ("param", "raw", "text"),
    [
        (Param("id", "uuid", "x"), "12", "not a valid uuid"),
        (Param("page", "integer", "x", minimum=1), "0", "at least 1"),
        (Param("page", "integer", "x"), "1e3", "not an integer"),
        (Param("listall", "boolean", "x"), "maybe", "not a boolean"),
        (Param("state", "string", "x", choices=("Up", "Down")), "Sideways", "allowed: Up, Down"),
        (Param("name", "string", "x", length=4), "toolong", "too long"),
        (Param("name", "string", "x"), "a\x00b", "control characters"),
    ],
)
def test_bad_values_are_431(param: Param, raw: str, text: str) -> None:
    with pytest.raises(ApiError) as err:
        param.convert("cmd", raw)
    assert err.value.errorcode == 431
    assert text in err.value.errortext


def test_conversions() -> None:
    assert Param("p", "integer", "x").convert("c", " 42 ") == 42
    assert Param("p", "boolean", "x").convert("c", "TRUE") is True
    assert Param("p", "string", "x", choices=("Running",)).convert("c", "running") == "Running"


def test_list_apis_entry_has_every_field_clients_read() -> None:
    run = REGISTRY.get("runDiagnostics")
    assert run is not None
    entry = run.describe()
    assert entry["isasync"] is True and entry["name"] == "runDiagnostics"
    for p in entry["params"]:
        assert set(p) >= {"name", "description", "type", "required", "length", "since"}
        assert isinstance(p["length"], int) and isinstance(p["required"], bool)


def test_roles() -> None:
    allowed_to_user = {c.name for c in REGISTRY.allowed("User")}
    assert "runDiagnostics" not in allowed_to_user
    assert "listHosts" not in allowed_to_user
    assert {"login", "logout", "listZones", "queryAsyncJobResult"} <= allowed_to_user
    assert "runDiagnostics" in {c.name for c in REGISTRY.allowed("Admin")}
