"""tools/export_store.py: a store written by TransitionStore becomes a rosbag2 that rosbags reads back message for
message, at the header stamps, without the store being touched."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.highlevel import AnyReader

from sgft_learner.transition_store import TransitionStore
from sgft_msgs.msg import Transition

TOOL = Path(__file__).resolve().parents[2] / "tools" / "export_store.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("export_store", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transitions(n: int) -> list[Transition]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        msg = Transition(task="push", episode_id=i // 5, step=i % 5, obs=rng.normal(size=4).astype(np.float32).tolist(),
                         action=rng.uniform(-1, 1, 2).astype(np.float32).tolist(), reward=float(-i),
                         next_obs=rng.normal(size=4).astype(np.float32).tolist(), truncated=i % 5 == 4,
                         policy_version=i // 5, intervention=i == 3)
        msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 250_000_000
        msg.header.frame_id = "fr3_link0"
        out.append(msg)
    return out


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    store = TransitionStore(tmp_path / "run" / "transitions.log")
    for msg in transitions(12):
        store.append(serialize_message(msg))
    store.close()
    return tmp_path / "run"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_export_round_trip(run_dir: Path, tmp_path: Path, storage: str) -> None:
    tool = load_tool()
    out = tmp_path / f"bag_{storage}"
    assert tool.export_store(run_dir, out, storage) == 12
    expected = transitions(12)
    with AnyReader([out]) as reader:
        (connection,) = reader.connections
        assert (connection.topic, connection.msgtype) == ("/sgft/transitions", "sgft_msgs/msg/Transition")
        rows = list(reader.messages())
    assert len(rows) == 12
    for (_, timestamp, raw), msg in zip(rows, expected, strict=True):
        assert timestamp == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        got = deserialize_message(bytes(raw), Transition)  # the exact bytes, as rclpy reads them
        assert got == msg
    with AnyReader([out]) as reader:  # and rosbags decodes them from the bag's own definition
        decoded = reader.deserialize(rows[3][2], rows[3][0].msgtype)
    assert decoded.intervention and decoded.step == 3 and np.allclose(decoded.obs, expected[3].obs)


def test_export_leaves_store_alone(run_dir: Path, tmp_path: Path) -> None:
    """A torn tail (the learner writing right now) is not exported and not cut off: the store is only read."""
    tool = load_tool()
    log = run_dir / "transitions.log"
    with open(log, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02")  # a record header with half its payload missing
    before = log.read_bytes()
    assert tool.export_store(log, tmp_path / "bag", "mcap") == 12
    assert log.read_bytes() == before


def test_export_refusals(run_dir: Path, tmp_path: Path) -> None:
    tool = load_tool()
    with pytest.raises(FileNotFoundError):
        tool.export_store(tmp_path / "nowhere", tmp_path / "bag")
    with pytest.raises(ValueError, match="storage"):
        tool.export_store(run_dir, tmp_path / "bag", "bag1")
