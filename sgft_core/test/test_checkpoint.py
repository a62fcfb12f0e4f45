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


# --------------------------------------------------------------------------- malformed bytes with a matching sha256
def _actor_payload(edit_header=None, edit_meta=None, tensors=None) -> bytes:
    """Valid actor bytes for push, with the header JSON and/or the SGFT metadata changed by the given functions."""
    nets = _networks()
    data, _ = actor_to_bytes(nets.actor, "push", CONFIG)
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    meta = json.loads(header["__metadata__"]["sgft"])
    if edit_meta is not None:
        meta = edit_meta(meta)
    header["__metadata__"]["sgft"] = meta if isinstance(meta, str) else json.dumps(meta)
    if edit_header is not None:
        header = edit_header(header)
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + header_len :]


def _load(data: bytes):
    return actor_from_bytes(data, "push", hashlib.sha256(data).hexdigest(), 4, 2, expected_config=CONFIG)


@pytest.fixture
def no_big_networks(monkeypatch):
    """Fail (instead of allocating) when a network larger than CONFIG's is built for real; meta-device builds,
    which take no memory, are allowed."""
    from sgft_core import checkpoint

    def guarded(build):
        def build_checked(obs_dim, act_dim, config):
            if torch.empty(0).device.type != "meta":
                assert config.hidden_dim <= CONFIG.hidden_dim and config.num_layers <= 8, config
            return build(obs_dim, act_dim, config)
        return build_checked

    monkeypatch.setattr(checkpoint, "build_actor", guarded(checkpoint.build_actor))
    monkeypatch.setattr(checkpoint, "build_networks", guarded(checkpoint.build_networks))


def _with_network(**fields):
    def edit(meta):
        meta["network"].update(fields)
        return meta
    return edit


def test_metadata_of_the_wrong_json_type_is_rejected():
    for edit in (_with_network(hidden_dim="16"), _with_network(hidden_dim=16.0), _with_network(critic_layer_norm="no"),
                 lambda meta: dict(meta, obs_dim=True), lambda meta: dict(meta, network=[16, 2, 2])):
        with pytest.raises(CheckpointError, match="architecture|dim"):
            _load(_actor_payload(edit_meta=edit))
    for edit_header in (lambda h: [h], lambda h: dict(h, __metadata__=["sgft"]),
                        lambda h: dict(h, __metadata__={"sgft": h["__metadata__"]["sgft"], "x": 5})):
        with pytest.raises(CheckpointError):
            _load(_actor_payload(edit_header=edit_header))
    with pytest.raises(CheckpointError, match="not an object"):
        _load(_actor_payload(edit_meta=lambda meta: "[1, 2]"))


def test_unexpected_tensor_dtype_is_rejected():
    def to_bf16(header):
        for name, info in header.items():
            if name != "__metadata__":
                info["dtype"] = "BF16"
                begin, end = info["data_offsets"]
                info["data_offsets"] = [begin // 2, end // 2]
        return header

    data = _actor_payload(edit_header=to_bf16)
    data = data[: len(data) - (len(data) - 8 - struct.unpack("<Q", data[:8])[0]) // 2]  # half the bytes now
    with pytest.raises(CheckpointError, match="dtype"):
        _load(data)


def test_non_finite_architecture_numbers_are_rejected():
    for value in ("Infinity", "-Infinity", "NaN", "1e999"):
        data = _actor_payload(edit_meta=lambda meta, v=value: json.dumps(meta).replace(
            '"hidden_dim": 16', f'"hidden_dim": {v}'))
        assert value in data.decode("latin-1")
        with pytest.raises(CheckpointError):
            _load(data)


def test_absurd_architecture_numbers_are_rejected_before_anything_is_built(no_big_networks):
    # a few hundred bytes that once made the policy node allocate gigabytes
    nets = _networks()
    data, _ = actor_to_bytes(nets.actor, "push", NetworkConfig(hidden_dim=1))
    small = _actor_payload(edit_meta=_with_network(hidden_dim=10**6))
    for payload in (small, _actor_payload(edit_meta=_with_network(num_layers=10**4)),
                    _actor_payload(edit_meta=_with_network(hidden_dim=4096))):
        with pytest.raises(CheckpointError):
            _load(payload)
    for payload in (small, data):  # without an expected architecture, the header's shapes still bound it
        with pytest.raises(CheckpointError):
            actor_from_bytes(payload, "push")
    actor_from_bytes(_actor_payload(), "push")  # the guard lets a genuine one through


def test_deeply_nested_json_is_rejected():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(CheckpointError, match="nested"):
        _load(_actor_payload(edit_meta=lambda meta: deep))
    with pytest.raises(CheckpointError, match="nested"):
        _load(_actor_payload(edit_header=lambda h: f'{{"x": {deep}}}'.encode()))
    with pytest.raises(CheckpointError, match="nested"):
        _load(_actor_payload(edit_meta=_with_network(extra=json.loads("[" * 40 + "]" * 40))))


def test_inconsistent_byte_ranges_are_rejected():
    def shift(header):
        name = next(n for n in header if n != "__metadata__")
        header[name]["data_offsets"][1] += 4
        return header

    def grow(header):
        header["actor.mean_head.bias"]["shape"] = [10**9]
        return header

    for edit_header in (shift, grow):
        with pytest.raises(CheckpointError):
            _load(_actor_payload(edit_header=edit_header))
    with pytest.raises(CheckpointError, match="tensor data"):
        _load(_actor_payload() + b"\0" * 4)


def test_fuzzed_bytes_raise_only_checkpoint_error_with_bounded_memory(no_big_networks):
    import random
    import tracemalloc

    good = _actor_payload()
    (header_len,) = struct.unpack("<Q", good[:8])
    rng = random.Random(1234)
    tokens = [b"[", b"]", b"{", b"}", b'"', b"\\", b",", b":", b"1e999", b"-1", b"NaN", b"null", b"true", b"99999999"]
    tracemalloc.start()
    try:
        for _ in range(400):
            data = bytearray(good)
            for _ in range(rng.randint(1, 6)):
                kind = rng.random()
                end = min(8 + header_len, len(data))
                if kind < 0.4 and end > 8:  # a byte of the header changed
                    data[rng.randrange(8, end)] = rng.randrange(256)
                elif kind < 0.6 and end > 8:  # a JSON token spliced into the header
                    at = rng.randrange(8, end)
                    data[at : at + 1] = rng.choice(tokens)
                elif kind < 0.75:  # a different declared header length
                    data[:8] = struct.pack("<Q", rng.choice([0, 1, header_len - 1, header_len + 7, 2**63, 2**20]))
                elif kind < 0.9:  # truncated or extended
                    data = data[: rng.randrange(len(data))] if rng.random() < 0.5 else data + bytes(rng.randrange(64))
                elif data:  # anywhere
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            data = bytes(data)
            try:
                _load(data)
            except CheckpointError:
                pass
            else:  # only a mutation that kept everything valid (whitespace, for instance) may load
                assert hashlib.sha256(data).hexdigest()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, peak
