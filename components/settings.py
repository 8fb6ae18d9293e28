"""How a typed settings section works: fields made with `setting` (type, default, allowed values, help),
checked whichever way the section is made, turned into command-line flags and into a markdown table.
The sections themselves, one per params.yaml section, are in components/config.py."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import typing
from dataclasses import field
from typing import TYPE_CHECKING, Any, ClassVar

from components.errors import UserError

if TYPE_CHECKING:
    from components.config import Params


def setting(default: Any, help: str, choices: tuple | None = None, minimum: float | None = None,
            maximum: float | None = None, below: float | None = None) -> Any:
    """A field of a settings class: its default and how a value is checked and documented
    (`maximum` is inclusive, `below` exclusive)."""
    factory = {"default_factory": lambda: type(default)(default)} if isinstance(default, (list, dict)) else {
        "default": default}
    return field(**factory, metadata={"help": help, "choices": choices, "minimum": minimum, "maximum": maximum,
                                      "below": below})


class Settings:
    """One section of params.yaml. Subclasses are dataclasses whose fields are made with `setting`."""
    section: ClassVar[str]
    about: ClassVar[str]  # one line for the docs and the flag group's title

    def check(self) -> None:
        """Rules between fields (UserError); single values are checked by `from_mapping`."""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def __post_init__(self) -> None:
        """Every value checked (type, allowed values, range) whichever way the settings are made; whole
        numbers given as floats (Kubeflow hands numbers over that way) become ints, ints for floats floats."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked_value(f, hints[f.name], getattr(self, f.name),
                                                            f"{self.section}.{f.name}"))
        self.check()

    @classmethod
    def from_mapping(cls, values: Any, where: str = "params.yaml") -> "Settings":
        """Checked settings from a mapping of key -> value (a params.yaml section, a Kubeflow parameter);
        keys it lacks take their defaults. Errors name `where` the values came from."""
        prefix = f"{where}: " if where else ""
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise UserError(f"{prefix}`{cls.section}:` must be a mapping of keys to values, not "
                            f"{type(values).__name__}; see docs/configuration.md")
        unknown = [key for key in values if key not in cls.keys()]
        if unknown:
            raise UserError(f"{prefix}unknown key {cls.section}.{unknown[0]}{nearest(str(unknown[0]), cls.keys())}; "
                            "see docs/configuration.md for the keys")
        try:
            return cls(**values)
        except UserError as e:
            raise UserError(f"{prefix}{e}") from None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- command-line flags ----

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
        """The section's keys as flags (`--weight-decay` for `weight_decay`) in a group of their own. A flag
        not given stays unset, so `from_args` can tell it from the params file's value and the default."""
        group = parser.add_argument_group(f"{cls.section} settings ({cls.about}; params.yaml `{cls.section}:`)")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if only is not None and f.name not in only:
                continue
            kind, meta = _base_type(hints[f.name]), f.metadata
            text = f"{meta['help']} (default: {_shown(_default(f))})"
            flag = "--" + f.name.replace("_", "-")
            if kind is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
            elif kind in (int, float, str):
                group.add_argument(flag, type=_parser_for(kind), default=argparse.SUPPRESS, help=text,
                                   choices=meta["choices"], metavar=_metavar(f, kind))

    @classmethod
    def from_args(cls, args: argparse.Namespace, params: "Params | None" = None) -> "Settings":
        """The defaults, then the params file's section (if one was read), then the flags given."""
        values = (params.section(cls).as_dict() if params is not None else {})
        values |= {key: getattr(args, key) for key in cls.keys() if hasattr(args, key)}
        return cls.from_mapping(values, "")


    @classmethod
    def markdown_table(cls) -> str:
        """The section as a markdown table: key, type, default, allowed values, meaning."""
        hints = typing.get_type_hints(cls)
        rows = [f"### `{cls.section}:` {cls.about}", "", "| key | type | default | allowed | meaning |",
                "|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            meta = f.metadata
            allowed = ", ".join(map(str, meta["choices"])) if meta["choices"] else _range_text(meta)
            rows.append(f"| `{f.name}` | {_type_name(hints[f.name])} | `{_shown(_default(f))}` | {allowed} "
                        f"| {meta['help']} |")
        return "\n".join(rows)


def nearest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _base_type(hint: Any) -> type:
    """int | None -> int; list[...] -> list."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (list, dict):
        return origin
    return args[0] if args and origin is not None else hint


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _checked_value(f: dataclasses.Field, hint: Any, value: Any, where: str) -> Any:
    kind, meta = _base_type(hint), f.metadata
    if value is None and _optional(hint):
        return None
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:  # Kubeflow hands whole numbers over as floats (200.0)
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
        value = int(value) if ok else value
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise UserError(f"{where} is {value!r}, but must be {_type_name(hint, article=True)} "
                        f"(e.g. {f.name}: {_shown(_default(f))})")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise UserError(f"{where} is {value!r}; choose one of {', '.join(map(str, meta['choices']))}")
    too_low = meta["minimum"] is not None and value < meta["minimum"]
    too_high = (meta["maximum"] is not None and value > meta["maximum"]) or (
        meta["below"] is not None and value >= meta["below"])
    if too_low or too_high:
        raise UserError(f"{where} is {value!r}, outside {_range_text(meta)}")
    return value


def _range_text(meta: dict) -> str:
    low = f">= {meta['minimum']:g}" if meta["minimum"] is not None else ""
    high = f"<= {meta['maximum']:g}" if meta["maximum"] is not None else (
        f"< {meta['below']:g}" if meta["below"] is not None else "")
    return " and ".join(p for p in (low, high) if p) or "any"


def _type_name(hint: Any, article: bool = False) -> str:
    kind = _base_type(hint)
    name = {bool: "true/false", int: "whole number", float: "number", str: "text", list: "list",
            dict: "mapping"}[kind]
    if article and kind in (int, float, list, dict):
        name = f"a {name}"
    return f"{name} or empty" if _optional(hint) else name


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _parser_for(kind: type):
    """argparse type for a flag: numbers as numbers; text as given."""
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {_type_name(kind)}") from None
    return parse if kind in (int, float) else str


def _metavar(f: dataclasses.Field, kind: type) -> str | None:
    if f.metadata["choices"]:
        return "{" + ",".join(map(str, f.metadata["choices"])) + "}"
    return {int: "N", float: "X", str: None}[kind]
