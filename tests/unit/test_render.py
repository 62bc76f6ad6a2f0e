"""Response rendering (JSON and XML) and API errors, checked against the client contract."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from types import MappingProxyType
from typing import Any

import pytest
import requests
from cs import CloudStack, CloudStackApiException

from cloudiag import domain
from cloudiag.api import errors
from cloudiag.api.errors import ApiError
from cloudiag.api.render import (
    CLOUDSTACK_VERSION,
    JSON_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    envelope_key,
    error_payload,
    render,
    render_error,
    wants_json,
)

JOB_ID = "6c4dbe2a-3c0e-4b53-8a6c-1b1b3f0a9d11"
NASTY = "<script>alert(\"x\")</script> & 'q' é 日本 \t\n\r end"


def _json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))


def _xml(body: bytes) -> ET.Element:
    # Parsing our own output, not untrusted input.
    return ET.fromstring(body)


# ---------------------------------------------------------------------------- JSON


def test_async_response_json_exact() -> None:
    body, ctype = render("runDiagnostics", {"jobid": JOB_ID}, "json")
    assert ctype == JSON_CONTENT_TYPE == "application/json; charset=UTF-8"
    assert body == b'{"rundiagnosticsresponse":{"jobid":"' + JOB_ID.encode() + b'"}}'


def test_list_response_json() -> None:
    payload = {"count": 1, "systemvm": [{"id": "a1", "name": "v-1-VM", "state": "Running"}]}
    body, _ = render("listSystemVms", payload, "json")
    data = _json(body)
    assert list(data) == ["listsystemvmsresponse"]
    assert data["listsystemvmsresponse"] == payload
    assert data["listsystemvmsresponse"]["count"] == 1


def test_empty_list_is_an_empty_object() -> None:
    body, _ = render("listRouters", {}, "json")
    assert body == b'{"listroutersresponse":{}}'


def test_json_types_are_preserved() -> None:
    payload = {
        "jobstatus": 1,
        "jobresultcode": 0,
        "isasync": True,
        "required": False,
        "length": 255,
        "ratio": 0.5,
        "jobresult": {"diagnostics": {"stdout": "ok", "stderr": "", "exitcode": "0"}},
        "tags": [],
    }
    data = _json(render("queryAsyncJobResult", payload, "json")[0])
    inner = data["queryasyncjobresultresponse"]
    assert inner == payload
    assert inner["isasync"] is True and inner["required"] is False
    assert type(inner["jobstatus"]) is int and type(inner["ratio"]) is float
    assert inner["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_json_is_compact_and_utf8() -> None:
    body, _ = render("listZones", {"count": 1, "zone": [{"name": NASTY}]}, "json")
    assert b": " not in body and b", " not in body
    assert "日本".encode() in body  # not \\u escaped
    assert _json(body)["listzonesresponse"]["zone"][0]["name"] == NASTY


def test_json_lone_surrogate_is_escaped_not_fatal() -> None:
    stdout = b"bad \xff byte".decode("utf-8", "surrogateescape")
    body, _ = render("x", {"stdout": stdout}, "json")
    body.decode("utf-8")  # valid UTF-8
    assert _json(body)["xresponse"]["stdout"] == stdout


def test_json_accepts_any_mapping() -> None:
    body, _ = render("x", MappingProxyType({"a": MappingProxyType({"b": 1})}), "json")
    assert _json(body) == {"xresponse": {"a": {"b": 1}}}


def test_json_refuses_nan_and_unknown_types() -> None:
    with pytest.raises(ValueError):
        render("x", {"a": float("nan")}, "json")
    with pytest.raises(TypeError):
        render("x", {"a": object()}, "json")


@pytest.mark.parametrize(("fmt", "is_json"), [("json", True), ("JSON", True), ("Json", True)])
def test_json_format_is_case_insensitive(fmt: str, is_json: bool) -> None:
    assert wants_json(fmt) is is_json
    assert render("x", {}, fmt)[1] == JSON_CONTENT_TYPE


@pytest.mark.parametrize("fmt", [None, "xml", "XML", "", "jsonp", "html"])
def test_anything_else_is_xml(fmt: str | None) -> None:
    assert not wants_json(fmt)
    assert render("x", {}, fmt)[1] == XML_CONTENT_TYPE


# ---------------------------------------------------------------------------- envelope


@pytest.mark.parametrize(
    ("command", "key"),
    [
        ("runDiagnostics", "rundiagnosticsresponse"),
        ("queryAsyncJobResult", "queryasyncjobresultresponse"),
        ("listApis", "listapisresponse"),
        ("login", "loginresponse"),
        (None, "errorresponse"),
        ("", "errorresponse"),
        ("foo<bar>", "errorresponse"),
        ("a b", "errorresponse"),
        ("list\u00e9", "errorresponse"),
        ("1abc", "errorresponse"),
    ],
)
def test_envelope_key(command: str | None, key: str) -> None:
    assert envelope_key(command) == key
    assert list(_json(render(command, {}, "json")[0])) == [key]
    assert _xml(render(command, {}, None)[0]).tag == key


# ---------------------------------------------------------------------------- XML


def test_xml_matches_cloudstack_layout() -> None:
    payload = {"count": 1, "zone": [{"id": "z1", "name": "Zone 1", "securitygroupsenabled": False}]}
    body, ctype = render("listZones", payload, None)
    assert ctype == XML_CONTENT_TYPE == "text/xml; charset=UTF-8"
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<listzonesresponse cloud-stack-version="4.19.0">'
        b"<count>1</count>"
        b"<zone><id>z1</id><name>Zone 1</name>"
        b"<securitygroupsenabled>false</securitygroupsenabled></zone>"
        b"</listzonesresponse>"
    )
    assert _xml(body).get("cloud-stack-version") == CLOUDSTACK_VERSION


def test_xml_lists_repeat_and_dicts_nest() -> None:
    payload = {
        "count": 2,
        "api": [
            {
                "name": "runDiagnostics",
                "isasync": True,
                "params": [{"name": "type"}, {"name": "x"}],
            },
            {"name": "listApis", "isasync": False, "params": []},
        ],
        "related": ["a", "b"],
    }
    root = _xml(render("listApis", payload, "xml")[0])
    apis = root.findall("api")
    assert [a.findtext("name") for a in apis] == ["runDiagnostics", "listApis"]
    assert [a.findtext("isasync") for a in apis] == ["true", "false"]
    assert [p.findtext("name") for p in apis[0].findall("params")] == ["type", "x"]
    assert apis[1].findall("params") == []
    assert [r.text for r in root.findall("related")] == ["a", "b"]
    assert root.findtext("count") == "2"


def test_xml_async_result() -> None:
    payload = {
        "jobid": JOB_ID,
        "jobstatus": 1,
        "jobresult": {"diagnostics": {"stdout": "PING 192.0.2.1", "stderr": "", "exitcode": "0"}},
    }
    root = _xml(render("queryAsyncJobResult", payload, "xml")[0])
    assert root.findtext("jobresult/diagnostics/stdout") == "PING 192.0.2.1"
    assert root.findtext("jobresult/diagnostics/exitcode") == "0"
    # An empty string is an empty element, never a self-closing surprise.
    assert root.find("jobresult/diagnostics/stderr") is not None


def test_xml_escapes_everything() -> None:
    body, _ = render("runDiagnostics", {"stdout": NASTY, "errortext": "a]]>b"}, "xml")
    assert b"<script>" not in body
    root = _xml(body)
    assert root.findtext("stdout") == NASTY  # "\r" survives as &#13;
    assert root.findtext("errortext") == "a]]>b"
    assert "日本".encode() in body


def test_xml_replaces_characters_xml_cannot_carry() -> None:
    stdout = "nul\x00 bell\x07 esc\x1b " + b"\xff".decode("utf-8", "surrogateescape") + " \ufffe"
    root = _xml(render("x", {"stdout": stdout}, "xml")[0])
    assert root.findtext("stdout") == "nul\ufffd bell\ufffd esc\ufffd \ufffd \ufffd"


def test_xml_none_is_omitted() -> None:
    root = _xml(render("x", {"a": None, "b": "1"}, "xml")[0])
    assert [child.tag for child in root] == ["b"]


def test_xml_empty_payload() -> None:
    body, _ = render("listRouters", {}, "xml")
    assert body.endswith(
        b'<listroutersresponse cloud-stack-version="4.19.0"></listroutersresponse>'
    )


@pytest.mark.parametrize("name", ["a b", "<x>", "1st", "", "x&y", "é"])
def test_xml_refuses_invalid_field_names(name: str) -> None:
    with pytest.raises(ValueError, match="XML element name"):
        render("x", {"ok": {name: 1}}, "xml")


def test_xml_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        render("x", {"a": object()}, "xml")


# ---------------------------------------------------------------------------- errors


def test_error_payload_shape() -> None:
    err = ApiError.param("Unable to find a system vm with id 42")
    assert error_payload(err) == {
        "uuidList": [],
        "errorcode": 431,
        "cserrorcode": 4350,
        "errortext": "Unable to find a system vm with id 42",
    }
    assert list(error_payload(err)) == ["uuidList", "errorcode", "cserrorcode", "errortext"]


def test_error_json_exact() -> None:
    body, ctype = render_error("runDiagnostics", ApiError.internal("boom"), "json")
    assert ctype == JSON_CONTENT_TYPE
    assert body == (
        b'{"rundiagnosticsresponse":{"uuidList":[],"errorcode":530,'
        b'"cserrorcode":9999,"errortext":"boom"}}'
    )


def test_unauthorized_has_no_cserrorcode() -> None:
    err = ApiError.unauthorized()
    assert err.cserrorcode is None
    payload = error_payload(err)
    assert "cserrorcode" not in payload
    assert payload == {
        "uuidList": [],
        "errorcode": 401,
        "errortext": "unable to verify user credentials and/or request signature",
    }
    # Even when one is passed explicitly: a 401 never carries one.
    assert ApiError(401, "x", 1234).cserrorcode is None


def test_no_command_error() -> None:
    data = _json(render_error(None, ApiError.no_command(), "json")[0])
    assert data == {
        "errorresponse": {
            "uuidList": [],
            "errorcode": 432,
            "cserrorcode": 9999,
            "errortext": "Invalid request, no command sent",
        }
    }


@pytest.mark.parametrize(
    ("err", "code", "cscode"),
    [
        (ApiError.unauthorized("expired"), errors.UNAUTHORIZED, None),
        (ApiError.method_not_allowed("Please use HTTP POST"), errors.METHOD_NOT_ALLOWED, 9999),
        (ApiError.limit_exceeded("slow down"), errors.API_LIMIT_EXCEEDED, 9999),
        (ApiError.param("bad"), errors.PARAM_ERROR, 4350),
        (ApiError.param("missing", errors.CS_SERVER_API), errors.PARAM_ERROR, 9999),
        (ApiError.forbidden("no"), errors.UNSUPPORTED_ACTION, 9999),
        (ApiError.internal("oops"), errors.INTERNAL_ERROR, 9999),
        (ApiError.account("login failed"), errors.ACCOUNT_ERROR, 9999),
        (ApiError.account("denied", errors.CS_PERMISSION_DENIED), errors.ACCOUNT_ERROR, 4365),
    ],
)
def test_error_constructors(err: ApiError, code: int, cscode: int | None) -> None:
    assert (err.errorcode, err.cserrorcode) == (code, cscode)
    assert str(err) == err.errortext
    assert isinstance(err, Exception)


@pytest.mark.parametrize(
    ("refusal", "code", "cscode", "param"),
    [
        # What the services raised as ApiError before they raised domain errors.
        (domain.InvalidInput("bad", param="pagesize"), errors.PARAM_ERROR, 4350, "pagesize"),
        (domain.NotFound("Unable to find a job"), errors.PARAM_ERROR, 4350, None),
        (domain.LimitExceeded("busy"), errors.API_LIMIT_EXCEEDED, 9999, None),
        (domain.AuthenticationFailed("wrong"), errors.ACCOUNT_ERROR, 9999, None),
        (domain.PermissionDenied("no", param="x"), errors.UNSUPPORTED_ACTION, 4365, "x"),
        (domain.Unavailable("down"), errors.INTERNAL_ERROR, 9999, None),
    ],
)
def test_a_domain_error_is_reported_with_cloudstacks_codes(
    refusal: domain.DomainError, code: int, cscode: int, param: str | None
) -> None:
    err = ApiError.from_domain(refusal)
    assert (err.errorcode, err.cserrorcode, err.parameter) == (code, cscode, param)
    assert err.errortext == refusal.text


def test_error_codes_are_cloudstacks() -> None:
    assert (
        errors.UNAUTHORIZED,
        errors.METHOD_NOT_ALLOWED,
        errors.API_LIMIT_EXCEEDED,
        errors.PARAM_ERROR,
        errors.UNSUPPORTED_ACTION,
        errors.INTERNAL_ERROR,
        errors.ACCOUNT_ERROR,
    ) == (401, 405, 429, 431, 432, 530, 531)


def test_error_xml() -> None:
    root = _xml(render_error("runDiagnostics", ApiError.param(NASTY), "xml")[0])
    assert root.tag == "rundiagnosticsresponse"
    assert root.findtext("errorcode") == "431"
    assert root.findtext("cserrorcode") == "4350"
    assert root.findtext("errortext") == NASTY


def test_description_header_is_one_latin1_line() -> None:
    err = ApiError.param("bad\r\nSet-Cookie: x=1\t é 日本")
    header = err.description_header
    assert "\r" not in header and "\n" not in header
    header.encode("latin-1")
    assert header == "bad  Set-Cookie: x=1  é ??"


def test_description_header_has_no_whitespace_at_its_ends() -> None:
    # h11 refuses to send such a value: the client would get no response at all.
    assert ApiError.param(" nmap Is not a type\t\n").description_header == "nmap Is not a type"
    assert ApiError.param(" \t").description_header == ""


def test_repr() -> None:
    assert repr(ApiError.param("x")) == "ApiError(errorcode=431, errortext='x', cserrorcode=4350)"


# ---------------------------------------------------------------------------- a real client


def _cs_response(status: int, body: bytes, ctype: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = ctype
    response.encoding = "utf-8"
    return response


def test_cs_reads_our_json() -> None:
    client = CloudStack(endpoint="http://h/client/api", key="k", secret="s")
    body, ctype = render("runDiagnostics", {"jobid": JOB_ID}, "json")
    value = client._response_value(_cs_response(200, body, ctype))  # type: ignore[no-untyped-call]
    assert value == {"jobid": JOB_ID}


def test_cs_reads_our_errors() -> None:
    client = CloudStack(endpoint="http://h/client/api", key="k", secret="s")
    err = ApiError.param("Optional parameters contain unwanted characters: ;")
    body, ctype = render_error("runDiagnostics", err, "json")
    with pytest.raises(CloudStackApiException) as info:
        client._response_value(  # type: ignore[no-untyped-call]
            _cs_response(err.errorcode, body, ctype)
        )
    assert info.value.error["errortext"] == err.errortext
    assert info.value.error["errorcode"] == 431
