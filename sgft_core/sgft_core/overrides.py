"""`key=value` overrides, one syntax for every command line: dotted keys, values typed as YAML reads them.

    python -m sgft_bringup.run_graph --set sgft_learner.finetune.horizon=1      # node.parameter (nested: dots)
    python -m sgft_sim.benchmark --set horizon=none --set rlpd.utd=5            # field, or method.field

`1` is an int, `1.0` and `3e-4` floats, `true` a bool, `[1, 2]` a list, `{a: 1}` a mapping (merged like dotted
keys), anything else a string. A dataclass field
whose type admits None (FinetuneConfig's horizon, actor_lr, critic_huber_delta, target_entropy, target_q_subset)
takes the string `none` for None, everywhere: on these command lines, in a ROS parameter file (where YAML's null
cannot be a parameter value) and in `ros2 param`; YAML's `null` is accepted where a None can travel.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

NONE = "none"  # how a None is written where a value must be a string, number or bool (ROS parameters)
# Exponent floats without a dot (3e-4), which PyYAML's YAML 1.1 reads as strings but ROS parameter files as numbers.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_assignment(item: str) -> tuple[str, Any]:
    """"a.b=value" → ("a.b", YAML-typed value)."""
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"expected key=value (key: dotted names), got {item!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{item!r}: the value is not valid YAML ({err})") from err
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
        value = float(value)
    return key, value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """["a.b=1", "c=none", ...] → {"a.b": 1, "c": "none"}; a later assignment to the same key wins."""
    return dict(parse_assignment(item) for item in items)


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"a.b.c": 1} → {"a": {"b": {"c": 1}}}; a mapping value is merged like written-out keys."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key}: {part} is set to a value, so it has no {leaf}")
        merge(node, {leaf: value})
    return nested


def merge(base: dict, overrides: Mapping[str, Any]) -> dict:
    """Deep-merge `overrides` into `base` in place (mappings merge, anything else replaces); returns `base`."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
    return base


def field_types(cls: type) -> dict[str, Any]:
    """Field name → resolved type annotation of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def optional_base(annotation: Any) -> Any | None:
    """X for `X | None` (or Optional[X]), else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def coerce(name: str, annotation: Any, value: Any) -> Any:
    """`value` as the field `name` of type `annotation` takes it, or ValueError naming the field: an int is a float
    too, a bool is never a number, and an optional field takes None or "none"."""
    base = optional_base(annotation)
    if base is not None:
        if value is None or value == NONE:
            return None
        annotation = base
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(annotation, True)  # other field types (nested configs) are left to the dataclass
    if not ok:
        expected = getattr(annotation, "__name__", str(annotation)) + (f" or {NONE!r}" if base is not None else "")
        raise ValueError(f"{name}: expected {expected}, got {value!r} ({type(value).__name__})")
    return float(value) if annotation is float else value


def coerce_fields(cls: type, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Validate `values` against the fields of dataclass `cls`: unknown names and wrong types raise ValueError
    naming the field (as `prefix` + name)."""
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {', '.join(prefix + k for k in unknown)}; known: "
                         f"{', '.join(types_)}")
    return {name: coerce(prefix + name, types_[name], value) for name, value in values.items()}
