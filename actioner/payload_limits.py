"""Decode a webhook body within fixed limits, so every malformed body is a 400 with a reason, never a 500.

The limits sit far above what Alertmanager sends (a notification nests five levels deep and has no
long numbers) and far below what would exhaust the decoder: Python's C JSON decoder recurses once
per nesting level, converts integers of any length (Python refuses those over 4,300 digits with
a ValueError) and keeps JSON-escaped lone surrogates, which SQLite cannot store as UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 100


class BodyError(ValueError):
    """A body refused while decoding; the message says why, naming the field path if any."""


def _number(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        if len(text) > MAX_NUMBER_CHARS:
            raise BodyError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
        return kind(text)

    return parse


def _refuse_constant(name: str) -> Any:
    raise BodyError(f"{name} is not JSON")


def _check_tree(data: Any) -> None:
    """Nesting at most MAX_DEPTH; every string (keys too) storable as UTF-8.

    Iterative, so a tree just under the decoder's recursion limit cannot exhaust this walk's.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            _check_string(value, path)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise BodyError(f"nested over {MAX_DEPTH} levels deep, at {_printable(path)}")
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                _check_string(key, f"{where} (key)")
                stack.append((item, where, depth + 1))
        else:
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))


def _check_string(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BodyError(
            f"{_printable(path)}: contains a lone surrogate (\\u{ord(text[exc.start]):04x}),"
            " which is not valid Unicode"
        ) from None


def _printable(path: str) -> str:
    # The path itself may hold a lone surrogate (a key); the reason must stay encodable.
    return path.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace") or "(top)"


def decode_body(raw: bytes) -> Any:
    """The decoded JSON of ``raw``; BodyError with the reason when it breaks a limit or is not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"not UTF-8: byte {exc.start} ({exc.reason})") from None
    try:
        data = json.loads(
            text,
            parse_int=_number(int),
            parse_float=_number(float),
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        # The C decoder recurses per level and stops at the interpreter's limit (about 1,000).
        raise BodyError(f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    except BodyError:
        raise
    except ValueError as exc:  # anything else the decoder refuses is still the body's fault
        raise BodyError(f"malformed JSON: {exc}") from None
    _check_tree(data)
    return data
