"""The policy node's parameters: names, defaults and descriptions in one table, and their validation into
`PolicyParameters`. Nothing here needs ROS, so the checks are tested directly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sgft_core.command import task_envelope
from sgft_core.fr3 import BASE_FRAME, JOINT_NAMES, MAX_CARTESIAN_SPEED
from sgft_core.observation import observation_sources, parse_held_object_offset
from sgft_core.safety import SafetyEnvelope
from sgft_core.tasks import TaskSpec, get_task
from sgft_interfaces import Topics
from sgft_policy.validation import object_box


class ParameterError(ValueError):
    """A parameter is out of range at start-up; the node refuses to start."""


NAN3 = [float("nan")] * 3

# name -> (default, description); the default's type is the parameter's type.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "task": ("push", "task name in sgft_core.tasks (push, hammer, insert)"),
    "checkpoint": ("", "pretrained checkpoint to start from (sgft_sim.pretrain)"),
    "control_rate_hz": (5.0, "control loop rate; the tasks are defined at 5 Hz"),
    "max_input_age_s": (0.5, "older robot state or detection makes the robot hold"),
    "max_hold_s": (5.0, "an episode holding longer than this is aborted"),
    "intervention_timeout_s": (
        float("nan"),
        "an active intervention (teleoperation) stamped longer ago than this before a tick is stale: not used, and "
        "one that steered in this episode aborts it (the device was lost); NaN: one control period"),
    "base_frame": (BASE_FRAME, "frame of targets and observations"),
    "cartesian_target_topic": (Topics.CARTESIAN_TARGET,
                               "PoseStamped target topic of the Cartesian impedance controller"),
    "joint_trajectory_topic": (Topics.JOINT_TRAJECTORY, "JointTrajectory topic of the joint controller"),
    "command_publisher_per_episode": (
        False, "publish targets only while an episode runs (the publisher is created at its start, removed after its "
               "end): for a controller that ignores targets while its topic has more than one publisher (crisp's), "
               "so the reset server can home the arm between episodes"),
    "robot_pose_topic": (Topics.ROBOT_POSE, "PoseStamped end-effector pose in base_frame (robot interface profile)"),
    "joint_state_topic": (Topics.MEASURED_JOINT_STATES, "JointState of the arm (robot interface profile)"),
    "max_stamp_future_s": (0.1, "a robot state or detection stamped further than this (s) ahead of the node's clock "
                                "is refused: it would never go stale"),
    "max_ee_speed_mps": (MAX_CARTESIAN_SPEED,
                         "a robot pose further than this speed times the time since the last accepted pose (+1 cm) "
                         "is refused and the robot holds: no real end effector moves faster (default: the FR3's "
                         "Cartesian velocity limit)"),
    "object_box_low": (NAN3, "a detected object outside this box (base frame, m) is refused; NaN: the task's "
                             "observation bounds of that coordinate (none where the task does not observe it)"),
    "object_box_high": (NAN3, "upper corner of the object box; NaN: the task's observation bounds"),
    "ee_orientation_xyzw": ([1.0, 0.0, 0.0, 0.0],
                            "fixed gripper orientation of Cartesian targets (default: pointing down)"),
    "workspace_low": (NAN3, "end-effector box low corner (m); NaN: the task's box"),
    "workspace_high": (NAN3, "end-effector box high corner (m); NaN: the task's box"),
    "max_step": ([float("nan")], "per-step delta limit per action axis (m or rad); NaN: the task's max_delta"),
    "constant_names": ([""], "names of task constants (e.g. goal_x, hole_z)"),
    "constant_values": ([0.0], "values of the task constants, same order"),
    "joint_zero_offsets": (
        [0.0] * len(JOINT_NAMES),
        "per arm joint fr3_joint1..7, the robot's reading (rad) at the zero the policy was trained with: "
        "observed joint positions are the measured ones minus this (hammer's checkpoint: joint 6 at pi/2, "
        "the simulator's MJCF counts joint 6 from a zero rotated by -pi/2). Joint targets are steps from the "
        "measured positions, in the robot's readings and limits"),
    "held_object_offset": (
        NAN3,
        "a task object rigidly held in the gripper (insert's leg): x, y, z (m) of its observed point in the "
        "end-effector frame (the robot pose's orientation), like a tool centre point; the object's position "
        "is then the robot pose plus this offset rotated, not a detection. NaN: not held, from perception"),
    "estop_state_file": ("~/.ros/sgft_estop", "file that keeps the e-stop engaged across restarts"),
    "episode_state_file": ("~/.ros/sgft_policy_episode.json",
                           "the running episode, so a restarted node marks it aborted"),
    "max_version_step": (100000, "a PolicyUpdate's version may exceed the running one by at most this; a larger "
                                 "jump is refused (a huge version would lock out every genuine update after it)"),
    "stats_period_s": (30.0, "how often loop timing statistics are logged"),
    "tick_waits_for_inputs": (
        False,
        "under sim time: a tick of a running episode waits (until the next tick at most) for the robot state "
        "(pose, and joint state where used) stamped at the tick, and for an object detection measured after "
        "the previous tick where the object comes from perception, when they have not arrived yet: the "
        "command is computed from the state the simulated robot scales it against and from the object as "
        "the last command left it; false: the newest inputs at hand (on the wall clock always)"),
}


@dataclass(frozen=True)
class PolicyParameters:
    """The validated parameters, in the types the node uses."""

    spec: TaskSpec
    checkpoint: str
    period: float  # s
    max_input_age: float
    max_hold: float
    intervention_timeout: float  # s
    command_publisher_per_episode: bool
    base_frame: str
    cartesian_target_topic: str
    joint_trajectory_topic: str
    orientation: np.ndarray  # x, y, z, w of Cartesian targets
    envelope: SafetyEnvelope
    constants: dict[str, float]
    joint_zero_offsets: dict[str, float]
    held_offset: np.ndarray | None  # None: the object comes from perception
    estop_file: Path
    episode_file: Path
    stats_period: float
    tick_waits_for_inputs: bool  # as asked for; the node honours it under sim time only
    max_version_step: int
    robot_pose_topic: str
    joint_state_topic: str
    max_stamp_future: float  # s
    max_ee_speed: float  # m/s
    object_low: np.ndarray  # the object box, base frame (m); ±inf where unbounded
    object_high: np.ndarray

    @classmethod
    def from_values(cls, p: Mapping[str, Any]) -> PolicyParameters:
        """Validate raw parameter values (every name of PARAMETERS); ParameterError says which one is wrong."""
        names, values = list(p["constant_names"]), list(p["constant_values"])
        if names == [""]:
            names, values = [], []
        if not 0.5 <= p["control_rate_hz"] <= 50.0:
            raise ParameterError(f"control_rate_hz={p['control_rate_hz']} outside [0.5, 50]")
        if not 0.0 < p["max_input_age_s"] <= 5.0:
            raise ParameterError(f"max_input_age_s={p['max_input_age_s']} outside (0, 5]")
        timeout = p["intervention_timeout_s"]
        timeout = 1.0 / p["control_rate_hz"] if np.isnan(timeout) else timeout
        if not 0.0 < timeout <= 5.0:
            raise ParameterError(f"intervention_timeout_s={p['intervention_timeout_s']} outside (0, 5] (or NaN)")
        step = p["max_version_step"]
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 2**32 - 1:
            raise ParameterError(f"max_version_step={step} is not an integer in [1, 2^32 - 1]")
        if not 0.0 < p["max_stamp_future_s"] <= 1.0:
            raise ParameterError(f"max_stamp_future_s={p['max_stamp_future_s']} outside (0, 1]")
        if not 0.1 <= p["max_ee_speed_mps"] <= 10.0:
            raise ParameterError(f"max_ee_speed_mps={p['max_ee_speed_mps']} outside [0.1, 10]")
        for name in ("robot_pose_topic", "joint_state_topic"):
            if not p[name]:
                raise ParameterError(f"{name} is empty")
        if not p["checkpoint"]:
            raise ParameterError("checkpoint is empty: give the pretrained checkpoint path")
        if len(names) != len(values):
            raise ParameterError("constant_names and constant_values differ in length")
        offsets = np.asarray(p["joint_zero_offsets"], dtype=float)
        if offsets.shape != (len(JOINT_NAMES),) or not np.all(np.abs(offsets) <= 2 * np.pi):
            raise ParameterError(f"joint_zero_offsets={offsets.tolist()}: give {len(JOINT_NAMES)} finite values "
                                 "within ±2π rad, one per arm joint")
        quat = np.asarray(p["ee_orientation_xyzw"], dtype=float)
        if quat.shape != (4,) or not np.isfinite(quat).all() or abs(np.linalg.norm(quat) - 1.0) > 1e-3:
            raise ParameterError(f"ee_orientation_xyzw={list(quat)} is not a unit quaternion")
        try:
            spec = get_task(p["task"])
        except ValueError as err:
            raise ParameterError(str(err)) from err
        constants = dict(zip(names, values, strict=True))
        missing = [n for n in observation_sources(spec)["constants"] if n not in constants]
        if missing:
            raise ParameterError(f"task {spec.name} needs constants {missing}: set constant_names/values")
        try:
            held_offset = parse_held_object_offset(p["held_object_offset"], spec)
            envelope = task_envelope(spec, p["max_step"], p["workspace_low"], p["workspace_high"])
            object_low, object_high = object_box(spec, p["object_box_low"], p["object_box_high"])
        except ValueError as err:
            raise ParameterError(str(err)) from err
        return cls(
            spec=spec, checkpoint=p["checkpoint"], period=1.0 / p["control_rate_hz"],
            max_input_age=p["max_input_age_s"], max_hold=p["max_hold_s"], intervention_timeout=timeout,
            command_publisher_per_episode=bool(p["command_publisher_per_episode"]),
            base_frame=p["base_frame"],
            cartesian_target_topic=p["cartesian_target_topic"], joint_trajectory_topic=p["joint_trajectory_topic"],
            orientation=quat, envelope=envelope, constants=constants,
            joint_zero_offsets=dict(zip(JOINT_NAMES, offsets.tolist(), strict=True)), held_offset=held_offset,
            estop_file=Path(os.path.expanduser(p["estop_state_file"])),
            episode_file=Path(os.path.expanduser(p["episode_state_file"])),
            stats_period=p["stats_period_s"], tick_waits_for_inputs=bool(p["tick_waits_for_inputs"]),
            max_version_step=step, robot_pose_topic=p["robot_pose_topic"], joint_state_topic=p["joint_state_topic"],
            max_stamp_future=p["max_stamp_future_s"], max_ee_speed=p["max_ee_speed_mps"], object_low=object_low,
            object_high=object_high)

    @staticmethod
    def defaults() -> dict[str, Any]:
        """Every parameter at its default (checkpoint still empty)."""
        return {name: default for name, (default, _) in PARAMETERS.items()}
