"""Checkpoints of the four SGFT networks, and the actor alone as bytes (the PolicyUpdate message's payload).

Format: one safetensors file (no pickle, so loading cannot execute code). Tensors are float32 and named
`<network>.<parameter>` (networks: actor, critic, value, dynamics; the normalization statistics are buffers of each
network). The safetensors header's metadata holds one JSON document under the key "sgft": format and version, task,
obs/act dims, network architecture, training config, seed, wall time, library versions and the sha256 of the tensor
contents, which catches corruption that the header parser would not notice.

Loading validates everything before a network is handed out and raises `CheckpointError` with the reason, and no
other error type, whatever the bytes: the header is parsed here first (bounded size and JSON depth, no NaN/Infinity,
every entry float32 with a byte range that fits its shape and the data), task as expected, dims as the task's
TaskSpec says, architecture numbers integers in sane ranges, every tensor present with the shape the architecture
implies (compared on the header, before any tensor is read or network built, so memory stays proportional to the
input), finite, sha256 as recorded.
"""

import hashlib
import json
import math
import os
import platform
import re
import struct
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from sgft_core.networks import Actor, NetworkConfig, Networks, build_actor, build_networks

FORMAT = "sgft-checkpoint"
ACTOR_FORMAT = "sgft-actor"
FORMAT_VERSION = 1
METADATA_KEY = "sgft"
MAX_HEADER_BYTES = 1024 * 1024  # an SGFT header is a few kB; the bound keeps a hostile one's JSON small
MAX_JSON_DEPTH = 32
MAX_TENSORS = 1024
# Sane architecture ranges, checked before anything is built.
MAX_IO_DIM = 4096
MAX_HIDDEN_DIM = 4096
MAX_NUM_LAYERS = 8
MAX_NUM_Q = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


class CheckpointError(Exception):
    """A checkpoint or serialized actor that cannot be used; the message says why."""


@dataclass
class Checkpoint:
    task: str
    obs_dim: int
    act_dim: int
    network_config: NetworkConfig
    networks: Networks
    metadata: dict = field(default_factory=dict)  # everything in the "sgft" JSON document


def library_versions() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "sgft_core": version("sgft_core"),
    }


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never a torn one:
    temporary file in the same directory, fsync, rename over the target, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            os.fchmod(tmp_file.fileno(), 0o644)  # mkstemp's 0600 would make shipped files unreadable to others
            tmp_file.write(data)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors in sorted-name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _prefixed_state(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    tensors = {}
    for prefix, module in modules.items():
        for name, tensor in module.state_dict().items():
            tensors[f"{prefix}.{name}"] = tensor.detach().to(torch.float32).contiguous().cpu().clone()
    return tensors


def _serialize(tensors: dict[str, torch.Tensor], meta: dict) -> bytes:
    meta = dict(meta, weights_sha256=tensors_sha256(tensors))
    return safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})


def _check_json_depth(raw: bytes, what: str) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH before the recursive parser sees it (RecursionError)."""
    depth = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b'""', raw)):
        depth += 1 if bracket in b"[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise CheckpointError(f"{what} is nested deeper than {MAX_JSON_DEPTH}")


def _strict_json(raw: bytes | str, what: str) -> object:
    """JSON without NaN/Infinity and without deep nesting, or CheckpointError."""
    raw = raw.encode() if isinstance(raw, str) else raw
    _check_json_depth(raw, what)

    def refuse_constant(name: str) -> None:
        raise ValueError(f"non-finite number {name}")

    try:
        return json.loads(raw, parse_constant=refuse_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"corrupted {what}: {exc}") from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_header(data: bytes) -> tuple[dict[str, tuple[tuple[int, ...], int, int]], dict]:
    """The tensor table (name -> shape, begin, end) and the SGFT metadata of safetensors bytes, checked for
    consistency with the data length and types without reading any tensor; CheckpointError otherwise."""
    if len(data) < 8:
        raise CheckpointError(f"file too short to be a checkpoint ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise CheckpointError(f"corrupted header: declared length {header_len} for {len(data)} bytes of data")
    header = _strict_json(data[8 : 8 + header_len], "header")
    if not isinstance(header, dict):
        raise CheckpointError(f"corrupted header: a JSON {type(header).__name__}, not an object")
    raw_meta = header.pop("__metadata__", None)
    if not isinstance(raw_meta, dict) or not isinstance(raw_meta.get(METADATA_KEY), str):
        raise CheckpointError("corrupted or foreign header (no SGFT metadata)")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in raw_meta.items()):
        raise CheckpointError("corrupted header: metadata values must be strings")
    meta = _strict_json(raw_meta[METADATA_KEY], "SGFT metadata")
    if not isinstance(meta, dict):
        raise CheckpointError(f"corrupted SGFT metadata: a JSON {type(meta).__name__}, not an object")
    if len(header) > MAX_TENSORS:
        raise CheckpointError(f"{len(header)} tensors, more than any SGFT network has")
    table = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"corrupted header entry for {name!r}")
        shape, offsets = info["shape"], info["data_offsets"]
        if info["dtype"] != "F32":
            raise CheckpointError(f"{name} has dtype {info['dtype']!r}, expected F32 (float32)")
        if (not isinstance(shape, list) or len(shape) > 4 or not all(_is_int(d) and d >= 0 for d in shape)
                or not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)):
            raise CheckpointError(f"corrupted shape or offsets of {name}")
        begin, end = offsets
        if not 0 <= begin <= end or end - begin != 4 * math.prod(shape):
            raise CheckpointError(f"byte range {offsets} of {name} does not fit its shape {shape}")
        table[name] = (tuple(shape), begin, end)
    # safetensors lays the tensors out back to back, covering the data exactly
    position = 0
    for name, (_, begin, end) in sorted(table.items(), key=lambda item: item[1][1:]):
        if begin != position:
            raise CheckpointError(f"tensor data of {name} starts at {begin}, expected {position}")
        position = end
    if position != len(data) - 8 - header_len:
        raise CheckpointError(f"tensor data is {len(data) - 8 - header_len} bytes, the header describes {position}")
    return table, meta


def _check_format(meta: dict, expected_format: str) -> None:
    if meta.get("format") != expected_format:
        raise CheckpointError(f"not an {expected_format} file (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"unsupported format version {meta.get('format_version')!r} (expected {FORMAT_VERSION})")


def _check_table(table: dict[str, tuple[tuple[int, ...], int, int]], expected: dict[str, torch.Size]) -> None:
    """Names and shapes in the header against those of the architecture, before any tensor is read."""
    missing, unexpected = sorted(set(expected) - set(table)), sorted(set(table) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"tensor names do not match the architecture: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    for name, (shape, _, _) in table.items():
        if shape != tuple(expected[name]):
            raise CheckpointError(f"shape of {name} is {shape}, expected {tuple(expected[name])}")


def _read_tensors(data: bytes, meta: dict) -> dict[str, torch.Tensor]:
    """The tensors (header already validated) and the check of their recorded sha256."""
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error types for malformed payloads
        raise CheckpointError(f"corrupted tensor data: {exc}") from exc
    sha = tensors_sha256(tensors)
    if sha != meta.get("weights_sha256"):
        raise CheckpointError(f"weights sha256 mismatch: recorded {meta.get('weights_sha256')}, computed {sha}")
    return tensors


def _check_task_and_dims(meta: dict, task: str | None, obs_dim: int | None, act_dim: int | None) -> None:
    if task is not None:
        if meta.get("task") != task:
            raise CheckpointError(f"checkpoint is for task {meta.get('task')!r}, expected {task!r}")
        if obs_dim is None or act_dim is None:
            from sgft_core.tasks import get_task  # the task registry knows the dims the robot side uses

            try:
                spec = get_task(task)
            except ValueError as exc:
                raise CheckpointError(str(exc)) from exc
            obs_dim = spec.obs_dim if obs_dim is None else obs_dim
            act_dim = spec.action_dim if act_dim is None else act_dim
    if obs_dim is not None and meta.get("obs_dim") != obs_dim:
        raise CheckpointError(f"checkpoint observation dim {meta.get('obs_dim')} != expected {obs_dim}")
    if act_dim is not None and meta.get("act_dim") != act_dim:
        raise CheckpointError(f"checkpoint action dim {meta.get('act_dim')} != expected {act_dim}")


def _load_into(modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    """Strict, shape-checked, finiteness-checked copy of `tensors` into `modules`."""
    expected = {f"{prefix}.{name}": t for prefix, m in modules.items() for name, t in m.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"tensor names do not match the architecture: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"shape of {name} is {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}")
        if tensor.dtype != torch.float32:
            raise CheckpointError(f"{name} has dtype {tensor.dtype}, expected float32")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{name} contains NaN or Inf")
        if name.endswith("norm.std") and not (tensor > 0).all():
            raise CheckpointError(f"{name} has a non-positive normalization std")
    for prefix, module in modules.items():
        module.load_state_dict({n[len(prefix) + 1 :]: t for n, t in tensors.items() if n.startswith(prefix + ".")})


def _dims_and_config(meta: dict) -> tuple[int, int, NetworkConfig]:
    """Dims and architecture of the metadata: JSON integers (no floats, strings or booleans) in sane ranges, so
    that nothing absurd is ever built."""
    network = meta.get("network")
    if not isinstance(network, dict):
        raise CheckpointError("metadata lacks a valid architecture: no network object")
    numbers = {"obs_dim": (meta.get("obs_dim"), MAX_IO_DIM), "act_dim": (meta.get("act_dim"), MAX_IO_DIM),
               "hidden_dim": (network.get("hidden_dim"), MAX_HIDDEN_DIM),
               "num_layers": (network.get("num_layers"), MAX_NUM_LAYERS), "num_q": (network.get("num_q"), MAX_NUM_Q)}
    for name, (value, limit) in numbers.items():
        if not _is_int(value) or not 1 <= value <= limit:
            raise CheckpointError(f"metadata lacks a valid architecture: {name}={value!r} is not an integer in "
                                  f"[1, {limit}]")
    if not isinstance(network.get("critic_layer_norm"), bool):
        raise CheckpointError("metadata lacks a valid architecture: critic_layer_norm is not a boolean")
    config = NetworkConfig(hidden_dim=network["hidden_dim"], num_layers=network["num_layers"],
                           num_q=network["num_q"], critic_layer_norm=network["critic_layer_norm"])
    return meta["obs_dim"], meta["act_dim"], config


def _check_actor_config(config: NetworkConfig, expected: NetworkConfig | None) -> None:
    # only the fields that shape the actor: a learner may train a different critic ensemble
    if expected is not None and (config.hidden_dim, config.num_layers) != (expected.hidden_dim, expected.num_layers):
        raise CheckpointError(f"architecture hidden_dim={config.hidden_dim} num_layers={config.num_layers}, "
                              f"expected hidden_dim={expected.hidden_dim} num_layers={expected.num_layers}")


def _state_shapes(modules: dict[str, nn.Module]) -> dict[str, torch.Size]:
    return {f"{prefix}.{name}": t.shape for prefix, m in modules.items() for name, t in m.state_dict().items()}


def save_checkpoint(
    path: str | os.PathLike,
    networks: Networks,
    task: str,
    network_config: NetworkConfig,
    *,
    train_config: dict | None = None,
    seed: int | None = None,
    wall_time_s: float | None = None,
    extra: dict | None = None,
) -> str:
    """Atomically write the four networks and their metadata; returns the weights' sha256."""
    tensors = _prefixed_state(networks.modules())
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "obs_dim": networks.actor.obs_dim,
        "act_dim": networks.actor.act_dim,
        "network": network_config.to_dict(),
        "train_config": train_config or {},
        "seed": seed,
        "wall_time_s": wall_time_s,
        "created_unix": time.time(),
        "versions": library_versions(),
        "extra": extra or {},
    }
    data = _serialize(tensors, meta)
    atomic_write_bytes(path, data)
    return tensors_sha256(tensors)


def _checked_load(load, what: str):
    """Run `load`, turning any error but CheckpointError into one: malformed input must never escape as another type."""
    try:
        return load()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"cannot load {what}: {type(exc).__name__}: {exc}") from exc


def load_checkpoint(
    path: str | os.PathLike, task: str | None = None, obs_dim: int | None = None, act_dim: int | None = None,
    expected_config: NetworkConfig | None = None,
) -> Checkpoint:
    """Load and validate a checkpoint; `task` (and dims, taken from its TaskSpec when not given) must match, and the
    actor's architecture that of `expected_config` when given."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc

    def load() -> Checkpoint:
        table, meta = _read_header(data)
        _check_format(meta, FORMAT)
        _check_task_and_dims(meta, task, obs_dim, act_dim)
        obs_dim_, act_dim_, config = _dims_and_config(meta)
        _check_actor_config(config, expected_config)
        with torch.device("meta"):  # shapes only, no memory
            _check_table(table, _state_shapes(build_networks(obs_dim_, act_dim_, config).modules()))
        tensors = _read_tensors(data, meta)
        networks = build_networks(obs_dim_, act_dim_, config)
        _load_into(networks.modules(), tensors)
        return Checkpoint(meta["task"], obs_dim_, act_dim_, config, networks, meta)

    return _checked_load(load, f"checkpoint {path}")


def actor_to_bytes(actor: Actor, task: str, network_config: NetworkConfig, extra: dict | None = None) -> tuple[
        bytes, str]:
    """The actor alone (with its normalizer) as safetensors bytes, and the sha256 of those bytes."""
    meta = {
        "format": ACTOR_FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "obs_dim": actor.obs_dim,
        "act_dim": actor.act_dim,
        "network": network_config.to_dict(),
        "extra": extra or {},
    }
    data = _serialize(_prefixed_state({"actor": actor}), meta)
    return data, hashlib.sha256(data).hexdigest()


def actor_from_bytes(
    data: bytes, task: str, sha256: str | None = None, obs_dim: int | None = None, act_dim: int | None = None,
    expected_config: NetworkConfig | None = None,
) -> Actor:
    """Validate and rebuild an actor from `actor_to_bytes` output (sha256 of the whole payload checked if given;
    hidden_dim and num_layers those of `expected_config` if given)."""

    def load() -> Actor:
        payload = bytes(data)
        if sha256 is not None and hashlib.sha256(payload).hexdigest() != str(sha256).lower():
            raise CheckpointError("actor bytes do not match the announced sha256")
        table, meta = _read_header(payload)
        _check_format(meta, ACTOR_FORMAT)
        _check_task_and_dims(meta, task, obs_dim, act_dim)
        obs_dim_, act_dim_, config = _dims_and_config(meta)
        _check_actor_config(config, expected_config)
        with torch.device("meta"):  # shapes only, no memory
            _check_table(table, _state_shapes({"actor": build_actor(obs_dim_, act_dim_, config)}))
        tensors = _read_tensors(payload, meta)
        actor = build_actor(obs_dim_, act_dim_, config)
        _load_into({"actor": actor}, tensors)
        return actor.eval()

    return _checked_load(load, "actor bytes")


def actor_from_checkpoint(path: str | os.PathLike, task: str | None = None) -> Actor:
    """Just the actor of a full checkpoint (what the policy node starts from)."""
    return load_checkpoint(path, task).networks.actor.eval()
