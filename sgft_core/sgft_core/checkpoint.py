"""Checkpoints of the four SGFT networks, and the actor alone as bytes (the PolicyUpdate message's payload).

Format: one safetensors file (no pickle, so loading cannot execute code). Tensors are float32 and named
`<network>.<parameter>` (networks: actor, critic, value, dynamics; the normalization statistics are buffers of each
network). The safetensors header's metadata holds one JSON document under the key "sgft": format and version, task,
obs/act dims, network architecture, training config, seed, wall time, library versions and the sha256 of the tensor
contents, which catches corruption that the header parser would not notice.

Loading validates everything before a network is handed out and raises `CheckpointError` with the reason: header
and JSON well-formed, task as expected, dims as the task's TaskSpec says, every tensor present with the shape the
architecture implies, float32, finite, sha256 as recorded.
"""

import hashlib
import json
import os
import platform
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
MAX_HEADER_BYTES = 10 * 1024 * 1024


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


def _parse(data: bytes, expected_format: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Header, metadata and tensors of safetensors bytes, or CheckpointError."""
    if len(data) < 8:
        raise CheckpointError(f"file too short to be a checkpoint ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise CheckpointError(f"corrupted header: declared length {header_len} for {len(data)} bytes of data")
    try:
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header["__metadata__"][METADATA_KEY])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"corrupted or foreign header (no SGFT metadata): {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        raise CheckpointError(f"not an {expected_format} file (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"unsupported format version {meta.get('format_version')!r} (expected {FORMAT_VERSION})")
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error types for malformed payloads
        raise CheckpointError(f"corrupted tensor data: {exc}") from exc
    sha = tensors_sha256(tensors)
    if sha != meta.get("weights_sha256"):
        raise CheckpointError(f"weights sha256 mismatch: recorded {meta.get('weights_sha256')}, computed {sha}")
    return tensors, meta


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
    try:
        obs_dim, act_dim = int(meta["obs_dim"]), int(meta["act_dim"])
        config = NetworkConfig.from_dict(meta["network"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"metadata lacks a valid architecture: {exc}") from exc
    if min(obs_dim, act_dim, config.hidden_dim, config.num_layers, config.num_q) < 1:
        raise CheckpointError("metadata has non-positive dimensions")
    return obs_dim, act_dim, config


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


def load_checkpoint(
    path: str | os.PathLike, task: str | None = None, obs_dim: int | None = None, act_dim: int | None = None
) -> Checkpoint:
    """Load and validate a checkpoint; `task` (and dims, taken from its TaskSpec when not given) must match."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    tensors, meta = _parse(data, FORMAT)
    _check_task_and_dims(meta, task, obs_dim, act_dim)
    obs_dim_, act_dim_, config = _dims_and_config(meta)
    networks = build_networks(obs_dim_, act_dim_, config)
    _load_into(networks.modules(), tensors)
    return Checkpoint(meta["task"], obs_dim_, act_dim_, config, networks, meta)


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
    data: bytes, task: str, sha256: str | None = None, obs_dim: int | None = None, act_dim: int | None = None
) -> Actor:
    """Validate and rebuild an actor from `actor_to_bytes` output (sha256 of the whole payload checked if given)."""
    data = bytes(data)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise CheckpointError("actor bytes do not match the announced sha256")
    tensors, meta = _parse(data, ACTOR_FORMAT)
    _check_task_and_dims(meta, task, obs_dim, act_dim)
    obs_dim_, act_dim_, config = _dims_and_config(meta)
    actor = build_actor(obs_dim_, act_dim_, config)
    _load_into({"actor": actor}, tensors)
    return actor.eval()


def actor_from_checkpoint(path: str | os.PathLike, task: str | None = None) -> Actor:
    """Just the actor of a full checkpoint (what the policy node starts from)."""
    return load_checkpoint(path, task).networks.actor.eval()
