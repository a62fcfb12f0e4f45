"""Every robot state and detection message checked before it becomes an input, without ROS.

Any peer on the DDS domain can publish on the state and detection topics, and a header stamp is data: a message is
taken only when its stamp is a usable measurement time (sgft_interfaces.stamps: not negative, zero, malformed or in
the future beyond `max_stamp_future_s`), its frame is the base frame and every field is finite, in range and
consistent. A refused message is dropped and its Rejection counted by kind; the input it would have replaced keeps
ageing, so with its real publisher gone the robot holds as on a stale input.

Plausibility of the robot pose: the end effector cannot move faster than the FR3's Cartesian velocity limit, so a
pose further than max_ee_speed·Δt (+ a margin for noise) from the last accepted one, Δt between their stamps, is
refused, and the robot holds until no implausible pose has come for max_input_age (a second publisher of poses, a
spoofer or a driver mix-up, makes every other message jump). The reference is the last *accepted* pose and Δt grows
while it ages, so a genuine jump (state resumed after a long gap with the arm moved by hand, a simulator that
teleports the arm on reset) is accepted once Δt covers the distance: at most reach/speed (1 s at 3 m/s), never a
lock-out. A clock that went back (a restarted simulator) forgets the reference instead of refusing every pose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg

from sgft_core.fr3 import (
    JOINT_HIGH,
    JOINT_LOW,
    JOINT_NAMES,
    MAX_EE_DISTANCE,
)
from sgft_core.observation import observation_sources
from sgft_core.tasks import TaskSpec
from sgft_interfaces.stamps import NS_PER_S, stamp_ns, stamp_problem
from sgft_policy.assembly import Detection, Inputs, Joints, Pose

POSE_JUMP_MARGIN_M = 0.01  # measurement noise and stamp jitter on top of speed·Δt
QUATERNION_NORM_TOLERANCE = 0.01
JOINT_LIMIT_MARGIN_RAD = 0.1  # a measured joint may overshoot its limit a little before the robot stops
MAX_JOINT_SPEED_RAD_S = 10.0  # above every FR3 joint's limit (2.62 / 5.26 rad/s), as the tasks' dq bounds
MAX_JOINTS = 64  # names in one JointState (arm, gripper, more): a bigger one is no robot's
MAX_TEXT_CHARS = 1024  # a detection's reason, shown in hold events and logs


@dataclass(frozen=True)
class Rejection:
    kind: str  # the counter: <input>_<what>, e.g. robot_pose_jump
    detail: str


def stamp_seconds(stamp: TimeMsg, now_ns: int, max_future_s: float, what: str) -> float | Rejection:
    """The stamp in seconds, or the Rejection of a stamp that is no usable measurement time."""
    problem = stamp_problem(stamp, now_ns, max_future_s)
    return Rejection(f"{what}_stamp", problem) if problem else stamp_ns(stamp) / NS_PER_S


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _frame(frame_id: str, base_frame: str, what: str) -> Rejection | None:
    if frame_id != base_frame:
        return Rejection(f"{what}_frame", f"frame_id {frame_id[:80]!r}, expected {base_frame!r}")
    return None


def pose_problem(msg, base_frame: str) -> Rejection | None:
    """A PoseStamped's frame, finiteness, reach and unit quaternion (the stamp is checked separately)."""
    p, o = msg.pose.position, msg.pose.orientation
    frame = _frame(msg.header.frame_id, base_frame, "robot_pose")
    if frame:
        return frame
    if not _finite(p.x, p.y, p.z, o.x, o.y, o.z, o.w):
        return Rejection("robot_pose_nonfinite", "non-finite position or orientation")
    # beyond the reach no pose is a measurement; this also bounds how long a bogus reference pose can hold up
    # genuine ones (reach / speed)
    if math.hypot(p.x, p.y, p.z) > MAX_EE_DISTANCE:
        return Rejection("robot_pose_range", f"position ({p.x:.3g}, {p.y:.3g}, {p.z:.3g}) beyond the arm's reach")
    norm = math.sqrt(o.x * o.x + o.y * o.y + o.z * o.z + o.w * o.w)
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        return Rejection("robot_pose_quaternion", f"orientation norm {norm:.4g}, not a unit quaternion")
    return None


def joints_problem(names: Sequence[str], position: Sequence[float], velocity: Sequence[float],
                   effort: Sequence[float]) -> Rejection | None:
    """A JointState's sizes, names, finiteness and ranges (arm joints against the FR3's limits)."""
    n = len(names)
    if n == 0 or n > MAX_JOINTS:
        return Rejection("joint_state_size", f"{n} names (1..{MAX_JOINTS})")
    if len(position) != n or len(velocity) not in (0, n) or len(effort) not in (0, n):
        return Rejection("joint_state_size", f"{n} names, {len(position)} positions, {len(velocity)} velocities, "
                                             f"{len(effort)} efforts")
    if len(set(names)) != n or not all(names):
        return Rejection("joint_state_names", "empty or duplicate joint names")
    if not _finite(*position, *velocity, *effort):
        return Rejection("joint_state_nonfinite", "non-finite position, velocity or effort")
    for name, q in zip(names, position, strict=True):
        if name in JOINT_NAMES:
            i = JOINT_NAMES.index(name)
            if not JOINT_LOW[i] - JOINT_LIMIT_MARGIN_RAD <= q <= JOINT_HIGH[i] + JOINT_LIMIT_MARGIN_RAD:
                return Rejection("joint_state_range", f"{name} at {q:.3g} rad, outside its limits")
    if any(abs(v) > MAX_JOINT_SPEED_RAD_S for v in velocity):
        return Rejection("joint_state_range", f"a joint velocity beyond {MAX_JOINT_SPEED_RAD_S} rad/s")
    return None


def object_box(spec: TaskSpec, low: Sequence[float], high: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Where a detected object may be: per axis the given bound, or where it is NaN the task's observation bounds of
    that object coordinate (unbounded for a coordinate the task does not observe). ValueError for a bad box."""
    box_low, box_high = np.full(3, -np.inf), np.full(3, np.inf)
    for name in observation_sources(spec)["object"]:
        axis, i = "xyz".index(name[-1]), spec.obs_names.index(name)
        box_low[axis], box_high[axis] = spec.obs_low[i], spec.obs_high[i]
    given_low, given_high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if given_low.shape != (3,) or given_high.shape != (3,) or np.isinf(given_low).any() or np.isinf(given_high).any():
        raise ValueError("object_box_low/high need 3 values each, finite or NaN (the task's bounds)")
    box_low = np.where(np.isnan(given_low), box_low, given_low)
    box_high = np.where(np.isnan(given_high), box_high, given_high)
    if not np.all(box_low < box_high):
        raise ValueError(f"object_box_low {box_low.tolist()} not below object_box_high {box_high.tolist()}")
    return box_low, box_high


def detection_problem(msg, base_frame: str, low: np.ndarray, high: np.ndarray) -> Rejection | None:
    """An ObjectDetection's frame, confidence, reason and, when valid, its points and position."""
    frame = _frame(msg.header.frame_id, base_frame, "detection")
    if frame:
        return frame
    if not (math.isfinite(msg.confidence) and 0.0 <= msg.confidence <= 1.0):
        return Rejection("detection_confidence", f"confidence {msg.confidence} outside [0, 1]")
    if len(msg.reason) > MAX_TEXT_CHARS:
        return Rejection("detection_reason", f"reason of {len(msg.reason)} characters")
    if not msg.valid:
        return None  # its position is meaningless: not checked, never used
    if msg.num_points == 0:
        return Rejection("detection_points", "valid with no points")
    p = msg.position
    xyz = np.array([p.x, p.y, p.z])
    if not (np.isfinite(xyz).all() and np.all(xyz >= low) and np.all(xyz <= high)):
        return Rejection("detection_position", f"position {np.array2string(xyz, precision=3)} non-finite or "
                                               f"outside the object box {low.tolist()}..{high.tolist()}")
    return None


class PoseMotion:
    """The speed check of robot poses against the last accepted one (see the module's docstring)."""

    def __init__(self, max_speed: float, max_future_s: float) -> None:
        self.max_speed, self.max_future_s = max_speed, max_future_s
        self.last: tuple[np.ndarray, float] | None = None  # the last accepted position and its stamp

    def check(self, position: np.ndarray, stamp: float, now: float) -> Rejection | None:
        """None (and it becomes the reference) or the Rejection: out of order, or too far too fast."""
        if self.last is not None and now > 0 and self.last[1] > now + self.max_future_s:
            self.last = None  # the clock went back: the reference is from another timeline
        if self.last is not None:
            previous, previous_stamp = self.last
            dt = stamp - previous_stamp
            if dt <= 0:
                return Rejection("robot_pose_out_of_order", f"stamped {-dt:.3f} s before the last accepted pose")
            distance = float(np.linalg.norm(position - previous))
            if distance > self.max_speed * dt + POSE_JUMP_MARGIN_M:
                return Rejection("robot_pose_jump", f"moved {distance:.3f} m in {dt:.3f} s, faster than "
                                                    f"max_ee_speed_mps={self.max_speed}")
        self.last = (position, stamp)
        return None


class InputGate:
    """Checks each state and detection message and, when it passes, makes it the latest input."""

    def __init__(self, spec: TaskSpec, inputs: Inputs, base_frame: str, max_future_s: float, max_ee_speed: float,
                 object_low: np.ndarray, object_high: np.ndarray) -> None:
        self.inputs, self.base_frame, self.max_future_s = inputs, base_frame, max_future_s
        self.object_low, self.object_high = object_low, object_high
        self.motion = PoseMotion(max_ee_speed, max_future_s)

    def pose(self, msg, now_ns: int) -> Rejection | None:
        stamp = stamp_seconds(msg.header.stamp, now_ns, self.max_future_s, "robot_pose")
        if isinstance(stamp, Rejection):
            return stamp
        problem = pose_problem(msg, self.base_frame)
        if problem:
            return problem
        p, o = msg.pose.position, msg.pose.orientation
        position = np.array([p.x, p.y, p.z])
        problem = self.motion.check(position, stamp, now_ns / NS_PER_S)
        if problem:
            if problem.kind == "robot_pose_jump":
                self.inputs.pose_implausible = (now_ns / NS_PER_S, problem.detail)
            return problem
        self.inputs.pose = Pose(position, (o.x, o.y, o.z, o.w), stamp)
        return None

    def joints(self, msg, now_ns: int) -> Rejection | None:
        stamp = stamp_seconds(msg.header.stamp, now_ns, self.max_future_s, "joint_state")
        if isinstance(stamp, Rejection):
            return stamp
        names, position, velocity = list(msg.name), list(msg.position), list(msg.velocity)
        problem = joints_problem(names, position, velocity, list(msg.effort))
        if problem:
            return problem
        self.inputs.joints = Joints(dict(zip(names, position, strict=True)),
                                    dict(zip(names, velocity, strict=False)), stamp)
        return None

    def detection(self, msg, now_ns: int) -> Rejection | None:
        stamp = stamp_seconds(msg.header.stamp, now_ns, self.max_future_s, "detection")
        if isinstance(stamp, Rejection):
            return stamp
        problem = detection_problem(msg, self.base_frame, self.object_low, self.object_high)
        if problem:
            return problem
        p = msg.position
        self.inputs.detection = Detection(np.array([p.x, p.y, p.z]), bool(msg.valid), str(msg.reason), stamp)
        return None
