"""Malformed webhook bodies: every one a 4xx with a reason, never a 500 (limits, encodings, fuzzing)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.actioner_fixtures import PAYLOAD_FIELDS, PAYLOAD_WORDS, TOKEN, payload
from virtbalance.actioner.payload_limits import MAX_DEPTH, MAX_NUMBER_CHARS, BodyError, decode_body

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def post(client, raw: bytes):
    return client.post("/api/v1/alerts", data=raw, headers=AUTH)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 1100 + b"]" * 1100, "nested too deeply (at most 32 levels)"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested over 32 levels deep"),
        (
            b'{"n": ' + b"9" * 4301 + b"}",
            f"a number of 4301 characters (at most {MAX_NUMBER_CHARS})",
        ),
        (b'{"n": 1.' + b"5" * 200 + b"}", "a number of 202 characters"),
        (b'{"n": NaN}', "NaN is not JSON"),
        (b'{"n": -Infinity}', "-Infinity is not JSON"),
        (b'{"a": "\xff"}', "not UTF-8: byte 7 (invalid start byte)"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8: byte 7"),  # a surrogate in UTF-8 bytes (CESU)
        (b"\xff\xfe{\x00}\x00", "not UTF-8: byte 0"),  # UTF-16: json.loads(bytes) would accept it
        (b'{"a": 1', "malformed JSON: Expecting ',' delimiter at line 1 column 8"),
        (b"", "malformed JSON: Expecting value at line 1 column 1"),
    ],
)
def test_decode_refuses_with_a_reason(raw, reason):
    with pytest.raises(BodyError) as info:
        decode_body(raw)
    assert str(info.value).startswith(reason), str(info.value)


def test_decode_accepts_what_alertmanager_sends_and_the_limits_themselves():
    body = payload("firing_hv1")
    assert decode_body(json.dumps(body).encode()) == body
    nested: Any = 1
    for _ in range(MAX_DEPTH):
        nested = [nested]
    assert decode_body(json.dumps(nested).encode()) == nested
    assert decode_body(b"9" * MAX_NUMBER_CHARS) == int("9" * MAX_NUMBER_CHARS)


@pytest.mark.parametrize("field", ["fingerprint", "startsAt", "groupKey", "labels.host"])
def test_lone_surrogates_are_refused_with_the_field_path_before_the_journal(
    client, actioner_services, field
):
    body = payload("firing_hv1")
    if field == "groupKey":
        body["groupKey"] = "{}:{alertname=\ud83d}"
        path = "groupKey"
    elif field == "labels.host":
        body["alerts"][0]["labels"]["host"] = "hv1\udc00"
        path = "alerts[0].labels.host"
    else:
        body["alerts"][0][field] = "x\ud800"
        path = f"alerts[0].{field}"
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as a \\u escape
    assert b"\\ud" in raw
    response = post(client, raw)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{path}: contains a lone surrogate")
    assert actioner_services.journal.plans() == []


def test_a_lone_surrogate_in_a_key_is_refused(client):
    response = post(client, b'{"version": "4", "\\udfff": 1}')
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("\\udfff (key): contains a lone surrogate")


# --- fuzzing ---------------------------------------------------------------------------------

_ANY_CHAR = st.characters(exclude_categories=())  # surrogates included
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**120), max_value=10**120),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=_ANY_CHAR, max_size=40),
    st.sampled_from(PAYLOAD_WORDS),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=_ANY_CHAR, max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def _mutate(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """``body`` with the value at ``path`` replaced; unchanged when an earlier mutation removed the path."""
    out = copy.deepcopy(body)
    target: Any = out
    try:
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    except (IndexError, KeyError, TypeError):
        return body
    return out


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Real notifications with fields replaced, random JSON, deep nesting, long numbers, raw bytes."""
    kind = draw(st.sampled_from(["mutated", "json", "deep", "number", "bytes", "truncated"]))
    base = payload(draw(st.sampled_from(["firing_hv1", "resolved_hv1", "firing_two_hosts"])))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            base = _mutate(base, draw(st.sampled_from(PAYLOAD_FIELDS)), draw(_json))
        return json.dumps(base, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "json":
        return json.dumps(draw(_json)).encode()
    if kind == "deep":
        depth = draw(st.integers(MAX_DEPTH - 2, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode()
    if kind == "number":
        digits = draw(st.integers(1, 6000))
        return (
            json.dumps(_mutate(base, ("alerts", 0, "startsAt"), 0))
            .replace('"startsAt": 0', '"startsAt": ' + "7" * digits)
            .encode()
        )
    if kind == "truncated":
        raw = json.dumps(base).encode()
        return raw[: draw(st.integers(0, len(raw) - 1))]
    return draw(st.binary(max_size=200))


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=bodies())
def test_fuzzed_bodies_never_get_a_5xx(client, raw):
    response = post(client, raw)
    assert response.status_code in (200, 400, 413), (response.status_code, raw[:200])
    answer = response.get_json()
    if response.status_code != 200:
        assert answer["error"], raw[:200]
    else:
        assert set(answer) == {
            "queued_plan",
            "queued_plans",
            "duplicate",
            "cancelled_plans",
            "ignored",
        }
