"""One config mechanism for every concern: frozen dataclasses, presets as overrides, dotted keys.

Every configuration (GAN, classifier, experiment, preprocessing, affine expansion) is a frozen
dataclass whose ``__post_init__`` refuses values no run can use, so a config that exists is valid.
A config is resolved as ``defaults <- preset <- overrides``: a preset is a mapping of keys to values
that differ from the defaults, and so are the user's overrides. Keys are dotted paths through
nested configs (``optim.g_lr``, ``gan.optim.steps``, ``preprocess.size``); a value may be a string
(``--set key=value`` on the command line), converted to the field's declared type, or a whole
config object for a nested field. Saved configs (``config.json``) are read back with
:func:`from_plain`, which is as strict as the command line.

Each concern declares its configs once, as a :class:`Presets` (its type, its preset table and
what to call it in messages), and everything else goes through that object: ``resolve(preset,
overrides)`` for a new config, ``override(config, overrides)`` for one that exists (a run to
resume, an experiment reopened), ``read(plain)`` for a saved one, ``valid_keys()`` for messages. One signature for every concern.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from pathsynth.errors import ConfigError, DataError
from pathsynth.files import write_text_atomic

Config = TypeVar("Config")
# fields set once, by :func:`resolve` (``preset``) or by the caller that resolves (``modality``):
# no preset or override may change them
_RECORDED = ("preset", "modality", "fold")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def is_config(value: Any) -> bool:
    """True for a config dataclass type or instance."""
    return dataclasses.is_dataclass(value)


def _hints(config_type: type) -> dict[str, Any]:
    return typing.get_type_hints(config_type)


def dotted_keys(config_type: type) -> list[str]:
    """Every key a preset or ``--set`` may name, nested configs flattened (``optim.g_lr``)."""
    keys: list[str] = []
    for name, hint in _hints(config_type).items():
        if name.startswith("_") or name in _RECORDED:
            continue
        if isinstance(hint, type) and is_config(hint):
            keys.extend(f"{name}.{key}" for key in dotted_keys(hint))
        else:
            keys.append(name)
    return keys


def to_plain(config: Any) -> dict[str, Any]:
    """A config as nested JSON-able data (tuples become lists)."""
    return cast(dict[str, Any], json.loads(json.dumps(dataclasses.asdict(config))))


def _unknown(key: str, config_type: type, what: str) -> ConfigError:
    """The error for an unknown key: the valid keys of its group (the top level's names for a
    key without a known group), and the closest one when there is a close one."""
    every = dotted_keys(config_type)
    group = key.rsplit(".", 1)[0] + "." if "." in key else ""
    valid = [k for k in every if group and k.startswith(group)]
    if not valid:
        valid = list(dict.fromkeys(k if "." not in k else k.split(".")[0] + ".*" for k in every))
    close = difflib.get_close_matches(key, every, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"unknown {what} setting {key!r}{hint}; valid keys: {', '.join(valid)}")


def _number(key: str, kind: type, value: Any) -> Any:
    """``value`` as a finite int or float, from a number or its text."""
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value.strip()) if isinstance(value, str) else value
    if not isinstance(number, int | float) or not math.isfinite(number):
        raise ValueError(value)
    if kind is int:
        if not float(number).is_integer():
            raise ValueError(value)
        return int(number)
    return float(number)


def _items(value: Any) -> list[Any]:
    """A list from a list, a tuple, or comma-separated text."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError(value)
    return list(value)


def _coerce(key: str, hint: Any, value: Any, what: str) -> Any:
    """``value`` converted to the declared type ``hint`` of ``key``.

    Raises:
        ConfigError: a value that cannot be converted, naming the key and the wanted type.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        empty = value is None or (
            isinstance(value, str) and value.strip().lower() in ("none", "null")
        )
        if empty and type(None) in args:
            return None
        inner = [arg for arg in args if arg is not type(None)]
        return _coerce(key, inner[0], value, what)
    try:
        if hint is Any:
            return value
        if isinstance(hint, type) and is_config(hint):
            if isinstance(value, hint):
                return value
            if isinstance(value, Mapping):
                return from_plain(hint, value, what, prefix=f"{key}.")
            raise ValueError(value)
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError(value)
        if hint in (int, float):
            return _number(key, hint, value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
        if origin in (tuple, list):
            items = _items(value)
            made = [_coerce(f"{key}[{i}]", args[0], item, what) for i, item in enumerate(items)]
            return tuple(made) if origin is tuple else made
        if origin is dict:
            mapping = json.loads(value) if isinstance(value, str) else value
            if not isinstance(mapping, Mapping):
                raise ValueError(value)
            value_hint = args[1] if args else Any
            return {k: _coerce(f"{key}.{k}", value_hint, item, what) for k, item in mapping.items()}
    except (ValueError, TypeError, OverflowError, json.JSONDecodeError):
        wanted = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{what} setting {key!r} wants a {wanted}, got {value!r}") from None
    raise ConfigError(f"{what} setting {key!r} has a type this reader does not know: {hint}")


def from_plain(
    config_type: type[Config], data: Mapping[str, Any], what: str = "config", prefix: str = ""
) -> Config:
    """A config from nested plain data (a saved ``config.json``), every value type-checked.

    Missing keys keep their defaults; a field without a default must be there.

    Raises:
        ConfigError: an unknown key (the message lists the valid ones), a missing field without
            a default, a value of the wrong type, or a value the config refuses.
    """
    hints = _hints(config_type)
    values = {}
    for name, value in data.items():
        if name not in hints or name.startswith("_"):
            raise _unknown(prefix + name, config_type, what)
        values[name] = _coerce(prefix + name, hints[name], value, what)
    missing = [
        prefix + f.name
        for f in dataclasses.fields(config_type)  # type: ignore[arg-type]
        if f.init and f.name not in values
        and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]  # fmt: skip
    if missing:
        raise ConfigError(f"{what} lacks {', '.join(missing)}")
    return config_type(**values)


def with_overrides(config: Config, overrides: Mapping[str, Any], what: str = "config") -> Config:
    """A copy of ``config`` with dotted-key ``overrides`` applied (``config`` is left as it is).

    The keys of one group are applied together, so a group's checks see all of its new values at
    once (``model.channels`` and ``model.norm_groups`` may change together though neither fits the
    other's old value).

    Raises:
        ConfigError: an unknown key, a value that cannot be converted, or one the config refuses.
    """
    tree: dict[str, Any] = {}  # field name -> _Leaf, or a dict of the group's own
    for key, value in overrides.items():
        *groups, name = key.split(".")
        node = tree
        for group in groups:
            child = node.setdefault(group, {})
            if isinstance(child, _Leaf):  # a whole group given too: its keys apply on top
                child = node[group] = {_WHOLE: child}
            node = child
        if isinstance(node.get(name), dict):
            node[name][_WHOLE] = _Leaf(key, value)
        else:
            node[name] = _Leaf(key, value)
    return _apply(config, tree, type(config), what) if tree else config


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """One override as given: the dotted key and its value."""

    key: str
    value: Any


_WHOLE = ""  # in a group of overrides: the value given for the whole group, applied first


def _apply(config: Any, group: dict[str, Any], root: type, what: str) -> Any:
    """``config`` with a group's overrides replaced in one step (nested groups first)."""
    hints = _hints(type(config))
    changes = {}
    for name, item in group.items():
        key = item.key if isinstance(item, _Leaf) else _first_key(item)
        if name not in hints or name.startswith("_") or name in _RECORDED:
            raise _unknown(key, root, what)
        if isinstance(item, _Leaf):
            changes[name] = _coerce(key, hints[name], item.value, what)
            continue
        whole = item.get(_WHOLE)
        inner = (
            _coerce(whole.key, hints[name], whole.value, what) if whole else getattr(config, name)
        )
        keys = {field: value for field, value in item.items() if field != _WHOLE}
        if not is_config(inner):
            raise _unknown(_first_key(keys), root, what)
        changes[name] = _apply(inner, keys, root, what)
    try:
        return dataclasses.replace(config, **changes)
    except ConfigError as error:
        leaves = [item for item in group.values() if isinstance(item, _Leaf)]
        if len(group) != 1 or not leaves or leaves[0].key in str(error):
            raise
        raise ConfigError(f"{what} setting {leaves[0].key}={leaves[0].value!r}: {error}") from None


def _first_key(group: dict[str, Any]) -> str:
    """The dotted key of a group's first override below its whole-group value."""
    item = next(value for field, value in group.items() if field != _WHOLE)
    return item.key if isinstance(item, _Leaf) else _first_key(item)


def resolve(
    config_type: type[Config],
    presets: Mapping[str, Mapping[str, Any]],
    preset: str,
    overrides: Mapping[str, Any] | None = None,
    what: str = "config",
) -> Config:
    """``config_type`` from its defaults, then the named preset, then ``overrides``.

    A config with a ``preset`` field records the preset's name in it.

    Raises:
        ConfigError: an unknown preset (the message lists the known ones), an unknown key, or a
            value the config refuses.
    """
    if preset not in presets:
        raise ConfigError(f"unknown {what} preset {preset!r}; known: {', '.join(presets)}")
    config = config_type()
    if "preset" in _hints(config_type):
        config = dataclasses.replace(config, preset=preset)  # type: ignore[type-var]
    config = with_overrides(config, presets[preset], what)
    return with_overrides(config, overrides or {}, what)


class Presets(Generic[Config]):
    """One concern's configs: its frozen dataclass, its named presets, and the one way in.

    Args:
        config_type: the frozen dataclass.
        presets: preset name -> the keys (dotted or whole groups) that differ from the defaults.
        what: the concern's name in messages (``GAN``, ``classifier``, ...).
        finish: applied to every config this makes, after the overrides: settings that follow
            from others (an experiment's generators see its inputs); identity by default.
        check: refuses overrides no caller may give (keys that ``finish`` sets), before any is
            applied; raises :class:`ConfigError`.
    """

    def __init__(
        self,
        config_type: type[Config],
        presets: Mapping[str, Mapping[str, Any]],
        what: str,
        finish: Callable[[Config], Config] | None = None,
        check: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.config_type = config_type
        self.presets = presets
        self.what = what
        self._finish = finish or (lambda config: config)
        self._check = check or (lambda overrides: None)

    @property
    def names(self) -> list[str]:
        """The preset names, in their table's order."""
        return list(self.presets)

    def resolve(self, preset: str, overrides: Mapping[str, Any] | None = None) -> Config:
        """Defaults, then the named preset, then ``overrides`` (dotted keys; strings converted;
        ``None`` values are not given).

        Raises:
            ConfigError: an unknown preset (the message lists the known ones), an unknown key, or
                a value the config refuses.
        """
        given = {key: value for key, value in (overrides or {}).items() if value is not None}
        self._check(given)
        return self._finish(resolve(self.config_type, self.presets, preset, given, self.what))

    def override(self, config: Config, overrides: Mapping[str, Any]) -> Config:
        """A copy of ``config`` with dotted-key ``overrides`` applied (``None`` values skipped).

        Raises:
            ConfigError: an unknown key, a value that cannot be converted or one the config
                refuses.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        self._check(given)
        return self._finish(with_overrides(config, given, self.what))

    def read(self, data: Mapping[str, Any]) -> Config:
        """A config from nested plain data (a saved ``config.json`` or a checkpoint's copy),
        as strict as the command line.

        Raises:
            ConfigError: a group or key the config does not have, or a value it refuses.
        """
        return self._finish(from_plain(self.config_type, data, self.what))

    def valid_keys(self) -> list[str]:
        """Every dotted key a preset or ``--set`` may name."""
        return dotted_keys(self.config_type)


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """``["optim.g_lr=2e-4", ...]`` as ``{"optim.g_lr": "2e-4"}``.

    Raises:
        ConfigError: an item without ``=``.
    """
    result: dict[str, str] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set wants key=value, got {item!r}")
        key, value = item.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def sanitise(value: Any) -> Any:
    """A JSON-able copy with every NaN or infinity replaced by ``None`` (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(key): sanitise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [sanitise(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_record(record: Any, path: Path) -> None:
    """Write a dataclass record as strict JSON (NaN and infinities as null), atomically."""
    text = json.dumps(sanitise(dataclasses.asdict(record)), indent=2, allow_nan=False)
    write_text_atomic(path, text + "\n")


def load_record(
    record_type: type[Config], path: Path, what: str, version: tuple[str, int, str] | None = None
) -> Config:
    """Read a record :func:`save_record` wrote, every field type-checked.

    Args:
        record_type: the record's dataclass.
        path: the file.
        what: the record's name in messages.
        version: ``(key, expected value, what to do otherwise)``: a file whose ``key`` differs
            is refused with a message that says what to do.

    Raises:
        DataError: the file is missing or unreadable, is not JSON, is of another version, or
            does not match the record (the message names the field).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"cannot read {what} {path} ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{what} {path} is not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{what} {path} holds a {type(data).__name__}, not an object")
    if version is not None and data.get(version[0]) != version[1]:
        found = data.get(version[0], "none")
        raise DataError(
            f"{what} {path} was written by another pathsynth version ({version[0]} {found}, "
            f"this one reads {version[1]}); {version[2]}"
        )
    try:
        return from_plain(record_type, data, what)
    except (ConfigError, TypeError) as error:
        raise DataError(f"{what} {path} does not match its schema: {error}") from None


def to_json(config: Any) -> str:
    """A config as indented JSON (what ``config.json`` holds and ``--dry-run`` prints)."""
    return json.dumps(to_plain(config), indent=2)
