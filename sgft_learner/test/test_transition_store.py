import os

import pytest

from sgft_learner.transition_store import MAGIC, StoreError, TransitionStore, labelled, read_labels

pytestmark = pytest.mark.faults


def test_round_trip_and_reopen(tmp_path):
    store = TransitionStore(tmp_path / "t.log")
    payloads = [bytes([i]) * (i + 1) for i in range(50)]
    for p in payloads:
        store.append(p)
    store.close()
    again = TransitionStore(tmp_path / "t.log")
    assert again.records == 50 and list(again) == payloads
    again.append(b"more")
    assert list(again)[-1] == b"more"


def test_torn_tail_is_cut_off_and_appending_continues(tmp_path):
    path = tmp_path / "t.log"
    store = TransitionStore(path)
    store.append(b"a" * 100)
    store.append(b"b" * 100)
    store.close()
    os.truncate(path, path.stat().st_size - 30)  # a crash in the middle of the second write
    store = TransitionStore(path)
    assert store.records == 1 and store.truncated_bytes == 8 + 70
    store.append(b"c" * 10)
    assert list(store) == [b"a" * 100, b"c" * 10]


def test_corruption_before_the_end_is_an_error(tmp_path):
    path = tmp_path / "t.log"
    store = TransitionStore(path)
    store.append(b"a" * 100)
    store.append(b"b" * 100)
    store.close()
    data = bytearray(path.read_bytes())
    data[len(MAGIC) + 8 + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        TransitionStore(path)
    path.write_bytes(b"not a store")
    with pytest.raises(StoreError, match="magic"):
        TransitionStore(path)


def test_write_failure_raises_and_leaves_no_torn_record(tmp_path):
    store = TransitionStore(tmp_path / "t.log")
    store.append(b"ok")
    store._file = open("/dev/full", "ab", buffering=0)  # noqa: SIM115 - writes fail with ENOSPC, a full disk
    with pytest.raises(StoreError, match="No space left"):
        store.append(b"lost?")
    assert list(TransitionStore(tmp_path / "t.log")) == [b"ok"]


def test_labels_log_latest_label_wins_and_overrides_success(tmp_path):
    from rclpy.serialization import serialize_message

    from sgft_msgs.msg import Transition
    from sgft_msgs.srv import LabelEpisode

    log = TransitionStore(tmp_path / "labels.log")
    for episode_id, success in ((3, True), (4, False), (3, False)):
        log.append(serialize_message(LabelEpisode.Request(episode_id=episode_id, success=success)))
    assert read_labels(log) == {3: False, 4: False}
    steps = [Transition(episode_id=e, step=s, success=s == 1, truncated=s == 2) for e in (3, 4, 5) for s in range(3)]
    flags = [(m.episode_id, m.success) for m in labelled(steps, {3: False, 4: True})]
    # failed: no successful step; successful: ends in success, earlier steps as perceived; unlabelled: as perceived
    assert flags == [(3, False), (3, False), (3, False), (4, False), (4, True), (4, True),
                     (5, False), (5, True), (5, False)]
