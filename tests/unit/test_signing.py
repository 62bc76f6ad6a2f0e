"""Request signing: real clients' signatures verify after a real URL round trip; nothing looser.

The ``cs`` and libcloud requests are produced by the libraries' own code paths, captured just
before they would go on the wire. Legacy cloudmonkey (Python 2 only) and cmk (Go) are
re-implemented from their sources, quoted in the helpers below.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import pytest
import requests
from cs import CloudStack
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from libcloud.compute.drivers.cloudstack import CloudStackNodeDriver

from cloudiag.api.signing import (
    canonical_strings,
    check_expiry,
    find_param,
    is_valid_param_name,
    parse_expires,
    sign,
    verify_signature,
)

API_KEY = "tG7bQ1cX-api-key_Zz09"
SECRET = "s3cr3t-Key_with-Mixed_CASE-0123456789"
ENDPOINT = "http://cloudiag.test:8080/client/api"

Params = list[tuple[str, str]]

# Every character the reference asks to cover, one value each, then all of them together.
AWKWARD_VALUES = [
    "with space",
    "star*",
    "tilde~",
    "[bracket]",
    "plus+sign",
    "slash/",
    "equals=",
    "colon:",
    "comma,",
    "percent%41",
    "amp&ersand",
    "accent é",
    "日本",
    "-c 5 -I eth2",
    "a b*~[]+/=:,%&é日本 ",
]


class _Captured(Exception):
    """Raised by the stand-in transports once the request is built."""


# ---------------------------------------------------------------------------- helpers


def _query(url: str) -> Params:
    """Parse a URL's query string the way the server does."""
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _form(body: str | bytes) -> Params:
    text = body.decode("ascii") if isinstance(body, bytes) else body
    return parse_qsl(text, keep_blank_values=True)


def _verify(params: Params, secret: str = SECRET) -> bool:
    signature = find_param(params, "signature")
    assert signature is not None
    return verify_signature(params, signature, secret)


def _matching(params: Params, secret: str = SECRET) -> list[str]:
    """The strings of canonical_strings(params) that the received signature signs."""
    signature = find_param(params, "signature")
    assert signature is not None
    return [c for c in canonical_strings(params) if sign(c, secret) == signature]


class _StubSession:
    """Stands in for the requests.Session of cs: keeps the prepared request, sends nothing."""

    prepared: requests.PreparedRequest

    def send(self, prepared: requests.PreparedRequest, **_: Any) -> None:
        self.prepared = prepared
        raise _Captured


def cs_request(method: str = "get", **kwargs: Any) -> requests.PreparedRequest:
    """Run ``cs.CloudStack.runDiagnostics(**kwargs)`` up to the wire and return the request."""
    session = _StubSession()
    client = CloudStack(
        endpoint=ENDPOINT, key=API_KEY, secret=SECRET, method=method, session=session
    )
    with pytest.raises(_Captured):
        client.runDiagnostics(**kwargs)
    return session.prepared


def cs_params(method: str = "get", **kwargs: Any) -> Params:
    prepared = cs_request(method, **kwargs)
    assert prepared.url is not None
    if method == "get":
        assert not prepared.body
        return _query(prepared.url)
    assert isinstance(prepared.body, str | bytes)
    return _query(prepared.url) + _form(prepared.body)


def libcloud_params(params: dict[str, str], command: str = "runDiagnostics") -> Params:
    """Run libcloud's CloudStack connection up to the wire and return the query it built."""
    driver = CloudStackNodeDriver(  # type: ignore[no-untyped-call]
        API_KEY, SECRET, host="cloudiag.test", port=8080, path="/client/api", secure=False
    )
    connection = driver.connection
    captured: dict[str, Any] = {}

    def capture(url: str, **kwargs: Any) -> None:
        captured["url"] = url
        raise _Captured

    connection._retryable_request = capture  # type: ignore[method-assign,assignment]
    with pytest.raises(_Captured):
        driver._sync_request(  # type: ignore[no-untyped-call]
            command=command, params=dict(params), method="GET"
        )
    return _query(captured["url"])


def _py2_quote_plus(value: str) -> str:
    """Python 2's ``urllib.quote_plus(value, safe="*")``: unlike Python 3, it escapes ``~``."""
    # Python 3 leaves "~" alone; an unescaped "~" in the output can only be a literal one.
    return quote_plus(value, safe="*").replace("~", "%7E")


def legacy_cloudmonkey_params(args: dict[str, str], expires_in: int = 600) -> Params:
    """Legacy cloudmonkey 5.3.3 ``requester.make_request`` + ``sign_request``, then requests.

    From its source::

        args["response"] = "json"
        args["signatureversion"] = signatureversion
        args["expires"] = expirationtime.strftime('%Y-%m-%dT%H:%M:%S+0000')
        request = zip(params.keys(), params.values())
        request.sort(key=lambda x: x[0].lower())
        hash_str = "&".join(["=".join([r[0].lower(),
            urllib.quote_plus(str(r[1]), safe="*").lower()
            .replace("+", "%20").replace("%3A", ":")]) for r in request])
        return base64.encodestring(hmac.new(secret_key, hash_str, hashlib.sha1).digest()).strip()
        ...
        args['apiKey'] = credentials['apikey']
        args["signature"] = sign_request(args, credentials['secretkey'])
        response = session.get(url, params=args, verify=verifysslcert)

    (``.replace("%3A", ":")`` runs after ``.lower()`` and so never matches anything.)
    """
    args = dict(args)
    args["response"] = "json"
    args["signatureversion"] = "3"
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    args["expires"] = expires.strftime("%Y-%m-%dT%H:%M:%S+0000")
    args["apiKey"] = API_KEY
    request = sorted(args.items(), key=lambda item: item[0].lower())
    hash_str = "&".join(
        "=".join(
            [
                name.lower(),
                _py2_quote_plus(value).lower().replace("+", "%20").replace("%3A", ":"),
            ]
        )
        for name, value in request
    )
    digest = hmac.new(SECRET.encode(), hash_str.encode(), hashlib.sha1).digest()
    args["signature"] = base64.b64encode(digest).decode().strip()
    prepared = requests.Request("GET", ENDPOINT, params=args).prepare()
    assert prepared.url is not None
    return _query(prepared.url)


_GO_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _go_query_escape(value: str) -> str:
    """Go's ``url.QueryEscape``: unreserved characters kept, space as ``+``, rest ``%XX``."""
    out = []
    for byte in value.encode():
        if byte in _GO_UNRESERVED:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def cmk_params(args: dict[str, str], post: bool = False) -> Params:
    """cmk's ``NewAPIRequest`` and ``encodeRequestParams`` (cmd/network.go), over GET or POST.

    From its source::

        params.Add("response", "json")
        params.Add("signatureversion", signatureversion)
        params.Add(expiresKey, time.Now().UTC().Add(15*time.Minute).Format(time.RFC3339))
        params.Add("apiKey", apiKey)
        encodedParams = encodeRequestParams(params)  // keys sort.Strings'ed, then
            escaped := url.QueryEscape(value)
            escaped = strings.Replace(escaped, "+", "%20", -1)
            escaped = strings.Replace(escaped, "%2A", "*", -1)
        mac := hmac.New(sha1.New, []byte(secretKey))
        mac.Write([]byte(strings.ToLower(encodedParams)))
        signature := base64.StdEncoding.EncodeToString(mac.Sum(nil))
        if r.Config.Core.PostRequest {
            params.Add("signature", signature)
        } else {
            encodedParams = encodedParams +
                fmt.Sprintf("&signature=%s", url.QueryEscape(signature))
        }
    """
    params = {"command": "runDiagnostics", **args}
    params["response"] = "json"
    params["signatureversion"] = "3"
    expires = datetime.now(UTC) + timedelta(minutes=15)
    params["expires"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    params["apiKey"] = API_KEY

    encoded = "&".join(
        f"{key}={_go_query_escape(params[key]).replace('+', '%20').replace('%2A', '*')}"
        for key in sorted(params)
    )
    digest = hmac.new(SECRET.encode(), encoded.lower().encode(), hashlib.sha1).digest()
    signature = base64.b64encode(digest).decode()
    if post:
        # http.PostForm(url, params): url.Values.Encode(), keys sorted, QueryEscape'd.
        params["signature"] = signature
        body = "&".join(
            f"{_go_query_escape(k)}={_go_query_escape(params[k])}" for k in sorted(params)
        )
        return _form(body)
    return _query(f"{ENDPOINT}?{encoded}&signature={_go_query_escape(signature)}")


def _resign(params: Params, builder: Callable[[Params], str], secret: str = SECRET) -> Params:
    """Replace the signature by one made over ``builder(params without signature)``."""
    unsigned = [(k, v) for k, v in params if k.lower() != "signature"]
    digest = hmac.new(secret.encode(), builder(unsigned).encode(), hashlib.sha1).digest()
    return [*unsigned, ("signature", base64.b64encode(digest).decode())]


def _replace(params: Params, name: str, value: str) -> Params:
    return [(k, value if k == name else v) for k, v in params]


# ---------------------------------------------------------------------------- cs


@pytest.mark.parametrize("value", AWKWARD_VALUES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_cs_signature_verifies(value: str, method: str) -> None:
    params = cs_params(method, targetid="0d3a8f3e", type="ping", ipaddress=value, params=value)
    assert find_param(params, "signatureVersion") == "3"
    assert find_param(params, "apikey") == API_KEY
    assert _verify(params)
    assert check_expiry(params, datetime.now(UTC)) is None


def test_cs_map_parameter_names_verify() -> None:
    # cs turns a dict into "details[0].key" names, which libcloud and CloudStack also use.
    params = cs_params(targetid="x", type="ping", ipaddress="1.1.1.1", details={"Key": "V a~"})
    assert ("details[0].Key", "V a~") in params
    assert _verify(params)


def test_cs_tilde_needs_the_tilde_variant() -> None:
    """cs leaves "~" unencoded: only the "~" variant matches, so it is required."""
    params = cs_params(targetid="x", type="ping", ipaddress="~")
    [matched] = _matching(params)
    assert matched != canonical_strings(params)[0]
    assert "&ipaddress=~&" in matched


# ---------------------------------------------------------------------------- libcloud


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_libcloud_signature_verifies(value: str) -> None:
    params = libcloud_params({"targetid": "0d3a8f3e", "type": "ping", "ipaddress": value})
    assert find_param(params, "signatureversion") is None  # libcloud never sends one
    assert _verify(params)
    assert check_expiry(params, datetime.now(UTC)) is None


def test_libcloud_mixed_case_names_verify() -> None:
    # Sorted on lower-cased names by libcloud, case-sensitively by CloudStack: "Zeta" comes
    # before "apiKey" for CloudStack, after it for libcloud.
    params = libcloud_params({"Zeta": "z", "TargetId": "x", "ipaddress": "a[0]~"})
    [matched] = _matching(params)
    assert matched.startswith("apikey=")  # CloudStack's own order starts with "targetid"
    assert canonical_strings(params)[0].startswith("targetid=")
    assert "ipaddress=a[0]~&" in matched


def test_libcloud_brackets_need_the_libcloud_variant() -> None:
    params = libcloud_params({"targetid": "x", "ipaddress": "[]"})
    [matched] = _matching(params)
    assert "ipaddress=[]&" in matched
    assert matched != canonical_strings(params)[0]


# ---------------------------------------------------------------------------- cloudmonkey


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_legacy_cloudmonkey_signature_verifies(value: str) -> None:
    params = legacy_cloudmonkey_params(
        {"command": "runDiagnostics", "targetid": "x", "ipaddress": value, "region": "eu"}
    )
    assert _verify(params)
    assert check_expiry(params, datetime.now(UTC)) is None


def test_legacy_cloudmonkey_mixed_case_names_need_the_folded_sort() -> None:
    params = legacy_cloudmonkey_params({"command": "runDiagnostics", "Zeta": "~", "b": "1"})
    [matched] = _matching(params)
    assert matched.startswith("apikey=")  # CloudStack's own order starts with "zeta"
    assert canonical_strings(params)[0].startswith("zeta=")
    assert "zeta=%7e" in matched


@pytest.mark.parametrize("value", AWKWARD_VALUES)
@pytest.mark.parametrize("post", [False, True])
def test_cmk_signature_verifies(value: str, post: bool) -> None:
    params = cmk_params({"targetid": "x", "type": "ping", "ipaddress": value}, post=post)
    assert find_param(params, "signatureVersion") == "3"
    assert _verify(params)
    assert check_expiry(params, datetime.now(UTC)) is None


# ---------------------------------------------------------------------------- canonical form


def test_canonical_string_is_cloudstacks() -> None:
    params = [
        ("command", "runDiagnostics"),
        ("apiKey", "KEY"),
        ("ipaddress", "a b*~[]+/=:,%&é"),
        ("Zeta", "Q"),
        ("signature", "ignored"),
        ("SIGNATURE", "ignored too"),
    ]
    strings = canonical_strings(params)
    assert strings[0] == (
        "zeta=q&apikey=key&command=rundiagnostics"
        "&ipaddress=a%20b*%7e%5b%5d%2b%2f%3d%3a%2c%25%26%c3%a9"
    )
    assert strings == [
        strings[0],
        "zeta=q&apikey=key&command=rundiagnostics&ipaddress=a%20b*~%5b%5d%2b%2f%3d%3a%2c%25%26%c3%a9",
        "apikey=key&command=rundiagnostics&ipaddress=a%20b*~[]%2b%2f%3d%3a%2c%25%26%c3%a9&zeta=q",
        "apikey=key&command=rundiagnostics&ipaddress=a%20b*%7e%5b%5d%2b%2f%3d%3a%2c%25%26%c3%a9&zeta=q",
    ]


def test_canonical_strings_are_distinct() -> None:
    # Nothing to encode differently and all names lower-case: a single string.
    assert canonical_strings([("b", "2"), ("a", "1")]) == ["a=1&b=2"]


def test_every_unknown_parameter_and_every_duplicate_is_signed() -> None:
    base = [("command", "listApis"), ("apiKey", "K")]
    assert "page=2" in canonical_strings([*base, ("page", "2")])[0]
    assert canonical_strings([*base, ("x", "1"), ("x", "2")])[0].endswith("x=1&x=2")


@pytest.mark.parametrize(
    "name", ["expires=1&signatureversion", "a&b", "", "name with space", "ä", "a%3d"]
)
def test_names_that_could_recut_the_signed_string_are_refused(name: str) -> None:
    assert not is_valid_param_name(name)
    with pytest.raises(ValueError, match="parameter name"):
        canonical_strings([(name, "3")])


@pytest.mark.parametrize("name", ["apiKey", "details[0].key", "tags[1].value", "x-y_z.1"])
def test_plain_names_are_valid(name: str) -> None:
    assert is_valid_param_name(name)


def test_expiry_cannot_be_stripped_by_merging_parameters_into_one_name() -> None:
    """A captured v3 request, re-cut so expires/signatureVersion vanish, must not verify.

    Its canonical string is unchanged (names are not encoded), which is why such names are
    refused outright.
    """
    params = cs_params(targetid="x", type="ping", ipaddress="1.1.1.1")
    expires = find_param(params, "expires")
    assert expires is not None
    encoded_expires = expires.replace(":", "%3A").replace("+", "%2B")
    # Everything from "expires" to "signatureVersion" in the canonical order, in one name.
    merged = f"expires={encoded_expires}&ipaddress=1.1.1.1&response=json&signatureVersion"
    dropped = {"expires", "ipaddress", "response", "signatureVersion"}
    forged = [(k, v) for k, v in params if k not in dropped] + [(merged, "3")]
    # Same signed string (no value here needs encoding), no expiry left to check...
    unsigned = sorted((k, v) for k, v in forged if k != "signature")
    assert "&".join(f"{k}={v}" for k, v in unsigned).lower() == canonical_strings(params)[0]
    assert check_expiry(forged, datetime.now(UTC) + timedelta(days=365)) is None
    # ...so the only defence is refusing the name.
    assert not _verify(forged)


# ---------------------------------------------------------------------------- refusals


@pytest.fixture
def signed() -> Params:
    return cs_params(targetid="0d3a8f3e", type="ping", ipaddress="192.0.2.1", params="-c 5")


def test_wrong_secret_is_refused(signed: Params) -> None:
    assert _verify(signed)
    assert not _verify(signed, secret=SECRET + "x")
    assert not _verify(signed, secret="")


def test_tampered_value_is_refused(signed: Params) -> None:
    assert not _verify(_replace(signed, "ipaddress", "192.0.2.2"))
    assert not _verify(_replace(signed, "params", "-c 5; reboot"))
    assert not _verify(_replace(signed, "expires", "2099-01-01T00:00:00+0000"))


def test_added_parameter_is_refused(signed: Params) -> None:
    assert not _verify([*signed, ("listall", "true")])
    assert not _verify([*signed, ("ipaddress", "192.0.2.1")])  # a repeat, even identical


def test_removed_parameter_is_refused(signed: Params) -> None:
    for name in ("params", "expires", "signatureVersion", "response", "apiKey"):
        assert not _verify([(k, v) for k, v in signed if k != name]), name


def test_empty_or_garbled_signature_is_refused(signed: Params) -> None:
    unsigned = [(k, v) for k, v in signed if k != "signature"]
    assert not verify_signature(unsigned, "", SECRET)
    assert not verify_signature(unsigned, "not base64 at all é", SECRET)
    signature = find_param(signed, "signature")
    assert signature is not None
    assert not verify_signature(unsigned, signature.rstrip("="), SECRET)
    assert not verify_signature(unsigned, signature + "\n", SECRET)


def test_lone_surrogate_does_not_raise() -> None:
    assert not verify_signature([("command", "x\udcff")], "AAAA", SECRET)


def test_value_case_is_not_signed_as_in_cloudstack(signed: Params) -> None:
    """CloudStack lower-cases the signed string, so the case of ASCII letters is unprotected.

    This documents an upstream property every client relies on; handlers must not give
    meaning to the case of a value (``type`` is matched case-insensitively anyway).
    """
    assert _verify(_replace(signed, "type", "PING"))


@pytest.mark.parametrize(
    "builder",
    [
        # Not lower-cased.
        lambda p: "&".join(f"{k}={quote_plus(v, safe='*')}" for k, v in sorted(p)),
        # Space as "+", as urlencode would do.
        lambda p: "&".join(f"{k}={quote_plus(v, safe='*~')}" for k, v in sorted(p)).lower(),
        # Folded sort with "~" raw but "[]" encoded: no client does that combination.
        lambda p: "&".join(
            f"{k}={quote_plus(v, safe='*').replace('+', '%20')}"
            for k, v in sorted(p, key=lambda kv: kv[0].lower())
        ).lower(),
        # Unencoded values.
        lambda p: "&".join(f"{k}={v}" for k, v in sorted(p)).lower(),
    ],
)
def test_looser_encodings_are_refused(builder: Callable[[Params], str]) -> None:
    params: Params = [
        ("command", "runDiagnostics"),
        ("apiKey", API_KEY),
        ("Zeta", "z"),
        ("ipaddress", "a b~*/[]"),
    ]
    assert builder(params) not in canonical_strings(params)
    assert not _verify(_resign(params, builder))


def test_resigned_canonical_string_verifies() -> None:
    """Control for test_looser_encodings_are_refused: _resign itself is sound."""
    params: Params = [("command", "runDiagnostics"), ("apiKey", API_KEY), ("x", "a b~*/[]")]
    for text in canonical_strings(params):

        def fixed(_: Params, text: str = text) -> str:
            return text

        assert _verify(_resign(params, fixed))


def test_plus_decoded_to_space_in_signature_is_accepted() -> None:
    # Find a request whose signature holds a "+", then send it unescaped in a query string.
    for n in range(1000):
        params: Params = [("command", "listZones"), ("apiKey", API_KEY), ("n", str(n))]
        signature = sign(canonical_strings(params)[0], SECRET)
        if "+" in signature:
            break
    else:
        pytest.fail("no signature with a '+' found")
    raw_url = f"{ENDPOINT}?{urlencode(params)}&signature={signature}"
    received = _query(raw_url)
    received_signature = find_param(received, "signature")
    assert received_signature is not None
    assert " " in received_signature
    assert _verify(received)


# ---------------------------------------------------------------------------- find_param


def test_find_param_is_case_insensitive_and_takes_the_first() -> None:
    params = [("signatureversion", "3"), ("SignatureVersion", "4"), ("apiKey", "K")]
    assert find_param(params, "signatureVersion") == "3"
    assert find_param(params, "APIKEY") == "K"
    assert find_param(params, "expires") is None
    assert find_param([], "x") is None


# ---------------------------------------------------------------------------- expiry

NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def _v3(expires: str, version_name: str = "signatureVersion") -> Params:
    return [("command", "listZones"), (version_name, "3"), ("expires", expires)]


@pytest.mark.parametrize(
    "expires",
    [
        "2024-05-01T10:15:00Z",  # cmk (RFC 3339)
        "2024-05-01T10:15:00+0000",  # cs, legacy cloudmonkey
        "2024-05-01T10:15:00+00:00",  # ISO 8601
        "2024-05-01T10:15:00.123Z",
        "2024-05-01T10:15:00.123+0000",
        "2024-05-01T10:15:00.123456+00:00",
        "2024-05-01T10:15:00.123456789Z",
        "2024-05-01T10:15:00Z+0000",  # CloudStack's oldest format
        "2024-05-01T12:15:00+0200",
        "2024-05-01T05:15:00-05:00",
    ],
)
def test_future_expiry_in_every_format_passes(expires: str) -> None:
    assert check_expiry(_v3(expires), NOW) is None
    parsed = parse_expires(expires)
    assert parsed is not None
    assert parsed.astimezone(UTC).replace(microsecond=0) == datetime(2024, 5, 1, 10, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "expires",
    [
        "2024-05-01T09:59:59Z",
        "2024-05-01T09:59:59+0000",
        "2024-05-01T09:59:59+00:00",
        "2024-05-01T09:59:59.999Z",
        "2024-05-01T11:59:59+0200",
    ],
)
def test_past_expiry_is_refused(expires: str) -> None:
    message = check_expiry(_v3(expires), NOW)
    assert message is not None
    assert "expired" in message


def test_expiry_exactly_now_passes() -> None:
    # CloudStack refuses only when expires is *before* now.
    assert check_expiry(_v3("2024-05-01T10:00:00Z"), NOW) is None


@pytest.mark.parametrize(
    "version_name", ["signatureVersion", "signatureversion", "SIGNATUREVERSION"]
)
def test_missing_expires_with_v3_is_refused(version_name: str) -> None:
    params = [("command", "listZones"), (version_name, "3")]
    message = check_expiry(params, NOW)
    assert message is not None
    assert "missing expires" in message


@pytest.mark.parametrize(
    "expires",
    [
        "",
        "tomorrow",
        "2024-05-01",
        "2024-05-01T10:15:00",  # no zone
        "2024-05-01 10:15:00Z",
        "2024-13-01T10:15:00Z",
        "2024-05-01T24:15:00Z",
        "2024-05-01T10:15:00+2400",
        "2024-05-01T10:15:00+0075",
        "2024-05-01T10:15:00.Z",
        "\uff12\uff10\uff12\uff14-05-01T10:15:00Z",  # fullwidth (non-ASCII) digits
        "2024-05-01T10:15:00Z ",
        "1714558500",
    ],
)
def test_unparseable_expiry_is_refused(expires: str) -> None:
    message = check_expiry(_v3(expires), NOW)
    assert message is not None
    assert "date format" in message
    assert parse_expires(expires) is None


def test_no_signature_version_means_no_check() -> None:
    assert check_expiry([("command", "listZones")], NOW) is None
    # As in CloudStack, expires alone (even a past or garbled one) is not looked at.
    assert (
        check_expiry([("command", "listZones"), ("expires", "2000-01-01T00:00:00Z")], NOW) is None
    )
    assert check_expiry([("expires", "junk")], NOW) is None


def test_expires_name_is_case_insensitive() -> None:
    params = [("signatureversion", "3"), ("Expires", "2000-01-01T00:00:00Z")]
    message = check_expiry(params, NOW)
    assert message is not None
    assert "expired" in message


def test_unsupported_signature_version_is_refused() -> None:
    message = check_expiry([("signatureVersion", "2"), ("expires", "2030-01-01T00:00:00Z")], NOW)
    assert message is not None
    assert "signatureVersion" in message


def test_every_repeated_value_is_checked() -> None:
    past, future = "2000-01-01T00:00:00Z", "2030-01-01T00:00:00Z"
    assert check_expiry([("signatureVersion", "3"), ("expires", future), ("expires", past)], NOW)
    assert check_expiry(
        [("signatureVersion", "3"), ("signatureversion", "1"), ("expires", future)], NOW
    )


def test_max_lifetime() -> None:
    params = _v3("2024-05-01T10:20:00Z")
    assert check_expiry(params, NOW, max_lifetime=timedelta(minutes=30)) is None
    message = check_expiry(params, NOW, max_lifetime=timedelta(minutes=15))
    assert message is not None
    assert "too far" in message


def test_naive_now_is_utc() -> None:
    assert check_expiry(_v3("2024-05-01T10:15:00Z"), NOW.replace(tzinfo=None)) is None
    assert check_expiry(_v3("2024-05-01T09:15:00Z"), NOW.replace(tzinfo=None)) is not None


def test_aware_now_in_another_zone() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-7)))
    assert check_expiry(_v3("2024-05-01T10:15:00Z"), now) is None
    assert check_expiry(_v3("2024-05-01T09:15:00Z"), now) is not None


# ---------------------------------------------------------------------------- properties

_names = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.[]-"),
    min_size=1,
    max_size=12,
).filter(lambda n: n.lower() != "signature")
_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30
)
_param_dicts = st.dictionaries(_names, _values, min_size=1, max_size=8)
_secrets = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1)


def _ascii_lower(text: str) -> str:
    return text.translate({c: c + 32 for c in range(ord("A"), ord("Z") + 1)})


def _round_trip(params: Sequence[tuple[str, str]], signature: str) -> Params:
    return _form(urlencode([*params, ("signature", signature)]))


@settings(max_examples=300, deadline=None)
@given(params=_param_dicts, secret=_secrets)
def test_property_canonical_signature_verifies(params: dict[str, str], secret: str) -> None:
    pairs = list(params.items())
    signature = sign(canonical_strings(pairs)[0], secret)
    assert verify_signature(pairs, signature, secret)
    assert verify_signature(_round_trip(pairs, signature), signature, secret)


@settings(max_examples=300, deadline=None)
@given(params=_param_dicts, secret=_secrets, data=st.data())
def test_property_changing_any_value_breaks_it(
    params: dict[str, str], secret: str, data: st.DataObject
) -> None:
    pairs = list(params.items())
    signature = sign(canonical_strings(pairs)[0], secret)
    index = data.draw(st.integers(0, len(pairs) - 1))
    name, value = pairs[index]
    new_value = data.draw(_values)
    # The signed string is lower-cased, so only a change beyond the case of ASCII letters
    # is a change as far as the signature is concerned (see
    # test_value_case_is_not_signed_as_in_cloudstack).
    assume(_ascii_lower(new_value) != _ascii_lower(value))
    tampered = list(pairs)
    tampered[index] = (name, new_value)
    assert not verify_signature(tampered, signature, secret)
    received = _round_trip(tampered, signature)
    assert not verify_signature(received, find_param(received, "signature") or "", secret)
