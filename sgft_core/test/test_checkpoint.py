import hashlib
import json
import struct

import numpy as np
import pytest
import safetensors.torch
import torch

from sgft_core.checkpoint import (
    CheckpointError,
    actor_from_bytes,
    actor_to_bytes,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
)
from sgft_core.networks import NetworkConfig, build_networks
from sgft_core.tasks import get_task

pytestmark = pytest.mark.faults

CONFIG = NetworkConfig(hidden_dim=16)


def _networks(task: str = "push"):
    spec = get_task(task)
    torch.manual_seed(0)
    nets = build_networks(spec.obs_dim, spec.action_dim, CONFIG)
    rng = np.random.default_rng(0)
    nets.set_normalization(rng.normal(size=spec.obs_dim), rng.uniform(0.1, 1, spec.obs_dim),
                           rng.normal(size=spec.obs_dim), rng.uniform(0.01, 0.1, spec.obs_dim))
    return nets


def _save(tmp_path, nets=None, task="push"):
    path = tmp_path / f"{task}.safetensors"
    save_checkpoint(path, nets or _networks(task), task, CONFIG, train_config={"lr": 3e-4}, seed=7, wall_time_s=1.5)
    return path


def _rewrite(path, edit) -> None:
    """Load the raw tensors and metadata, let `edit` change them, and write them back *with a matching sha256*, so
    the checks behind the hash are what gets tested."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    meta = json.loads(json.loads(data[8 : 8 + header_len])["__metadata__"]["sgft"])
    tensors = safetensors.torch.load(data)
    edit(tensors, meta)
    from sgft_core.checkpoint import tensors_sha256

    meta["weights_sha256"] = tensors_sha256(tensors)
    path.write_bytes(safetensors.torch.save(tensors, metadata={"sgft": json.dumps(meta)}))


def test_round_trip_restores_every_network_and_metadata(tmp_path):
    nets = _networks()
    path = _save(tmp_path, nets)
    loaded = load_checkpoint(path, task="push")
    assert loaded.task == "push" and loaded.obs_dim == 4 and loaded.act_dim == 2
    assert loaded.network_config == CONFIG
    for name, module in nets.modules().items():
        for key, tensor in module.state_dict().items():
            assert torch.equal(tensor, loaded.networks.modules()[name].state_dict()[key]), (name, key)
    meta = loaded.metadata
    assert meta["seed"] == 7 and meta["wall_time_s"] == 1.5 and meta["train_config"] == {"lr": 3e-4}
    assert {"torch", "numpy", "sgft_core", "python"} <= set(meta["versions"])
    obs = np.array([0.3, 0.0, 0.2, 0.05], dtype=np.float32)
    np.testing.assert_array_equal(nets.actor.act(obs, True), loaded.networks.actor.act(obs, True))
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary behind


def test_corrupted_file_is_rejected(tmp_path):
    path = _save(tmp_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path, task="push")
    path.write_bytes(bytes(data[:50]))  # truncated
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path, task="push")
    path.write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_checkpoint(path, task="push")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_foreign_safetensors_file_is_rejected(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="SGFT metadata"):
        load_checkpoint(path)


def test_nan_weight_is_rejected(tmp_path):
    path = _save(tmp_path)
    _rewrite(path, lambda tensors, meta: tensors["value.net.0.weight"].__setitem__((0, 0), float("nan")))
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path, task="push")


def test_wrong_task_is_rejected(tmp_path):
    path = _save(tmp_path, task="insert")
    with pytest.raises(CheckpointError, match="task 'insert', expected 'push'"):
        load_checkpoint(path, task="push")
    unknown = tmp_path / "sweep.safetensors"
    save_checkpoint(unknown, _networks(), "sweep", CONFIG)
    with pytest.raises(CheckpointError, match="unknown task"):
        load_checkpoint(unknown, task="sweep")  # no TaskSpec to check the dims against


def test_wrong_shapes_are_rejected(tmp_path):
    # A checkpoint that claims to be push but was built for 5-D observations: the TaskSpec says 4.
    spec_path = tmp_path / "wrong_dims.safetensors"
    save_checkpoint(spec_path, build_networks(5, 2, CONFIG), "push", CONFIG)
    with pytest.raises(CheckpointError, match="observation dim 5 != expected 4"):
        load_checkpoint(spec_path, task="push")

    # Metadata consistent with push, but one tensor of the wrong shape.
    path = _save(tmp_path)
    _rewrite(path, lambda tensors, meta: tensors.__setitem__("actor.mean_head.weight", torch.zeros(3, 16)))
    with pytest.raises(CheckpointError, match="shape of actor.mean_head.weight"):
        load_checkpoint(path, task="push")

    # A missing tensor.
    path = _save(tmp_path)
    _rewrite(path, lambda tensors, meta: tensors.pop("dynamics.delta_norm.std"))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path, task="push")

    # Architecture in the metadata does not match the tensors.
    path = _save(tmp_path)
    _rewrite(path, lambda tensors, meta: meta["network"].__setitem__("hidden_dim", 32))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path, task="push")


def test_actor_bytes_round_trip_and_validation():
    nets = _networks("insert")
    data, sha = actor_to_bytes(nets.actor, "insert", CONFIG)
    assert sha == hashlib.sha256(data).hexdigest()
    actor = actor_from_bytes(data, "insert", sha256=sha)
    obs = np.full(9, 0.4, dtype=np.float32)
    np.testing.assert_array_equal(actor.act(obs, True), nets.actor.act(obs, True))
    assert torch.equal(actor.obs_norm.std, nets.actor.obs_norm.std)  # the normalizer travels with the actor

    with pytest.raises(CheckpointError, match="sha256"):
        actor_from_bytes(data, "insert", sha256="0" * 64)
    with pytest.raises(CheckpointError, match="expected 'push'"):
        actor_from_bytes(data, "push")
    with pytest.raises(CheckpointError, match="action dim"):
        actor_from_bytes(data, "insert", act_dim=2)
    corrupted = bytearray(data)
    corrupted[-8] ^= 0x01
    with pytest.raises(CheckpointError, match="sha256"):
        actor_from_bytes(bytes(corrupted), "insert")  # caught by the embedded weights hash even without one given

    nets.actor.mean_head.bias.data[0] = float("inf")
    bad, bad_sha = actor_to_bytes(nets.actor, "insert", CONFIG)
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        actor_from_bytes(bad, "insert", sha256=bad_sha)


def test_full_checkpoint_is_not_an_actor_payload(tmp_path):
    path = _save(tmp_path)
    with pytest.raises(CheckpointError, match="not an sgft-actor"):
        actor_from_bytes(path.read_bytes(), "push")


def test_atomic_write_replaces_and_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"new" and [p.name for p in target.parent.iterdir()] == ["file.bin"]
