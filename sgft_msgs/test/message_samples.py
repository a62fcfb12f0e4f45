"""Deterministic, non-default sample values for every field of every sgft_msgs interface.

Filling fields from the type introspection (not by hand) means a field added later is covered by the round-trip
test without anyone remembering to extend it.
"""

from __future__ import annotations

import importlib
import random
import zlib

MESSAGE_TYPES = ("Transition", "PolicyUpdate", "ObjectDetection", "EpisodeEvent", "LearnerStatus", "Intervention")
SERVICE_TYPES = ("StartEpisode", "StopEpisode", "ResetEpisode", "LabelEpisode")

_INT_RANGES = {
    "uint8": (1, 255), "int8": (-128, 127), "uint16": (1, 65535), "int16": (-32768, 32767),
    "uint32": (1, 2**32 - 1), "int32": (-(2**31), 2**31 - 1), "uint64": (1, 2**64 - 1), "int64": (-(2**63), 2**63 - 1),
}


def _scalar(type_name: str, rng: random.Random):
    if type_name == "boolean":
        return True
    if type_name in _INT_RANGES:
        return rng.randint(*_INT_RANGES[type_name])
    if type_name == "octet":
        return bytes([rng.randint(1, 255)])
    if type_name == "float":
        # exactly representable in float32 so the comparison after DDS is exact
        return rng.randint(-(2**20), 2**20) / 1024.0
    if type_name == "double":
        return rng.uniform(-1e6, 1e6)
    if type_name == "string":
        return "sample-" + "".join(rng.choice("abcdefghij/_{}:,") for _ in range(rng.randint(1, 40)))
    if "/" in type_name:
        package, name = type_name.split("/")
        msg_cls = getattr(importlib.import_module(f"{package}.msg"), name)
        return sample_message(msg_cls, rng.randint(0, 2**31))
    raise ValueError(f"no sample rule for field type {type_name!r}")


def sample_message(msg_cls, seed: int):
    """An instance of msg_cls whose every field holds a non-default value derived from seed."""
    rng = random.Random(seed)
    msg = msg_cls()
    for field, type_name in msg_cls.get_fields_and_field_types().items():
        if type_name.startswith("sequence<"):
            inner = type_name[len("sequence<"):-1].split(",")[0]
            length = rng.randint(1, 300) if inner in ("uint8", "octet") else rng.randint(1, 12)
            value = [_scalar(inner, rng) for _ in range(length)]
        else:
            value = _scalar(type_name, rng)
        setattr(msg, field, value)
    return msg


def response_for(srv_type, request):
    """The response the echo peer sends for request: a sample seeded by the request's content."""
    return sample_message(srv_type.Response, zlib.crc32(str(request).encode()))


def as_plain(value):
    """Message -> nested dict/list of plain Python values, for equality checks with a readable diff."""
    if hasattr(value, "get_fields_and_field_types"):
        return {f: as_plain(getattr(value, f)) for f in value.get_fields_and_field_types()}
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
        return [as_plain(v) for v in value]
    return value
