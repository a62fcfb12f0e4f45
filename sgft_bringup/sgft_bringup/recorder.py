"""Record each episode as one MCAP rosbag2 for inspection (rviz, Foxglove, `rosbags`): robot state, the object
detection, the policy's commands, transitions, episode events and a few camera images.

A bag `<output_dir>/episode_<id>_<stamp>/` opens at the policy's STARTED EpisodeEvent and closes at its FINISHED or
ABORTED. Messages are taken raw (the CDR bytes the publisher sent, so a 1.2 MB image is never re-serialized) and
written as they arrive, each at its header stamp; robot state (up to 1 kHz) is thinned to `state_rate_hz` by stamp
and images to one in `image_every_n`. A message that does not decode or fails its checks is skipped and counted.

Only episodes that start after the recorder are recorded: events and transitions are subscribed volatile, so the
policy's transient-local history of earlier episodes is not replayed into new bags.

Crash behaviour: rosbags' MCAP writer keeps the open chunk in memory and writes the summary, the footer and
metadata.yaml only on close, so a bag cut off by SIGKILL cannot be opened by rosbags as it is. The recorder writes
the open chunk out at the first message after each `flush_period_s`, so the file holds all but the last moments;
`salvage` (run on start for bags left unfinished in output_dir) rewrites those chunks into a complete bag. The
learner's transition store, not this recording, is the source of truth of the data.
"""

from __future__ import annotations

import math
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from sgft_core.tasks import TASKS, get_task
from sgft_interfaces import Topics
from sgft_interfaces.node_main import declared, run_node
from sgft_interfaces.share import installed_share
from sgft_interfaces.stamps import stamp_problem
from sgft_learner.validation import transition_problem
from sgft_msgs.msg import EpisodeEvent, ObjectDetection, Transition

SIM_COLOR_IMAGE = "/camera1/camera1/color/image_raw"  # sgft_sim.camera.color_image_topic("camera1")
MAX_STATE_RATE_HZ = 1000.0
MAX_IMAGE_BYTES = 64 * 1024 * 1024
# bytes per pixel of the encodings an image may carry (sensor_msgs/image_encodings.hpp)
ENCODING_BYTES = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "16UC1": 2, "32FC1": 4,
                  "8UC1": 1, "8UC3": 3}
END_EVENTS = (EpisodeEvent.FINISHED, EpisodeEvent.ABORTED)
EVENT_NAMES = {EpisodeEvent.STARTED: "STARTED", EpisodeEvent.FINISHED: "FINISHED", EpisodeEvent.ABORTED: "ABORTED",
               EpisodeEvent.HOLDING: "HOLDING", EpisodeEvent.RESUMED: "RESUMED"}

# name -> (default, description); the default's type is the parameter's type.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "output_dir": ("~/sgft_recordings", "directory that receives one episode_<id>_<stamp>/ MCAP bag per episode"),
    "robot_pose_topic": (Topics.ROBOT_POSE, "end-effector pose topic (PoseStamped)"),
    "joint_state_topic": (Topics.MEASURED_JOINT_STATES, "measured joint state topic (JointState)"),
    "cartesian_target_topic": (Topics.CARTESIAN_TARGET, "the policy's Cartesian target topic (PoseStamped)"),
    "joint_trajectory_topic": (Topics.JOINT_TRAJECTORY, "the policy's joint trajectory topic (JointTrajectory)"),
    "state_rate_hz": (50.0, "robot state recorded at most this often (by header stamp), so a 1 kHz state stays small"),
    "image_topics": ([SIM_COLOR_IMAGE], "color image topics (sensor_msgs/Image) to record; [''] records none"),
    "image_every_n": (5, "record one image in this many of each image topic"),
    "flush_period_s": (1.0, "the bag's pending data goes to disk at the first message after this many wall seconds "
                            "(what a killed recorder leaves for salvage)"),
    "salvage_on_start": (True, "rewrite bags a killed recorder left in output_dir into complete ones on start"),
}


@dataclass(frozen=True)
class RecorderParameters:
    """The validated parameters; ValueError says which one is wrong."""

    output_dir: Path
    robot_pose_topic: str
    joint_state_topic: str
    cartesian_target_topic: str
    joint_trajectory_topic: str
    state_period_ns: int
    image_topics: tuple[str, ...]
    image_every_n: int
    flush_period_s: float
    salvage_on_start: bool

    @classmethod
    def from_values(cls, p: Mapping[str, Any]) -> RecorderParameters:
        if not 0.0 < float(p["state_rate_hz"]) <= MAX_STATE_RATE_HZ:
            raise ValueError(f"state_rate_hz={p['state_rate_hz']} outside (0, {MAX_STATE_RATE_HZ:g}]")
        if int(p["image_every_n"]) < 1:
            raise ValueError(f"image_every_n={p['image_every_n']} must be at least 1")
        if not 0.0 < float(p["flush_period_s"]) <= 60.0:
            raise ValueError(f"flush_period_s={p['flush_period_s']} outside (0, 60]")
        for name in ("output_dir", "robot_pose_topic", "joint_state_topic", "cartesian_target_topic",
                     "joint_trajectory_topic"):
            if not str(p[name]).strip():
                raise ValueError(f"{name} must not be empty")
        images = tuple(t for t in p["image_topics"] if t.strip())
        topics = [p["robot_pose_topic"], p["joint_state_topic"], p["cartesian_target_topic"],
                  p["joint_trajectory_topic"], *images]
        if len(set(topics)) != len(topics):
            raise ValueError(f"a topic is named twice among {topics}")
        return cls(output_dir=Path(str(p["output_dir"])).expanduser(), robot_pose_topic=p["robot_pose_topic"],
                   joint_state_topic=p["joint_state_topic"], cartesian_target_topic=p["cartesian_target_topic"],
                   joint_trajectory_topic=p["joint_trajectory_topic"],
                   state_period_ns=round(1e9 / float(p["state_rate_hz"])), image_topics=images,
                   image_every_n=int(p["image_every_n"]), flush_period_s=float(p["flush_period_s"]),
                   salvage_on_start=bool(p["salvage_on_start"]))


# ------------------------------------------------------------------------------------------------ typestore
def msg_dir() -> Path:
    """sgft_msgs' .msg files: installed share, else the source checkout."""
    share = installed_share("sgft_msgs")
    if share is not None and (share / "msg").is_dir():
        return share / "msg"
    return Path(__file__).resolve().parents[2] / "sgft_msgs" / "msg"


def sgft_typestore() -> Typestore:
    """ROS 2 Kilted's standard types plus sgft_msgs from their .msg definitions: what a bag's connections need for
    their definitions and type hashes (the same RIHS01 hashes rosidl gives them)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"sgft_msgs/msg/{path.stem}"))
    if not types:
        raise ValueError(f"no sgft_msgs .msg definitions in {msg_dir()}")
    store.register(types)
    return store


def ros_type_name(cls: type) -> str:
    """'geometry_msgs/msg/PoseStamped' of an rclpy message class."""
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def cdr_stamp_ns(raw: bytes) -> int | None:
    """Header stamp (ns) of a serialized message whose first field is a std_msgs/Header, read from the CDR bytes
    without deserializing (a 1 kHz state is thinned before it costs a deserialization); None when unreadable."""
    if len(raw) < 12 or raw[0] != 0:
        return None
    order = "<" if raw[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", raw, 4)
    if sec < 0 or nanosec >= 1_000_000_000:
        return None
    return sec * 1_000_000_000 + nanosec


# ------------------------------------------------------------------------------------------------ validation
def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def pose_problem(msg: PoseStamped) -> str:
    p, q = msg.pose.position, msg.pose.orientation
    return "" if _finite(p.x, p.y, p.z, q.x, q.y, q.z, q.w) else "non-finite pose"


def joint_state_problem(msg: JointState) -> str:
    n = len(msg.position)
    if len(msg.name) != n or len(msg.velocity) not in (0, n) or len(msg.effort) not in (0, n):
        return "name/position/velocity/effort lengths differ"
    return "" if _finite(*msg.position, *msg.velocity, *msg.effort) else "non-finite joint state"


def trajectory_problem(msg: JointTrajectory) -> str:
    for point in msg.points:
        if len(point.positions) != len(msg.joint_names):
            return "point length differs from joint_names"
        if not _finite(*point.positions, *point.velocities):
            return "non-finite trajectory point"
    return ""


def detection_problem(msg: ObjectDetection) -> str:
    p = msg.position
    if not _finite(p.x, p.y, p.z, msg.confidence):
        return "non-finite detection"
    return ""


def image_problem(msg: Image) -> str:
    size = len(msg.data)
    if size > MAX_IMAGE_BYTES:
        return f"image of {size} bytes"
    if msg.step * msg.height != size:
        return f"data is {size} bytes, step x height is {msg.step * msg.height}"
    bpp = ENCODING_BYTES.get(msg.encoding)
    if bpp is not None and msg.step < msg.width * bpp:
        return f"step {msg.step} < width {msg.width} x {bpp} bytes ({msg.encoding})"
    return ""


def event_problem(msg: EpisodeEvent) -> str:
    return "" if msg.event in EVENT_NAMES else f"unknown event {msg.event}"


def recorded_transition_problem(msg: Transition) -> str:
    """The learner's checks (sgft_learner.validation) against the task the transition names."""
    if msg.task not in TASKS:
        return f"unknown task {msg.task!r}"
    kind, detail = transition_problem(msg, get_task(msg.task))
    return f"{kind}: {detail}" if kind else ""


@dataclass(frozen=True)
class Stream:
    """One recorded topic: its message class, its checks, and how it is thinned."""

    topic: str
    cls: type
    check: Callable[[Any], str]
    kind: str  # "state", "image", "transition", "event" or "other"


# ------------------------------------------------------------------------------------------------ the bag
class EpisodeBag:
    """One episode's MCAP bag, written as messages arrive; `close` completes it (summary, metadata.yaml)."""

    def __init__(self, path: Path, typestore: Typestore, episode_id: int, flush_period_s: float) -> None:
        self.path, self.episode_id = path, episode_id
        self.typestore, self.flush_period_s = typestore, flush_period_s
        self.writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.connections: dict[str, Any] = {}
        self.counts: Counter[str] = Counter()
        self.last_flush = time.monotonic()

    def write(self, stream: Stream, stamp_ns: int, raw: bytes) -> None:
        connection = self.connections.get(stream.topic)
        if connection is None:
            connection = self.connections[stream.topic] = self.writer.add_connection(
                stream.topic, ros_type_name(stream.cls), typestore=self.typestore)
        self.writer.write(connection, stamp_ns, raw)
        self.counts[stream.topic] += 1
        if time.monotonic() - self.last_flush >= self.flush_period_s:
            self.flush()

    def flush(self) -> None:
        """Write the pending chunk to the file. rosbags' MCAP storage otherwise holds up to 1 MiB of messages in
        memory (lost to a SIGKILL); its chunk API is used where this rosbags version has it."""
        self.last_flush = time.monotonic()
        storage = self.writer.storage
        chunk = getattr(storage, "chunk", None)
        if chunk is None or not hasattr(storage, "close_chunk") or not chunk.bio.tell():
            return
        storage.close_chunk()
        storage.bio.flush()

    def close(self, custom_data: Mapping[str, str]) -> None:
        for key, value in custom_data.items():
            self.writer.set_custom_data(key, value)
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


# ------------------------------------------------------------------------------------------------ salvage
_MAGIC = b"\x89MCAP0\r\n"


def _string(bio: BytesIO) -> str:
    (n,) = struct.unpack("<I", bio.read(4))
    return bio.read(n).decode()


def _mcap_records(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, content) of the complete records after the header; a record cut off by a crash ends the list."""
    records, offset = [], len(_MAGIC)
    while offset + 9 <= len(data):
        op, length = data[offset], struct.unpack_from("<Q", data, offset + 1)[0]
        if offset + 9 + length > len(data):
            break
        records.append((op, data[offset + 9:offset + 9 + length]))
        offset += 9 + length
    return records


def salvage(bag_dir: Path, typestore: Typestore) -> int:
    """Rewrite the complete chunks of an unfinished MCAP bag (no metadata.yaml: its recorder was killed) into a
    complete bag in the same place; the unfinished file is kept beside it as `<name>.mcap.unfinished`. Returns the
    number of messages recovered. Only uncompressed chunks (as the recorder writes them) are read."""
    (mcap,) = bag_dir.glob("*.mcap")
    data = mcap.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{mcap} is not an MCAP file")
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    messages: list[tuple[int, int, bytes]] = []
    for op, content in _mcap_records(data):
        if op != 0x06:  # chunk; the header, message indexes and so on carry nothing to recover
            continue
        bio = BytesIO(content)
        bio.seek(8 * 3 + 4)
        compression = _string(bio)
        (size,) = struct.unpack("<Q", bio.read(8))
        if compression:
            continue
        for inner_op, inner in _mcap_records(_MAGIC + bio.read(size)):
            rec = BytesIO(inner)
            if inner_op == 0x03:
                (schema_id,) = struct.unpack("<H", rec.read(2))
                schemas[schema_id] = _string(rec)
            elif inner_op == 0x04:
                channel_id, schema_id = struct.unpack("<HH", rec.read(4))
                channels[channel_id] = (_string(rec), schemas.get(schema_id, ""))
            elif inner_op == 0x05:
                channel_id, _, log_time, _ = struct.unpack("<HIQQ", rec.read(22))
                messages.append((channel_id, log_time, inner[22:]))
    unfinished = mcap.with_name(mcap.name + ".unfinished")
    staging = bag_dir.with_name(bag_dir.name + ".salvaging")
    written = 0
    with Writer(staging, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {cid: writer.add_connection(topic, msgtype, typestore=typestore)
                       for cid, (topic, msgtype) in channels.items() if msgtype in typestore.fielddefs}
        for channel_id, log_time, raw in messages:
            if channel_id in connections:
                writer.write(connections[channel_id], log_time, raw)
                written += 1
        writer.set_custom_data("sgft.salvaged", f"recorder stopped before the episode ended; {written} messages "
                                                "recovered from its complete chunks")
    mcap.rename(unfinished)
    for path in staging.iterdir():  # the staging bag's files are named after it: name them after the episode's
        target = bag_dir / path.name.replace(staging.name, bag_dir.name)
        if path.name == "metadata.yaml":
            text = path.read_text(encoding="utf-8").replace(staging.name, bag_dir.name)
            target.write_text(text, encoding="utf-8")
            path.unlink()
        else:
            path.rename(target)
    staging.rmdir()
    return written


def unfinished_bags(output_dir: Path) -> list[Path]:
    """Episode bags in output_dir without metadata.yaml (their recorder was killed) that still hold their MCAP."""
    return sorted(d for d in output_dir.glob("episode_*") if d.is_dir() and not (d / "metadata.yaml").exists()
                  and any(d.glob("*.mcap")))


# ------------------------------------------------------------------------------------------------ the node
class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("sgft_recorder")
        p = self.params = RecorderParameters.from_values(
            {name: declared(self, name, default, doc) for name, (default, doc) in PARAMETERS.items()})
        self.typestore = sgft_typestore()
        p.output_dir.mkdir(parents=True, exist_ok=True)
        if p.salvage_on_start:
            self._salvage_leftovers()
        self.bag: EpisodeBag | None = None
        self.episode_task = ""
        self.skipped: Counter[str] = Counter()  # "topic: reason" -> malformed messages skipped
        self.next_state_ns: dict[str, int] = {}
        self.image_seen: Counter[str] = Counter()
        self.bags_written = 0

        state_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
        # volatile: the policy's transient-local history of earlier episodes must not open bags here
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        commands = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        images = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
        streams = [
            (Stream(p.robot_pose_topic, PoseStamped, pose_problem, "state"), state_qos),
            (Stream(p.joint_state_topic, JointState, joint_state_problem, "state"), state_qos),
            # best effort matches perception's publisher whatever its reliability
            (Stream(Topics.OBJECT_DETECTION, ObjectDetection, detection_problem, "other"), state_qos),
            (Stream(p.cartesian_target_topic, PoseStamped, pose_problem, "other"), commands),
            (Stream(p.joint_trajectory_topic, JointTrajectory, trajectory_problem, "other"), commands),
            (Stream(Topics.TRANSITIONS, Transition, recorded_transition_problem, "transition"), reliable),
            (Stream(Topics.EPISODE_EVENTS, EpisodeEvent, event_problem, "event"), reliable),
            *[(Stream(topic, Image, image_problem, "image"), images) for topic in p.image_topics],
        ]
        for stream, qos in streams:
            self.create_subscription(stream.cls, stream.topic, lambda raw, s=stream: self._on_message(s, raw), qos,
                                     raw=True)
        self.get_logger().info(f"recording episodes to {p.output_dir} (state at {1e9 / p.state_period_ns:g} Hz, "
                               f"images {list(p.image_topics)} one in {p.image_every_n})")

    def _salvage_leftovers(self) -> None:
        for bag_dir in unfinished_bags(self.params.output_dir):
            try:
                count = salvage(bag_dir, self.typestore)
                self.get_logger().warning(f"salvaged {count} messages of {bag_dir} (its recorder was stopped "
                                          "before the episode ended)")
            except Exception as err:  # noqa: BLE001 - a damaged leftover must not stop the recording
                self.get_logger().error(f"cannot salvage {bag_dir}: {err}")

    # ---------------------------------------------------------------------------------------------- messages
    def _skip(self, stream: Stream, reason: str) -> None:
        key = f"{stream.topic}: {reason}"
        self.skipped[key] += 1
        total = sum(self.skipped.values())
        self.get_logger().warning(f"skipping a malformed message on {key} ({total} skipped so far)",
                                  throttle_duration_sec=10.0)

    def _on_message(self, stream: Stream, raw: bytes) -> None:
        if self.bag is None and stream.kind != "event":
            return
        stamp = cdr_stamp_ns(raw)
        if stamp is None:
            self._skip(stream, "unreadable header stamp")
            return
        if stream.kind == "state":  # thinned before the cost of deserializing
            due = self.next_state_ns.get(stream.topic, 0)
            if due - self.params.state_period_ns < stamp < due:
                return
            # a stamp behind the last kept one (a restarted clock) starts the count again
            self.next_state_ns[stream.topic] = stamp + self.params.state_period_ns * 99 // 100
        elif stream.kind == "image":
            self.image_seen[stream.topic] += 1
            if (self.image_seen[stream.topic] - 1) % self.params.image_every_n:
                return
        try:
            msg = deserialize_message(raw, stream.cls)
        except Exception as err:  # noqa: BLE001 - any peer can publish any bytes
            self._skip(stream, f"does not decode ({type(err).__name__})")
            return
        problem = stream.check(msg) or stamp_problem(msg.header.stamp, 0, 0.0)
        if problem:
            self._skip(stream, problem)
            return
        if stream.kind == "event":
            self._on_event(stream, msg, stamp, raw)
            return
        if stream.kind == "transition" and msg.episode_id != self.bag.episode_id:
            return  # another episode's (a second policy, or a late one of the last episode)
        self._write(stream, stamp, raw)

    def _on_event(self, stream: Stream, msg: EpisodeEvent, stamp: int, raw: bytes) -> None:
        if msg.event == EpisodeEvent.STARTED:
            if self.bag is not None:
                if self.bag.episode_id == msg.episode_id:
                    return  # a repeated STARTED of the episode being recorded
                self._close(f"superseded: episode {msg.episode_id} started before this one ended")
            self._open(msg)
        if self.bag is None or self.bag.episode_id != msg.episode_id:
            return
        self._write(stream, stamp, raw)
        if msg.event in END_EVENTS:
            self._close(EVENT_NAMES[msg.event], msg)

    def _write(self, stream: Stream, stamp: int, raw: bytes) -> None:
        try:
            self.bag.write(stream, stamp, raw)
        except Exception as err:  # noqa: BLE001 - a full disk ends this bag, not the node
            self.get_logger().error(f"cannot write {self.bag.path}: {err}; this episode's bag is abandoned")
            try:
                self.bag.abort()
            except Exception:  # noqa: BLE001 - already failing; the error above says so
                pass
            self.bag = None

    def _open(self, msg: EpisodeEvent) -> None:
        name = f"episode_{msg.episode_id}_{datetime.now().strftime('%Y%m%dT%H%M%S')}"
        path, n = self.params.output_dir / name, 1
        while path.exists():
            n += 1
            path = self.params.output_dir / f"{name}_{n}"
        try:
            self.bag = EpisodeBag(path, self.typestore, msg.episode_id, self.params.flush_period_s)
        except Exception as err:  # noqa: BLE001 - an unwritable output_dir skips this episode, not the rest
            self.get_logger().error(f"cannot open a bag at {path}: {err}; episode {msg.episode_id} is not recorded")
            return
        self.episode_task = msg.task
        self.next_state_ns.clear()
        self.image_seen.clear()
        self.skipped.clear()
        self.get_logger().info(f"recording episode {msg.episode_id} ({msg.task}) to {path}")

    def _close(self, end: str, msg: EpisodeEvent | None = None) -> None:
        bag, self.bag = self.bag, None
        data = {"sgft.episode_id": str(bag.episode_id), "sgft.task": self.episode_task, "sgft.end": end,
                "sgft.skipped_malformed": str(sum(self.skipped.values()))}
        if msg is not None:
            data |= {"sgft.steps": str(msg.steps), "sgft.success": str(bool(msg.success)).lower(),
                     "sgft.episode_return": f"{msg.episode_return:.6g}"}
        try:
            bag.close(data)
        except Exception as err:  # noqa: BLE001 - a full disk loses this bag, not the node
            self.get_logger().error(f"cannot complete {bag.path}: {err}")
            return
        self.bags_written += 1
        skipped = f", skipped {dict(self.skipped)}" if self.skipped else ""
        self.get_logger().info(f"episode {bag.episode_id} recorded ({end}): {dict(bag.counts)}{skipped}")

    def destroy_node(self) -> None:
        if getattr(self, "bag", None) is not None:  # stopped mid-episode: a complete bag of what came so far
            self._close("recorder stopped")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, "sgft_recorder", refuse=(ValueError,), args=args)


if __name__ == "__main__":
    sys.exit(main())
