"""Generated malformed and adversarial messages for every message type the SGFT graph subscribes to (the fuzz suite,
test/test_fuzz.py, sends them to running nodes over DDS).

`Fuzzer(seed)` is deterministic for a seed: the same calls in the same order give the same messages. Each generator
returns `(message, label)`; the label names the variant and the adversarial fields, so a node's crash can be traced
back to what was sent just before it. Values drawn:

- numbers: NaN, ±inf, ±1e30, ±float32 max, 0, −0, denormals, plausible values; integers at 0, 1, −1 (signed), the
  type's min/max (2**32−1 for uint32, 2**64−1 for uint64, −2**31 for int32), random ones
- header stamps: negative, zero, far future (2**31−1 s), nanosec ≥ 1e9 (up to 2**32−1), stale, fresh and slightly
  future ones when `now_ns` (the graph's current time) is given; frames: right, wrong, empty, odd unicode
- strings: empty, very long, odd unicode (RTL override, zero-width joiner, combining marks, emoji, an embedded NUL,
  which the ROS string type cuts off), mismatched task/joint names
- arrays: empty, right length, one short/long, huge (within the byte cap), non-finite entries
- structure: PointCloud2 with inconsistent fields/point_step/row_step/data lengths, array fields (count > 1), rgb
  and rgba both, big-endian flag, unknown datatypes, duplicated/missing x/y/z; JointTrajectory with no points,
  mismatched names/positions, negative times; JointState with mismatched names/positions/velocities;
  PolicyUpdate with random bytes (with a wrong and with a valid sha256 of those malformed bytes), a fake safetensors
  header (huge header length, deep JSON), huge/zero versions, mismatched architecture/task strings, and mutations of
  a genuine update when a template is given (truncated, bit-flipped, a NaN weight, each re-hashed so only the
  content checks can refuse it); Transition with wrong lengths, huge/non-finite values, observations outside the
  task's bounds, actions outside [−1, 1], duplicate and out-of-order (episode, step), absurd ids and versions.

Every message is capped at `max_bytes` (default 2 MB) of payload, so the fuzzer itself stays light.

Robot poses are never *plausible* spoofs: each generated PoseStamped has at least one defect a receiver can detect
(non-finite or out-of-range values, a wrong frame, or a bad/stale/future stamp; `pose_defects` lists them). A pose
with none of those (fresh, right frame, inside the workspace) cannot be told apart from the robot's own by any
validation, only by transport security (tools/dds_security_check.py); sending such poses would make the policy's
commands follow them, which is what a genuine pose does too, and no per-message check could refuse it.

Out of scope: /clock. A second clock publisher makes time itself the adversary (a sim-time jump or stall is covered
by the policy node's own tests); nothing here publishes on it.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState, PointCloud2, PointField
from std_msgs.msg import Bool
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sgft_msgs.msg import EpisodeEvent, ObjectDetection, PolicyUpdate, Transition
from sgft_msgs.srv import ResetEpisode, StartEpisode, StopEpisode

DEFAULT_MAX_BYTES = 2_000_000
BASE_FRAME = "fr3_link0"
JOINT_NAMES = tuple(f"fr3_joint{i}" for i in range(1, 8))
FLOAT32_MAX = float(np.finfo(np.float32).max)
ODD_STRINGS = ("", "\u202eevil", "fr3\u200dlink0", "e\u0301\u0301\u0301", "\U0001F916\U0001F4A5", "a\x00b",
               "../../etc/passwd", "%s%n{0}", "\ufeff", "fr3_link0 ", "FR3_LINK0", "\u0000")
WRONG_TASKS = ("", "hammer", "insert", "PUSH", "push ", "push\x00", "\u202epush", "x" * 300)
WRONG_FRAMES = ("", "world", "base", "camera1_depth_optical_frame", "fr3_link0/", "\u202efr3_link0", "fr3_link8")
UINT_MAX = {8: 255, 32: 2**32 - 1, 64: 2**64 - 1}
INT_RANGE = {32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}
PF = PointField  # datatypes: INT8=1 UINT8=2 INT16=3 UINT16=4 INT32=5 UINT32=6 FLOAT32=7 FLOAT64=8


def stamp_seconds(stamp: Time) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def pose_defects(msg: PoseStamped, now_ns: int | None, max_age_s: float = 0.6,
                 low: tuple[float, ...] = (0.0, -0.55), high: tuple[float, ...] = (0.85, 0.55)) -> list[str]:
    """What makes a robot pose detectably invalid (empty: a plausible pose). low/high: the task's ee-xy observation
    bounds (push's by default)."""
    defects = []
    p, q = msg.pose.position, msg.pose.orientation
    values = [p.x, p.y, p.z, q.x, q.y, q.z, q.w]
    if not all(math.isfinite(v) for v in values):
        defects.append("non-finite")
    elif not (low[0] <= p.x <= high[0] and low[1] <= p.y <= high[1]) or abs(p.z) > 2.0:
        defects.append("out of range")
    if msg.header.frame_id != BASE_FRAME:
        defects.append("frame")
    s = msg.header.stamp
    if s.sec <= 0 or s.nanosec >= 1_000_000_000:
        defects.append("stamp")
    elif now_ns is not None and not (now_ns - max_age_s * 1e9 <= s.sec * 10**9 + s.nanosec <= now_ns + 1e6):
        defects.append("stale or future stamp")
    elif now_ns is None:
        defects.append("stamp unknown freshness")  # without a clock the caller cannot make it fresh
    return defects


class Fuzzer:
    """Seeded generator of adversarial messages and service requests; see the module docstring."""

    def __init__(self, seed: int, max_bytes: int = DEFAULT_MAX_BYTES, obs_dim: int = 4, action_dim: int = 2,
                 task: str = "push", policy_update_template: PolicyUpdate | None = None) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.max_bytes = max_bytes
        self.obs_dim, self.action_dim, self.task = obs_dim, action_dim, task
        self.template = policy_update_template
        self._left = max_bytes
        self._transition_keys: list[tuple[int, int]] = []

    # ---------------------------------------------------------------------------------------------- primitives
    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def float64(self, plausible: tuple[float, float] = (-1.0, 1.0)) -> float:
        return self.pick((math.nan, math.inf, -math.inf, 1e30, -1e30, 1e300, -1e300, 0.0, -0.0, 5e-324,
                          FLOAT32_MAX, float(self.rng.uniform(*plausible)), float(self.rng.uniform(*plausible))))

    def float32(self, plausible: tuple[float, float] = (-1.0, 1.0)) -> float:
        return self.pick((math.nan, math.inf, -math.inf, 1e30, -1e30, FLOAT32_MAX, -FLOAT32_MAX, 0.0, -0.0, 1e-45,
                          float(np.float32(self.rng.uniform(*plausible))),
                          float(np.float32(self.rng.uniform(*plausible)))))

    def uint(self, bits: int, plausible: int = 10) -> int:
        top = UINT_MAX[bits]
        return int(self.pick((0, 1, top, top - 1, 2 ** (bits - 1), int(self.rng.integers(0, plausible + 1)),
                              int(self.rng.integers(0, min(top, 2**62) + 1, dtype=np.uint64)))))

    def int_(self, bits: int) -> int:
        low, high = INT_RANGE[bits]
        return int(self.pick((0, 1, -1, low, high, int(self.rng.integers(-1000, 1000)),
                              int(self.rng.integers(low, high, dtype=np.int64)))))

    def string(self, right: str = "", long: int = 10_000) -> str:
        choice = int(self.rng.integers(4))
        if choice == 0:
            return right
        if choice == 1:
            return self.pick(ODD_STRINGS)
        if choice == 2:
            n = int(self.rng.integers(1, max(2, min(long, self._left // 4))))
            self._left -= 4 * n
            return self.pick(("\u202e", "\U0001F600", "\u0301", "x", "\u200b")) * n
        return "".join(chr(int(c)) for c in self.rng.integers(0x20, 0xD7FF, size=int(self.rng.integers(1, 40))))

    def stamp(self, now_ns: int | None = None) -> tuple[Time, str]:
        kinds = ["negative", "zero", "far_future", "nanosec_overflow", "nanosec_max", "random"]
        if now_ns is not None:
            kinds += ["fresh", "stale", "future", "fresh_nanosec_overflow"]
        kind = self.pick(kinds)
        if kind == "negative":
            return Time(sec=int(self.pick((-1, -(2**31), -int(self.rng.integers(1, 10**6))))),
                        nanosec=int(self.rng.integers(0, 10**9))), kind
        if kind == "zero":
            return Time(sec=0, nanosec=0), kind
        if kind == "far_future":
            return Time(sec=2**31 - 1, nanosec=999_999_999), kind
        if kind == "nanosec_overflow":
            return Time(sec=int(self.rng.integers(0, 1000)), nanosec=int(self.rng.integers(10**9, 2**32))), kind
        if kind == "nanosec_max":
            return Time(sec=2**31 - 1, nanosec=2**32 - 1), kind
        if kind == "random":
            return Time(sec=int(self.rng.integers(-(2**31), 2**31)), nanosec=int(self.rng.integers(0, 2**32))), kind
        offset = {"fresh": 0, "stale": -int(self.rng.uniform(2, 1000) * 1e9), "future": int(self.rng.uniform(1, 1e4)
                                                                                              * 1e9),
                  "fresh_nanosec_overflow": 0}[kind]
        t = max(0, int(now_ns) + offset)
        if kind == "fresh_nanosec_overflow":
            return Time(sec=t // 10**9 - 1, nanosec=t % 10**9 + 10**9), kind
        return Time(sec=min(t // 10**9, 2**31 - 1), nanosec=t % 10**9), kind

    def header(self, msg, frame: str, now_ns: int | None) -> str:
        """Header fields of a new message (which also starts its byte budget)."""
        self._new_message()
        stamp, kind = self.stamp(now_ns)
        msg.header.stamp = stamp
        msg.header.frame_id = frame if self.chance(0.5) else self.pick(WRONG_FRAMES + ODD_STRINGS)
        return f"stamp={kind} frame={msg.header.frame_id[:20]!r}"

    def _new_message(self) -> None:
        """Start a message: its arrays share one budget of max_bytes."""
        self._left = self.max_bytes

    def length(self, right: int, itemsize: int) -> int:
        """An array length (right, off by one, empty, random or as large as the message's budget still allows)."""
        cap = max(0, self._left // max(1, itemsize))
        n = int(min(cap, self.pick((0, right, max(0, right - 1), right + 1, 1, int(self.rng.integers(0, 64)),
                                    cap, int(self.rng.integers(0, cap + 1))))))
        self._left -= n * itemsize
        return n

    def float32_array(self, right: int, plausible: tuple[float, float] = (-1.0, 1.0)) -> array.array:
        n = self.length(right, 4)
        values = self.rng.uniform(*plausible, size=n).astype(np.float32)
        bad = self.rng.random(n) < self.pick((0.0, 0.1, 1.0))
        pool = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, FLOAT32_MAX, 0.0], dtype=np.float32)
        values[bad] = pool[self.rng.integers(len(pool), size=int(bad.sum()))]
        out = array.array("f")
        out.frombytes(values.tobytes())  # what the message field holds; assigning numpy converts element-wise
        return out

    def float64_list(self, right: int) -> list[float]:
        n = self.length(right, 8)
        values = self.rng.uniform(-3.0, 3.0, size=n)
        bad = self.rng.random(n) < self.pick((0.0, 0.1, 1.0))
        pool = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e300, 0.0, 5e-324])
        values[bad] = pool[self.rng.integers(len(pool), size=int(bad.sum()))]
        return values.tolist()

    def names(self, right: tuple[str, ...]) -> list[str]:
        kind = self.pick(("right", "shuffled", "short", "long", "duplicate", "odd", "empty"))
        if kind == "right":
            return list(right)
        if kind == "shuffled":
            return [str(n) for n in self.rng.permutation(right)]
        if kind == "short":
            return list(right[: int(self.rng.integers(len(right)))])
        if kind == "long":
            return list(right) + [f"extra{i}" for i in range(int(self.rng.integers(1, 200)))]
        if kind == "duplicate":
            return [right[0]] * len(right)
        if kind == "odd":
            return [self.string(n, long=100) for n in right]
        return []

    # ---------------------------------------------------------------------------------------------- messages
    def pose_stamped(self, now_ns: int | None = None) -> tuple[PoseStamped, str]:
        """A robot pose or Cartesian target; never a plausible spoof (see the module docstring)."""
        msg = PoseStamped()
        label = self.header(msg, BASE_FRAME, now_ns)
        p, q = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z = (self.float64((0.2, 0.7)) for _ in range(3))
        q.x, q.y, q.z, q.w = (self.float64() for _ in range(4))
        if not pose_defects(msg, now_ns):  # plausible: give it one detectable defect
            defect = self.pick(("nan", "far", "frame", "stale"))
            if defect == "nan":
                p.x = math.nan
            elif defect == "far":
                p.y = 1e30
            elif defect == "frame":
                msg.header.frame_id = self.pick(WRONG_FRAMES)
            else:
                msg.header.stamp = Time(sec=max(1, (now_ns or 0) // 10**9 - 100), nanosec=0)
            label += f" forced_defect={defect}"
        return msg, f"{label} pos=({p.x:.3g},{p.y:.3g},{p.z:.3g}) quat=({q.x:.3g},{q.y:.3g},{q.z:.3g},{q.w:.3g})"

    def joint_state(self, now_ns: int | None = None) -> tuple[JointState, str]:
        msg = JointState()
        label = self.header(msg, "", now_ns)
        msg.name = self.names(JOINT_NAMES)
        msg.position = self.float64_list(7)
        msg.velocity = self.float64_list(7)
        msg.effort = self.float64_list(7)
        return msg, (f"{label} names={len(msg.name)} position={len(msg.position)} velocity={len(msg.velocity)} "
                     f"effort={len(msg.effort)}")

    def object_detection(self, now_ns: int | None = None) -> tuple[ObjectDetection, str]:
        msg = ObjectDetection()
        label = self.header(msg, BASE_FRAME, now_ns)
        msg.position.x, msg.position.y, msg.position.z = (self.float64((-0.5, 0.8)) for _ in range(3))
        msg.num_points = self.uint(32, 100)
        msg.confidence = self.float32((0.0, 1.0))
        msg.num_cameras = self.uint(8, 2)
        msg.valid = self.chance(0.7)
        msg.reason = self.string("")
        p = msg.position
        return msg, (f"{label} pos=({p.x:.3g},{p.y:.3g},{p.z:.3g}) valid={msg.valid} num_points={msg.num_points} "
                     f"confidence={msg.confidence:.3g} num_cameras={msg.num_cameras}")

    def bool_msg(self) -> tuple[Bool, str]:
        msg = Bool(data=self.chance(0.5))
        return msg, f"data={msg.data}"

    def _weights_bytes(self) -> tuple[bytes, str]:
        kind = self.pick(("random", "empty", "huge_header_len", "fake_header", "deep_json", "nan_json", "short"))
        if kind == "random":
            return self.rng.bytes(int(self.rng.integers(1, max(2, self._left)))), kind
        if kind == "empty":
            return b"", kind
        if kind == "huge_header_len":
            return struct.pack("<Q", self.pick((2**64 - 1, 2**40, 10**8))) + self.rng.bytes(64), kind
        if kind == "short":
            return self.rng.bytes(int(self.rng.integers(1, 8))), kind
        if kind == "deep_json":
            depth = min(100_000, self._left // 4)
            header = ("[" * depth + "]" * depth).encode()
        elif kind == "nan_json":
            header = b'{"__metadata__": {"sgft": "{\\"obs_dim\\": NaN}"}, "actor.x": {"dtype": "F32", ' \
                     b'"shape": [1e30, -1], "data_offsets": [0, 18446744073709551615]}}'
        else:
            shape = [int(self.rng.integers(-5, 2**31)) for _ in range(int(self.rng.integers(0, 4)))]
            header = json.dumps({"__metadata__": {"sgft": json.dumps({"format": "sgft-actor", "task": self.task,
                                                                        "obs_dim": self.uint(32), "act_dim": -1})},
                                 "actor.net.0.weight": {"dtype": self.pick(("F32", "F64", "I64", "BOOL", "??")),
                                                        "shape": shape,
                                                        "data_offsets": [0, self.uint(64)]}}).encode()
        return struct.pack("<Q", len(header)) + header + self.rng.bytes(int(self.rng.integers(0, 4096))), kind

    def _mutated_template(self) -> tuple[bytes, str]:
        data = bytearray(self.template.weights)
        kind = self.pick(("truncated", "bitflip", "nan_weight", "inf_weight", "appended", "header_byte"))
        header_end = 8 + struct.unpack("<Q", bytes(data[:8]))[0] if len(data) >= 8 else 0
        if kind == "truncated":
            data = data[: int(self.rng.integers(0, len(data)))]
        elif kind == "bitflip":
            for i in self.rng.integers(0, len(data), size=int(self.rng.integers(1, 8))):
                data[int(i)] ^= 1 << int(self.rng.integers(8))
        elif kind in ("nan_weight", "inf_weight") and header_end + 4 <= len(data):
            value = struct.pack("<f", math.nan if kind == "nan_weight" else -math.inf)
            for _ in range(int(self.rng.integers(1, 4))):
                i = header_end + 4 * int(self.rng.integers(0, (len(data) - header_end) // 4))
                data[i:i + 4] = value
        elif kind == "appended":
            data += self.rng.bytes(int(self.rng.integers(1, 1024)))
        else:
            i = int(self.rng.integers(8, max(9, header_end)))
            data[i] = int(self.rng.integers(0, 256))
        return bytes(data), f"template_{kind}"

    def policy_update(self, now_ns: int | None = None) -> tuple[PolicyUpdate, str]:
        msg = PolicyUpdate()
        label = self.header(msg, "", now_ns)
        if self.template is not None and self.chance(0.5):
            data, kind = self._mutated_template()
            msg.architecture = self.template.architecture if self.chance(0.7) else self.string("{}")
            msg.task = self.template.task if self.chance(0.8) else self.pick(WRONG_TASKS)
        else:
            data, kind = self._weights_bytes()
            msg.architecture = self.pick(('{"hidden_dim": 64, "num_layers": 2}', "", "{", "null", "[]",
                                          '{"hidden_dim": 1e30, "num_layers": -1}', '{"hidden_dim": NaN}',
                                          '{"hidden_dim": 4294967295, "num_layers": 4294967295}',
                                          "[" * 5_000 + "]" * 5_000, self.string("{}")))
            msg.task = self.task if self.chance(0.6) else self.pick(WRONG_TASKS)
        msg.weights = data
        sha = self.pick(("valid", "valid", "valid", "wrong", "empty", "upper", "odd"))
        digest = hashlib.sha256(data).hexdigest()
        msg.sha256 = {"valid": digest, "wrong": hashlib.sha256(data + b"x").hexdigest(), "empty": "",
                      "upper": digest.upper(), "odd": self.string(digest, long=200)}[sha]
        msg.version = self.uint(32, 1000)
        return msg, (f"{label} weights={kind} ({len(data)} B) sha256={sha} version={msg.version} "
                     f"task={msg.task[:20]!r} architecture={msg.architecture[:40]!r}")

    def transition(self, now_ns: int | None = None) -> tuple[Transition, str]:
        msg = Transition()
        label = self.header(msg, BASE_FRAME, now_ns)
        msg.task = self.task if self.chance(0.6) else self.pick(WRONG_TASKS)
        key_kind = self.pick(("random", "duplicate", "out_of_order", "absurd"))
        if key_kind in ("duplicate", "out_of_order") and self._transition_keys:
            episode, step = self._transition_keys[int(self.rng.integers(len(self._transition_keys)))]
            if key_kind == "out_of_order":
                step = max(0, step - int(self.rng.integers(1, 5)))
        elif key_kind == "absurd":
            episode, step = self.uint(64), self.uint(32)
        else:
            key_kind = "random"
            episode, step = int(self.rng.integers(0, 20)), int(self.rng.integers(0, 45))
        msg.episode_id, msg.step = episode, step
        self._transition_keys = (self._transition_keys + [(episode, step)])[-50:]
        msg.obs = self.float32_array(self.obs_dim, (-0.5, 0.8))
        msg.action = self.float32_array(self.action_dim, (-1.5, 1.5))
        msg.next_obs = self.float32_array(self.obs_dim, (-0.5, 0.8))
        msg.reward = self.float32((-2.0, 1.0))
        msg.terminal, msg.truncated, msg.success, msg.intervention = (self.chance(0.5) for _ in range(4))
        msg.policy_version = self.uint(32, 5)
        finite = all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in (msg.obs, msg.action, msg.next_obs))
        return msg, (f"{label} task={msg.task[:20]!r} key={key_kind}({episode},{step}) obs={len(msg.obs)} "
                     f"action={len(msg.action)} next_obs={len(msg.next_obs)} finite={finite} "
                     f"reward={msg.reward:.3g} version={msg.policy_version}")

    def _cloud_fields(self) -> tuple[list[PointField], int, str]:
        xyz_rgb = [PF(name="x", offset=0, datatype=PF.FLOAT32, count=1), PF(name="y", offset=4, datatype=PF.FLOAT32,
                   count=1), PF(name="z", offset=8, datatype=PF.FLOAT32, count=1),
                   PF(name="rgb", offset=16, datatype=PF.FLOAT32, count=1)]
        kind = self.pick(("realsense", "realsense", "count_gt_1", "rgb_and_rgba", "missing_z", "duplicate_x",
                          "offset_beyond_step", "bad_datatype", "float64_xyz", "no_fields", "odd_names",
                          "overlapping", "huge_offset"))
        step = 20
        fields = xyz_rgb
        if kind == "count_gt_1":
            fields = [PF(name="x", offset=0, datatype=PF.FLOAT32, count=3)] + xyz_rgb[3:]
        elif kind == "rgb_and_rgba":
            fields = xyz_rgb + [PF(name="rgba", offset=12, datatype=PF.UINT32, count=1)]
        elif kind == "missing_z":
            fields = xyz_rgb[:2] + xyz_rgb[3:]
        elif kind == "duplicate_x":
            fields = xyz_rgb + [PF(name="x", offset=12, datatype=PF.FLOAT32, count=1)]
        elif kind == "offset_beyond_step":
            fields = xyz_rgb[:3] + [PF(name="rgb", offset=int(self.rng.integers(17, 4096)), datatype=PF.FLOAT32,
                                       count=1)]
        elif kind == "bad_datatype":
            fields = [PF(name=f.name, offset=f.offset, datatype=int(self.pick((0, 9, 255))), count=1)
                      for f in xyz_rgb]
        elif kind == "float64_xyz":
            fields = [PF(name=n, offset=8 * i, datatype=PF.FLOAT64, count=1) for i, n in enumerate("xyz")]
            step = 24
        elif kind == "no_fields":
            fields = []
        elif kind == "odd_names":
            fields = [PF(name=self.string(f.name, long=50), offset=f.offset, datatype=f.datatype, count=1)
                      for f in xyz_rgb]
        elif kind == "overlapping":
            fields = [PF(name=f.name, offset=0, datatype=f.datatype, count=1) for f in xyz_rgb]
        elif kind == "huge_offset":
            fields = xyz_rgb[:3] + [PF(name="rgb", offset=2**32 - 4, datatype=PF.FLOAT32, count=2**32 - 1)]
        return fields, step, kind

    def point_cloud2(self, now_ns: int | None = None, frame: str = "camera1_depth_optical_frame",
                     ) -> tuple[PointCloud2, str]:
        msg = PointCloud2()
        label = self.header(msg, frame, now_ns)
        fields, step, field_kind = self._cloud_fields()
        msg.fields = fields
        n = int(self.rng.integers(0, max(1, min(20_000, (self._left - 4096) // max(step, 1)))))
        # points: uniform junk, NaN/inf coordinates, or an orange blob in the workspace (a plausible object)
        pts = self.rng.uniform(-2, 2, size=(n, 3)).astype(np.float32)
        content = self.pick(("junk", "nonfinite", "huge", "orange"))
        if content == "nonfinite":
            pts[self.rng.random(n) < 0.5] = np.nan
            pts[self.rng.random(n) < 0.2] = np.inf
        elif content == "huge":
            pts *= np.float32(1e30)
        rgb = np.full(n, (255 << 16) | (140 << 8) | 0, dtype=np.uint32) if content == "orange" else \
            self.rng.integers(0, 2**32, size=n, dtype=np.uint32)
        if step == 20:
            rows = np.zeros((n, 20), dtype=np.uint8)
            rows[:, 0:12] = pts.view(np.uint8).reshape(n, 12)
            rows[:, 16:20] = rgb.view(np.uint8).reshape(n, 4)
        else:
            rows = pts.astype(np.float64).view(np.uint8).reshape(n, 24)
        data = rows.tobytes()
        shape = self.pick(("consistent", "consistent", "short_data", "long_data", "width_lies", "row_step_lies",
                           "step_lies", "height_zero", "organized_lie", "zero_step"))
        msg.height, msg.width, msg.point_step, msg.row_step = 1, n, step, n * step
        if shape == "short_data":
            data = data[: int(self.pick((0, self.rng.integers(0, max(1, len(data))))))]
        elif shape == "long_data":
            data += self.rng.bytes(int(self.rng.integers(1, 100)))
        elif shape == "width_lies":
            msg.width = self.uint(32, n + 10)
        elif shape == "row_step_lies":
            msg.row_step = self.uint(32, n * step + 10)
        elif shape == "step_lies":
            msg.point_step = self.pick((0, 1, 4, 12, 19, 21, 2**32 - 1))
        elif shape == "height_zero":
            msg.height = 0
        elif shape == "organized_lie":
            msg.height = self.uint(32, 480)
        elif shape == "zero_step":
            msg.point_step, msg.row_step = 0, 0
        msg.data = data[: self.max_bytes]
        msg.is_bigendian = self.chance(0.2)
        msg.is_dense = self.chance(0.5)
        return msg, (f"{label} fields={field_kind} content={content} shape={shape} n={n} height={msg.height} "
                     f"width={msg.width} point_step={msg.point_step} row_step={msg.row_step} data={len(msg.data)} "
                     f"bigendian={msg.is_bigendian}")

    def joint_trajectory(self, now_ns: int | None = None) -> tuple[JointTrajectory, str]:
        msg = JointTrajectory()
        label = self.header(msg, BASE_FRAME, now_ns)
        msg.joint_names = self.names(JOINT_NAMES)
        n_points = int(self.pick((0, 0, 1, 1, 2, int(self.rng.integers(3, 200)))))
        for _ in range(n_points):
            if self._left < 1024:
                n_points = len(msg.points)
                break
            point = JointTrajectoryPoint()
            point.positions = self.float64_list(7)
            if self.chance(0.3):
                point.velocities = self.float64_list(7)
            point.time_from_start = Duration(sec=self.int_(32), nanosec=self.uint(32, 10**9))
            msg.points.append(point)
        sizes = [len(p.positions) for p in msg.points[:3]]
        return msg, f"{label} names={len(msg.joint_names)} points={n_points} positions={sizes}"

    def episode_event(self, now_ns: int | None = None) -> tuple[EpisodeEvent, str]:
        msg = EpisodeEvent()
        label = self.header(msg, "", now_ns)
        msg.task = self.task if self.chance(0.5) else self.pick(WRONG_TASKS)
        msg.episode_id = self.uint(64)
        msg.event = self.pick((0, 1, 2, 3, 4, 5, 255))
        msg.reason = self.string("")
        msg.steps = self.uint(32, 40)
        msg.episode_return = self.float32((-50.0, 0.0))
        msg.success, msg.evaluation = self.chance(0.5), self.chance(0.5)
        msg.policy_version = self.uint(32)
        return msg, f"{label} event={msg.event} episode={msg.episode_id} steps={msg.steps}"

    # ---------------------------------------------------------------------------------------------- services
    def start_episode_request(self) -> tuple[StartEpisode.Request, str]:
        request = StartEpisode.Request(evaluation=self.chance(0.5))
        return request, f"evaluation={request.evaluation}"

    def stop_episode_request(self) -> tuple[StopEpisode.Request, str]:
        self._new_message()
        request = StopEpisode.Request(reason=self.string("fuzz"))
        return request, f"reason={request.reason[:20]!r} ({len(request.reason)} chars)"

    def reset_episode_request(self) -> tuple[ResetEpisode.Request, str]:
        request = ResetEpisode.Request(seed=self.int_(64))
        return request, f"seed={request.seed}"

    def set_estop_request(self) -> tuple[SetBool.Request, str]:
        request = SetBool.Request(data=self.chance(0.5))
        return request, f"data={request.data}"


# What each generator covers, for the generator's own tests and the fuzz test's schedule: name -> (type, method).
MESSAGE_GENERATORS: dict[str, tuple[type, Callable[..., tuple[Any, str]]]] = {
    "pose_stamped": (PoseStamped, Fuzzer.pose_stamped),
    "joint_state": (JointState, Fuzzer.joint_state),
    "object_detection": (ObjectDetection, Fuzzer.object_detection),
    "policy_update": (PolicyUpdate, Fuzzer.policy_update),
    "bool_msg": (Bool, Fuzzer.bool_msg),
    "transition": (Transition, Fuzzer.transition),
    "point_cloud2": (PointCloud2, Fuzzer.point_cloud2),
    "joint_trajectory": (JointTrajectory, Fuzzer.joint_trajectory),
    "episode_event": (EpisodeEvent, Fuzzer.episode_event),
}
REQUEST_GENERATORS: dict[str, tuple[type, Callable[..., tuple[Any, str]]]] = {
    "start_episode": (StartEpisode, Fuzzer.start_episode_request),
    "stop_episode": (StopEpisode, Fuzzer.stop_episode_request),
    "reset_episode": (ResetEpisode, Fuzzer.reset_episode_request),
    "set_estop": (SetBool, Fuzzer.set_estop_request),
}
