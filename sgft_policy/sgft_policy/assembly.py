"""What the control loop reads and writes, without ROS: the latest inputs, the observation assembled from them (or
why the robot must hold), the controller target for an action (sgft_core.command) or for holding still, and its
message.

Inputs carry their measurement time in seconds of the node's clock (the header stamp, checked by
sgft_policy.validation): an input older than max_input_age makes the robot hold, so a queue delay counts as
staleness.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PoseStamped
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sgft_core.command import command_target
from sgft_core.fr3 import JOINT_NAMES
from sgft_core.observation import assemble_observation, held_object_position, observation_sources
from sgft_core.safety import SafetyEnvelope
from sgft_core.tasks import TaskSpec

IMPLAUSIBLE_POSE = "robot pose implausible: it moved faster than the robot can"


@dataclass(frozen=True)
class Pose:
    position: np.ndarray  # end effector, base frame (m)
    orientation_xyzw: tuple[float, float, float, float]
    stamp: float


@dataclass(frozen=True)
class Joints:
    positions: dict[str, float]
    velocities: dict[str, float]
    stamp: float


@dataclass(frozen=True)
class Detection:
    position: np.ndarray
    valid: bool
    reason: str
    stamp: float


@dataclass
class Inputs:
    """The latest message of each input."""

    pose: Pose | None = None
    joints: Joints | None = None
    detection: Detection | None = None
    # when (node clock, s) a pose moving faster than the robot can last came, and how far it jumped
    pose_implausible: tuple[float, str] | None = None


def pose_from_msg(msg: PoseStamped, stamp: float) -> Pose:
    p, o = msg.pose.position, msg.pose.orientation
    return Pose(np.array([p.x, p.y, p.z]), (o.x, o.y, o.z, o.w), stamp)


def joints_from_msg(msg, stamp: float) -> Joints:
    """From a sensor_msgs JointState; ValueError when names and positions differ in length (velocities may be
    left out)."""
    if len(msg.position) != len(msg.name):
        raise ValueError(f"JointState with {len(msg.name)} names and {len(msg.position)} positions")
    return Joints(dict(zip(msg.name, msg.position, strict=True)), dict(zip(msg.name, msg.velocity, strict=False)),
                  stamp)


def detection_from_msg(msg, stamp: float) -> Detection:
    """From an sgft_msgs ObjectDetection."""
    p = msg.position
    return Detection(np.array([p.x, p.y, p.z]), bool(msg.valid), str(msg.reason), stamp)


@dataclass
class ObservationAssembler:
    """The task's observation from the inputs, or the reason to hold."""

    spec: TaskSpec
    max_input_age: float
    constants: Mapping[str, float] = field(default_factory=dict)
    joint_zero_offsets: Mapping[str, float] = field(default_factory=dict)
    held_offset: np.ndarray | None = None  # a held object's point in the end-effector frame; None: perceived

    def __post_init__(self) -> None:
        needs = observation_sources(self.spec)
        self.needs_object = bool(needs["object"])
        self.needs_joints = bool(needs["joints"]) or self.spec.action_kind == "joint"
        # the object comes from perception unless it is held (then detections are not waited for)
        self.uses_detection = self.needs_object and self.held_offset is None

    def _stale(self, item: Pose | Joints | Detection | None, now: float) -> bool:
        return item is None or now - item.stamp > self.max_input_age

    def observe(self, inputs: Inputs, now: float) -> tuple[np.ndarray | None, str]:
        """The current observation, or None and the reason to hold."""
        if self._stale(inputs.pose, now):
            return None, "robot pose stale or missing"
        if inputs.pose_implausible is not None and now - inputs.pose_implausible[0] <= self.max_input_age:
            return None, IMPLAUSIBLE_POSE  # fixed text: one HOLDING event, however the jumps differ
        ee = inputs.pose.position
        q = dq = None
        if self.needs_joints:
            if self._stale(inputs.joints, now):
                return None, "joint state stale or missing"
            q, dq = inputs.joints.positions, inputs.joints.velocities
        obj = None
        if self.held_offset is not None:
            try:
                obj = held_object_position(ee, inputs.pose.orientation_xyzw, self.held_offset)
            except ValueError as err:
                return None, f"robot pose: {err}"
        elif self.needs_object:
            if self._stale(inputs.detection, now):
                return None, "object detection stale or missing"
            if not inputs.detection.valid:
                return None, f"object detection invalid: {inputs.detection.reason or 'no reason given'}"
            obj = inputs.detection.position
        try:
            obs = assemble_observation(self.spec, ee, q, dq, obj, self.constants,
                                       joint_zero_offsets=self.joint_zero_offsets)
        except ValueError as err:
            return None, str(err)
        if not self.spec.obs_in_bounds(obs):
            return None, f"observation non-finite or out of bounds: {np.array2string(obs, precision=3)}"
        return obs, ""

    def inputs_behind(self, inputs: Inputs, tick_ns: int, period: float) -> bool:
        """Whether the tick at tick_ns would act on robot state measured before it, or on a detection measured before
        the previous tick. The simulated robot publishes a step's state, and waits for the detection of the frame it
        renders one step before a tick, before the /clock of the tick; over separate topics the clock can still be
        handled first. It scales each command against the state at the command's stamp."""
        t = tick_ns * 1e-9 - 1e-6
        if inputs.pose is None or inputs.pose.stamp < t:
            return True
        if self.needs_joints and (inputs.joints is None or inputs.joints.stamp < t):
            return True
        return self.uses_detection and (inputs.detection is None or inputs.detection.stamp <= t - period)


class Commander:
    """The controller target of an action at the measured inputs. A joint task's other joints hold where they were
    when its episode's first command was computed (call `reset` at each start)."""

    def __init__(self, spec: TaskSpec, envelope: SafetyEnvelope) -> None:
        self.spec, self.envelope = spec, envelope
        self.joint_hold: np.ndarray | None = None

    def reset(self) -> None:
        self.joint_hold = None

    def target(self, action: np.ndarray, inputs: Inputs) -> np.ndarray | None:
        """Cartesian: the end-effector position target; joint: the 7 arm joints' targets (the robot's readings).
        None: no safe target (nothing is to be sent)."""
        if self.spec.action_kind == "cartesian":
            return command_target(self.spec, self.envelope, action, inputs.pose.position)
        positions = inputs.joints.positions
        if any(j not in positions for j in JOINT_NAMES):
            return None
        q = np.array([positions[j] for j in JOINT_NAMES])
        if self.joint_hold is None:
            self.joint_hold = q
        return command_target(self.spec, self.envelope, action, inputs.pose.position, q, self.joint_hold)


def hold_target(spec: TaskSpec, inputs: Inputs, now: float, max_input_age: float) -> tuple[np.ndarray | None, str]:
    """The target that holds the arm where it is measured to be (a stop, an abort, a pause), or None and why none is
    safe to send (then the controller keeps its last target, at most one step ahead).

    Cartesian: the measured end-effector position, z at the task's ee_height for a planar task (every command of
    that task has it, so z does not change); joint: the 7 measured arm joints. Exactly the measured state, not the
    envelope's step back into the box for an arm outside it: a stop must not move the arm, and it is within every
    step limit of where the arm is. Only a fresh, plausible measurement: an old one may lie a step or more behind."""
    pose = inputs.pose
    if pose is None or now - pose.stamp > max_input_age:
        return None, "robot pose stale or missing"
    if inputs.pose_implausible is not None and now - inputs.pose_implausible[0] <= max_input_age:
        return None, IMPLAUSIBLE_POSE
    if spec.action_kind == "cartesian":
        target = np.array(pose.position, dtype=np.float64)
        if spec.action_dim == 2:
            target[2] = spec.ee_height
    else:
        joints = inputs.joints
        if joints is None or now - joints.stamp > max_input_age:
            return None, "joint state stale or missing"
        if any(j not in joints.positions for j in JOINT_NAMES):
            return None, "joint state lacks arm joints"
        target = np.array([joints.positions[j] for j in JOINT_NAMES], dtype=np.float64)
    return (target, "") if np.all(np.isfinite(target)) else (None, "measured state not finite")


def time_msg(ns: int) -> TimeMsg:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return TimeMsg(sec=sec, nanosec=nanosec)


def pose_target_msg(xyz: np.ndarray, orientation_xyzw: np.ndarray, stamp_ns: int, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = time_msg(stamp_ns), frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
    o = orientation_xyzw
    msg.pose.orientation.x, msg.pose.orientation.y = float(o[0]), float(o[1])
    msg.pose.orientation.z, msg.pose.orientation.w = float(o[2]), float(o[3])
    return msg


def command_msg(spec: TaskSpec, target: np.ndarray, orientation_xyzw: np.ndarray, stamp_ns: int, frame_id: str,
                period: float) -> PoseStamped | JointTrajectory:
    """The controller message of a target: a PoseStamped (Cartesian tasks) or a one-point JointTrajectory."""
    if spec.action_kind == "cartesian":
        return pose_target_msg(target, orientation_xyzw, stamp_ns, frame_id)
    return joint_trajectory_msg(target, stamp_ns, frame_id, period)


def joint_trajectory_msg(targets: np.ndarray, stamp_ns: int, frame_id: str, period: float) -> JointTrajectory:
    """One point for the 7 arm joints, reached one control period from now (the controller interpolates)."""
    msg = JointTrajectory(joint_names=list(JOINT_NAMES))
    msg.header.stamp, msg.header.frame_id = time_msg(stamp_ns), frame_id
    point = JointTrajectoryPoint(positions=[float(v) for v in targets])
    point.time_from_start.sec, point.time_from_start.nanosec = divmod(int(period * 1e9), 1_000_000_000)
    msg.points = [point]
    return msg
