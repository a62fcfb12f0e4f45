"""An append-only, fsync'ed log of serialized messages: the learner's durable store of every transition.

Why not a rosbag2 file written with `rosbags`: its writer completes a bag (metadata.yaml, the sqlite/mcap index)
only on close, and the learner must survive SIGKILL and a full disk with zero lost transitions. Here each record is
`<u32 length><u32 crc32><payload>` (payload = the CDR bytes rclpy serializes, the same bytes a bag would hold) and is
flushed and fsync'ed before the learner trains on it. A record cut short by a crash is detected by its length or
CRC and cut off on the next open. Records are the exact bytes of the messages, so a store can be replayed onto the
topic or written into a rosbag2 with `rosbags` for analysis tools.

The operator's success labels (LabelEpisode) go into a second log of the same format beside it, `labels.log`, one
LabelEpisode.Request record each, the latest record of an episode the one that holds. A log of their own, not a
second record type in the transition store: every reader of the store (the learner's replay, tools/replay_store.py,
the graph tests) takes each record for a Transition, and the store's format stays as it was. A label is only
accepted once its episode's last transition is durable, so replaying the transitions and then the labels restores
both. `labelled` applies the labels to the stored transitions as they are read.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sgft_core.finetune import FinetuneLearner
    from sgft_msgs.msg import Transition

MAGIC = b"SGFTLOG1"
_HEADER = struct.Struct("<II")
MAX_RECORD = 16 * 1024 * 1024


class StoreError(RuntimeError):
    """The store cannot be read (corruption before its end) or written (disk full, permissions)."""


class TransitionStore:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.records = 0
        self.truncated_bytes = 0  # bytes of a torn last record that were cut off at open
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "wb") as f:
                f.write(MAGIC)
                f.flush()
                os.fsync(f.fileno())
        good_end = self._scan()
        size = self.path.stat().st_size
        if good_end < size:
            self.truncated_bytes = size - good_end
            os.truncate(self.path, good_end)
        self._end = good_end
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the store

    def _scan(self) -> int:
        """Count the intact records; the offset after the last one (a torn tail is allowed, nothing else)."""
        end = len(MAGIC)
        for _, end in self._iter_records():  # noqa: B007 - `end` after the loop is the point of it
            self.records += 1
        return end

    def _iter_records(self) -> Iterator[tuple[bytes, int]]:
        with open(self.path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise StoreError(f"{self.path} is not a transition store (bad magic)")
            offset = len(MAGIC)
            size = os.fstat(f.fileno()).st_size
            while offset < size:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return  # torn header at the tail
                length, crc = _HEADER.unpack(header)
                if length > MAX_RECORD:
                    raise StoreError(f"{self.path}: corrupt record length {length} at byte {offset}")
                payload = f.read(length)
                end = offset + _HEADER.size + length
                if len(payload) < length:
                    return  # the last record was cut short by a crash
                if zlib.crc32(payload) != crc:
                    if end == size:
                        return  # a torn last record
                    raise StoreError(f"{self.path}: corrupt record at byte {offset} with data after it")
                yield payload, end
                offset = end

    def append(self, payload: bytes) -> None:
        """Write one record and make it durable (fsync) before returning; raises StoreError on any I/O failure."""
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        try:
            view = memoryview(record)
            while view:  # a short write is retried; the retry raises the real cause (ENOSPC, EIO)
                written = self._file.write(view)
                if not written:
                    raise OSError(f"write returned {written}")
                view = view[written:]
            os.fsync(self._file.fileno())
        except OSError as err:
            # Leave no torn record behind: the next append must start on a record boundary.
            try:
                os.truncate(self.path, self._end)
            except OSError:
                pass
            raise StoreError(f"cannot write {self.path}: {err}") from err
        self._end += len(record)
        self.records += 1

    def __iter__(self) -> Iterator[bytes]:
        for payload, _ in self._iter_records():
            yield payload

    def close(self) -> None:
        self._file.close()


def feed_transition(learner: FinetuneLearner, msg: Transition) -> int:
    """One (validated or stored) Transition message into the learner, raw reward and intervention flag and all: how
    the learner node and an offline replay of its store feed it. Returns its row (FinetuneLearner.add_transition)."""
    return learner.add_transition(np.asarray(msg.obs, np.float32), np.asarray(msg.action, np.float32),
                                  float(msg.reward), np.asarray(msg.next_obs, np.float32), bool(msg.terminal),
                                  bool(msg.truncated), intervention=bool(msg.intervention))


def read_labels(store: TransitionStore) -> dict[int, bool]:
    """Episode id → the operator's success label, from a label log (its latest record per episode)."""
    from rclpy.serialization import deserialize_message

    from sgft_msgs.srv import LabelEpisode

    labels = {}
    for payload in store:
        request = deserialize_message(payload, LabelEpisode.Request)
        labels[int(request.episode_id)] = bool(request.success)
    return labels


def labelled(messages: Iterable[Transition], labels: dict[int, bool]) -> Iterator[Transition]:
    """The stored transitions with the operator's labels over the perceived success: an episode labelled failed has
    no successful step, and one labelled successful ends in success (its earlier steps keep what was perceived, which
    a label of the outcome says nothing about). Takes a store's messages in order, episode by episode or
    interleaved; the last transition of an episode is the one that ends it (terminal or truncated)."""
    for msg in messages:
        label = labels.get(int(msg.episode_id))
        if label is not None and (not label or msg.terminal or msg.truncated):
            msg.success = label
        yield msg
