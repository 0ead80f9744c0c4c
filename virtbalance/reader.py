"""One declarative reader of YAML sections: a dataclass's fields say which keys it takes and of what type."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from virtbalance.durations import format_duration, parse_duration
from virtbalance.errors import ValidationError
from virtbalance.sizes import format_size, parse_size

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

# A field's unit; the value is then parsed by the project's one parser for it.
UNIT = "unit"  # the metadata key of a plain ``field(metadata={UNIT: SIZE})``
SIZE = "size"  # bytes: 64MiB, 2G, or a number of bytes
DURATION = "duration"  # seconds: 30s, 1h30m, or a number of seconds
_UNITS: Mapping[str, Callable[[Any], float | int]] = {SIZE: parse_size, DURATION: parse_duration}
_FORMATS: Mapping[str, Callable[[Any], str]] = {SIZE: format_size, DURATION: format_duration}
_OPTION = "virtbalance.reader.option"
# What a value of each plain type is called in a problem.
_NAMES: Mapping[Any, str] = {
    int: "a whole number",
    float: "a number",
    str: "a string",
    Path: "a path",
    bool: "true or false",
}


@dataclass(frozen=True)
class Check:
    """A requirement on a read value; a value that fails it is listed as ``requirement, got RAW``."""

    holds: Callable[[Any], bool]
    requirement: str


POSITIVE = Check(lambda value: value > 0, "must be positive")
NOT_NEGATIVE = Check(lambda value: value >= 0, "must not be negative")
# Fractions of a capacity: a ratio may not be 0, a share may.
RATIO = Check(lambda value: 0.0 < value <= 1.0, "must be a ratio in (0, 1]")
SHARE = Check(lambda value: 0.0 <= value <= 1.0, "must be a share in [0, 1]")


def at_least(low: float) -> Check:
    """``value >= low``."""
    return Check(lambda value: value >= low, f"must be at least {low}")


def within(low: float, high: float, unit: str | None = None) -> Check:
    """``low <= value <= high``, the bounds written in the field's unit (``32MiB..1GiB``)."""
    show: Callable[[Any], str] = _FORMATS[unit] if unit else str
    return Check(lambda value: low <= value <= high, f"must be within {show(low)}..{show(high)}")


def pattern(regex: typing.Pattern[str], what: str) -> Check:
    """The whole string matches ``regex``; ``what`` says in words what that is."""
    return Check(lambda value: regex.fullmatch(value) is not None, f"must be {what}")


@dataclass(frozen=True)
class Option:
    """What a field accepts beyond its type; ``spec()`` and ``option()`` put one in its metadata."""

    unit: str | None = None
    # The file gives a plain number in units of this many (GiB for a key named *_gib); the field
    # holds the number times it, whole for an int field.
    scale: float | None = None
    # Words the file may write instead of a value, and the value each stands for (auto: None).
    aliases: Mapping[str, Any] | None = None
    # Turns the raw value into the field's value or raises ValueError saying why not.
    parse: Callable[[Any], Any] | None = None
    choices: tuple[Any, ...] | None = None
    checks: tuple[Check, ...] = ()
    each: tuple[Check, ...] = ()  # checks of every item of a list
    key: str | None = None  # the key in the file, when it is not the field's name
    relative: bool = False  # a path taken from the file's folder unless absolute
    read: bool = True  # False: never a key of the file (the caller computes it)
    hint: str | None = None  # what a missing required key should hold
    min_items: int = 0
    max_items: int | None = None
    # A mapping of sections: the key of each fills this field of the section...
    keyed: str | None = None
    # ...and a bare value stands for a section holding only this field.
    short: str | None = None


def spec(**settings: Any) -> Mapping[str, Option]:
    """A field's metadata declaring what the file may give for it (Option's fields, by name).

    ``field(metadata=spec(...))`` declares a required field: type checkers take any call written as
    a field's value, ``option()`` included, for a default.
    """
    return {_OPTION: Option(**settings)}


def option(
    default: Any = MISSING, *, factory: Callable[[], Any] | None = None, **settings: Any
) -> Any:
    """A field with a default (or a ``factory`` of one) and the ``spec`` of what the file may give."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=spec(**settings))
    return dataclasses.field(default=default, metadata=spec(**settings))


def option_of(fld: dataclasses.Field[Any]) -> Option:
    """The field's Option (a bare ``UNIT`` in its metadata counts as one)."""
    found = fld.metadata.get(_OPTION)
    return found if isinstance(found, Option) else Option(unit=fld.metadata.get(UNIT))


def join(path: str, key: object) -> str:
    """``path.key``, or ``key`` at the top of a file."""
    return f"{path}.{key}" if path else str(key)


def read_section(
    cls: type[T],
    data: Any,
    path: str,
    problems: list[str],
    /,
    *,
    base: Path | None = None,
    where: Callable[[str], str] | None = None,
    skip: Collection[str] = (),
    **given: Any,
) -> T | None:
    """``data`` read into ``cls`` (a dataclass), each problem appended as ``path.key: ...``.

    A missing or null key keeps the field's default; a value of the wrong type does too (its problem
    is listed), so every problem of a file is found in one pass. A value that fails a check is listed
    and kept as read. None only when a field without a default has no value. ``given`` fills fields
    that are not read; ``skip`` names keys the caller reads itself; ``base`` is the folder relative
    paths start from; ``where`` decorates a path in a problem (a line number). After reading, a
    section's ``section_problems()`` (key, problem) pairs, if it has one, are listed under its path.
    """
    reading = _Reading(problems, base, where or (lambda p: p))
    return reading.section(cls, data, path, skip, given)


def read_valid(cls: type[T], data: Any, source: str) -> T:
    """``data`` read into ``cls``, or ValidationError for ``source`` listing every problem."""
    problems: list[str] = []
    section = read_section(cls, data, "", problems)
    if problems or section is None:
        raise ValidationError(source, problems)
    return section


def recheck(section: DataclassInstance, path: str = "") -> list[str]:
    """The problems ``read_section`` would list for a section built or changed by code (a command
    line's override): each field's choices and checks on its value, written back as the file gives it,
    nested sections, ``section_problems()``. Types are the type checker's."""
    reading = _Reading([], None, lambda p: p)
    reading.recheck(section, path)
    return reading.problems


def write_section(section: DataclassInstance) -> dict[str, Any]:
    """A section as its file gives it: the file's keys, values in their units and scales."""
    out: dict[str, Any] = {}
    for fld in dataclasses.fields(section):
        opt = option_of(fld)
        if fld.init and opt.read:
            out[opt.key or fld.name] = _write(opt, getattr(section, fld.name))
    return out


def _write(opt: Option, value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return write_section(value)
    if isinstance(value, tuple):
        items = [_write(opt, item) for item in value]
        if opt.keyed:  # the key of each entry names it, outside its mapping
            return {item.pop(opt.keyed): item for item in items}
        return items
    return _written(opt, value)


def _written(opt: Option, value: Any) -> Any:
    """A field's value as the file gives it."""
    if value is None or isinstance(value, bool):
        return value
    if opt.scale is not None:
        return value / opt.scale
    if opt.unit is not None:
        return _FORMATS[opt.unit](value)
    return str(value) if isinstance(value, Path) else value


@dataclass
class _Reading:
    """One pass over a file: where problems go, where relative paths start."""

    problems: list[str]
    base: Path | None
    where: Callable[[str], str]

    def add(self, path: str, message: str) -> None:
        at = self.where(path)
        self.problems.append(f"{at}: {message}" if at else message)  # the whole file: no path

    def section(
        self,
        cls: type[T],
        data: Any,
        path: str,
        skip: Collection[str] = (),
        given: Mapping[str, Any] | None = None,
    ) -> T | None:
        values: dict[str, Any] = dict(given or {})
        fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in values]
        readable = {option_of(f).key or f.name: f for f in fields if option_of(f).read}
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.add(path, f"expected a mapping, got {type(data).__name__}")
            return _build(cls, values, fields)
        hints = _hints(cls)
        known = ", ".join(dict.fromkeys([*readable, *skip]))
        for key, raw in data.items():
            if key in skip:
                continue
            fld = readable.get(key)
            if fld is None:
                self.add(join(path, key), f"unknown key {key!r} (known: {known})")
            elif raw is not None:
                good, value = self.value(hints[fld.name], option_of(fld), raw, join(path, key))
                if good:
                    values[fld.name] = value
        missing = False
        for key, fld in readable.items():
            if fld.name not in values and _required(fld):
                missing = True
                if data.get(key) is None:
                    hint = option_of(fld).hint
                    self.add(join(path, key), f"missing ({hint})" if hint else "missing")
        if missing:
            return None
        section = _build(cls, values, fields)
        self.across(section, path)
        return section

    def across(self, section: Any, path: str) -> None:
        """The section's ``section_problems()`` (one field against another), if it has one."""
        check = getattr(section, "section_problems", None)
        if callable(check):
            for key, message in check():
                self.add(join(path, key), message)

    def value(self, hint: Any, opt: Option, raw: Any, path: str) -> tuple[bool, Any]:
        """(True, value) when ``raw`` is read into ``hint``; (False, None) with its problem listed."""
        hint = _without_none(hint)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            section = self.section(hint, raw, path)
            return section is not None, section
        if typing.get_origin(hint) is not tuple:
            return self.scalar(hint, opt, opt.checks, raw, path)
        item = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            return self.sections(item, opt, raw, path)
        items = [raw] if isinstance(raw, str) else raw  # a lone value is a list of one
        if not isinstance(items, list):
            self.add(path, f"expected a list, got {raw!r}")
            return False, None
        read = [self.scalar(item, opt, opt.each, x, f"{path}[{i}]") for i, x in enumerate(items)]
        value = tuple(v for good, v in read if good)
        self.judge(Option(), opt.checks, value, raw, path)
        return all(good for good, _ in read), value

    def scalar(
        self, hint: Any, opt: Option, checks: tuple[Check, ...], raw: Any, path: str
    ) -> tuple[bool, Any]:
        if opt.aliases is not None and isinstance(raw, str) and raw in opt.aliases:
            return True, opt.aliases[raw]  # a word for a value the section takes as it is
        try:
            value = _convert(hint, opt, raw)
        except ValueError as exc:
            self.add(path, str(exc))
            return False, None
        if opt.relative and self.base is not None and not Path(value).is_absolute():
            value = type(value)(self.base / value)
        return self.judge(opt, checks, value, raw, path), value

    def judge(
        self, opt: Option, checks: tuple[Check, ...], value: Any, shown: Any, path: str
    ) -> bool:
        """Whether ``value`` is one of the choices (False, listed, when not); each failed check listed.

        ``shown`` is the value as the file gives it (the raw value, or a built value written back).
        """
        if opt.choices is not None and value not in opt.choices:
            self.add(path, f"must be one of {', '.join(map(str, opt.choices))}, got {shown!r}")
            return False
        for check in checks:
            if not check.holds(value):
                self.add(path, f"{check.requirement}, got {shown!r}")
        return True

    def recheck(self, section: Any, path: str) -> None:
        """A built section's values against what its fields declare, nested sections included."""
        hints = _hints(type(section))
        for fld in dataclasses.fields(section):
            opt = option_of(fld)
            value = getattr(section, fld.name)
            if not (fld.init and opt.read) or value is None:
                continue
            where = join(path, opt.key or fld.name)
            if dataclasses.is_dataclass(value):
                self.recheck(value, where)
            elif typing.get_origin(_without_none(hints[fld.name])) is tuple:
                for index, item in enumerate(value):
                    at = join(where, getattr(item, opt.keyed)) if opt.keyed else f"{where}[{index}]"
                    if dataclasses.is_dataclass(item):
                        self.recheck(item, at)
                    else:
                        self.judge(opt, opt.each, item, _written(opt, item), at)
                self.judge(Option(), opt.checks, value, list(value), where)
            else:
                self.judge(opt, opt.checks, value, _written(opt, value), where)
        self.across(section, path)

    def sections(self, cls: type[Any], opt: Option, raw: Any, path: str) -> tuple[bool, Any]:
        """A list of sections, or with ``keyed`` a mapping of them.

        An entry is left out when a required key of it has no value or its key fails the checks of
        the field it fills: checks across entries then see only whole ones.
        """
        kind = "mapping" if opt.keyed else "list"
        entries: list[tuple[str, Any, dict[str, Any]]] = []
        if opt.keyed and isinstance(raw, Mapping):
            entries = [(join(path, k), v, {opt.keyed: k}) for k, v in raw.items()]
        elif not opt.keyed and isinstance(raw, list):
            entries = [(f"{path}[{i}]", v, {}) for i, v in enumerate(raw)]
        else:
            self.add(path, f"expected a {kind}, got {type(raw).__name__}")
            return False, None
        if len(entries) < opt.min_items:
            hint = f" ({opt.hint})" if opt.hint else ""
            self.add(path, f"expected a non-empty {kind}{hint}")
            return False, None
        if opt.max_items is not None and len(entries) > opt.max_items:
            self.add(path, f"at most {opt.max_items} entries, got {len(entries)}")
        read = []
        for where, data, given in entries:
            if opt.keyed and not self.key_holds(cls, opt.keyed, given[opt.keyed], where):
                continue
            if isinstance(data, str) and opt.short:
                data = {opt.short: data}  # noqa: PLW2901 - the short form `name: value`
            section = self.section(cls, data, where, given=given)
            if section is not None:
                read.append(section)
        return True, tuple(read)

    def key_holds(self, cls: type[Any], name: str, key: Any, path: str) -> bool:
        """Whether the key naming a section passes the checks of the field it fills."""
        fld = next(f for f in dataclasses.fields(cls) if f.name == name)
        before = len(self.problems)
        hint = _hints(cls)[name]
        good, _ = self.scalar(hint, option_of(fld), option_of(fld).checks, key, path)
        return good and len(self.problems) == before


# A class's field types, resolved once: resolving them is most of the cost of a small section.
_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type[T], values: dict[str, Any], fields: list[dataclasses.Field[Any]]) -> T | None:
    if any(f.name not in values and _required(f) for f in fields):
        return None
    return cls(**values)


def _required(fld: dataclasses.Field[Any]) -> bool:
    return fld.default is MISSING and fld.default_factory is MISSING


def _convert(hint: Any, opt: Option, raw: Any) -> Any:
    """``raw`` as the field's type; ValueError saying what was expected."""
    if opt.parse is not None:
        return opt.parse(raw)
    if opt.unit is not None:
        return _UNITS[opt.unit](raw)
    words = "".join(f" or {word}" for word in opt.aliases or ())
    if opt.scale is not None:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError(f"expected a number{words}, got {raw!r}")
        return int(raw * opt.scale) if hint is int else float(raw * opt.scale)
    if typing.get_origin(hint) is typing.Literal:
        allowed = typing.get_args(hint)
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}, got {raw!r}")
        return raw
    if hint is bool:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw
    if not isinstance(raw, bool):
        if hint is float and isinstance(raw, int | float):
            return float(raw)
        if hint is Path and isinstance(raw, str) and raw:
            return Path(raw)
        if hint in (int, str) and isinstance(raw, hint):
            return raw
    name = _NAMES.get(hint, getattr(hint, "__name__", hint))
    raise ValueError(f"expected {name}{words}, got {raw!r}")


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None`` (a null value is taken as absent before any conversion)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint
