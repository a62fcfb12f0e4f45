"""Export a learner's transition store to a rosbag2 (MCAP or sqlite3) for analysis tools (Foxglove, rosbags, pandas).

    source setup.bash
    python tools/export_store.py runs/push_demo/learner --out runs/push_demo_bag
    python tools/export_store.py runs/push_demo/learner/transitions.log --out runs/push_demo_bag --storage sqlite3

Each stored record becomes one message on /sgft/transitions (sgft_msgs/msg/Transition) at its header stamp; the
records are the CDR bytes the policy published, so they are written as they are. The store stays the learner's source
of truth and is only read here, never opened for writing: TransitionStore's constructor cuts a torn last record off,
and with the learner running that "torn" record may be the one it is writing at that moment.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

STORE_NAME = "transitions.log"  # the learner node's store inside its run_dir
TOPIC = "/sgft/transitions"  # sgft_interfaces.Topics.TRANSITIONS
MSGTYPE = "sgft_msgs/msg/Transition"


def store_path(source: Path) -> Path:
    """The store file of a run_dir, or the store file itself."""
    path = source / STORE_NAME if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"no transition store at {path}")
    return path


def header_stamp_ns(payload: bytes) -> int:
    """Header stamp (ns) of a stored Transition's CDR bytes (header first; encapsulation in bytes 0-3)."""
    order = "<" if payload[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", payload, 4)
    return max(0, sec * 1_000_000_000 + nanosec)


def export_store(source: str | Path, out: str | Path, storage: str = "mcap") -> int:
    """Write every transition of the store at `source` (run_dir or transitions.log) into a new rosbag2 directory
    `out`; returns the number of messages written. `out` must not exist (rosbags never overwrites a bag)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from sgft_bringup.recorder import sgft_typestore
    from sgft_learner.transition_store import TransitionStore

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage {storage!r}: choose from {list(plugins)}")
    path = store_path(Path(source))
    # TransitionStore's reading side only (its iteration reads `path` and stops before a torn tail)
    reader = TransitionStore.__new__(TransitionStore)
    reader.path = path
    count = 0
    with Writer(Path(out), version=Writer.VERSION_LATEST, storage_plugin=plugins[storage]) as writer:
        connection = writer.add_connection(TOPIC, MSGTYPE, typestore=sgft_typestore())
        for payload in reader:
            writer.write(connection, header_stamp_ns(payload), payload)
            count += 1
        writer.set_custom_data("sgft.source", str(path))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a learner's run_dir or its transitions.log")
    parser.add_argument("--out", type=Path, required=True, help="rosbag2 directory to create (must not exist)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    args = parser.parse_args()
    from rosbags.rosbag2 import WriterError

    from sgft_learner.transition_store import StoreError

    try:
        count = export_store(args.source, args.out, args.storage)
    except (OSError, ValueError, StoreError, WriterError) as err:
        sys.exit(f"export_store: {err}")
    print(f"{count} transitions from {store_path(args.source)} -> {args.out} ({args.storage})")


if __name__ == "__main__":
    main()
