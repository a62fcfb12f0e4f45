"""The 5 Hz control loop: observation → actor → safety envelope → controller target, and one Transition per step.

Inputs (latest message of each, with its receipt time): robot pose and joint state from franka_ros2's state
broadcaster, the object detection from sgft_perception (or, for an object rigidly held in the gripper, its position
from the robot pose and the grasp: `held_object_offset`), new actor weights from the learner, the e-stop.
Every tick, if an episode runs and every input is fresh, finite and valid, the node publishes
  - the Transition of the previous step (s, a, r(s'), s', terminal, truncated, success), never held back,
  - the next controller target, bounded by sgft_core.safety.SafetyEnvelope whatever the actor said.
Otherwise it holds: no target is sent (the impedance controller keeps its last one), the pending transition is
dropped because its action was not held for one control period, and an EpisodeEvent says why. The e-stop stops
commands at once and is persisted to a file, so it survives a restart of this node until someone clears it.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sgft_core.checkpoint import CheckpointError, actor_from_bytes, actor_from_checkpoint
from sgft_core.observation import (
    assemble_observation,
    held_object_position,
    observation_sources,
    parse_held_object_offset,
)
from sgft_core.safety import SafetyEnvelope
from sgft_core.tasks import get_task
from sgft_interfaces import (
    CLOCK_QOS,
    COMMAND_QOS,
    EPISODE_EVENT_QOS,
    ESTOP_QOS,
    POLICY_UPDATE_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    TRANSITION_QOS,
    Services,
    Topics,
)
from sgft_interfaces.node_main import declared, run_node
from sgft_msgs.msg import EpisodeEvent, ObjectDetection, PolicyUpdate, Transition
from sgft_msgs.srv import StartEpisode, StopEpisode

ARM_JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))
# FR3 joint limits (rad), from Franka's datasheet; joint targets never leave them.
FR3_JOINT_LOW = np.array([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
FR3_JOINT_HIGH = np.array([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])


class ParameterError(ValueError):
    """A parameter is out of range at start-up; the node refuses to start."""


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("sgft_policy")
        p = self._declare_parameters()
        self.spec = get_task(p["task"])
        self.period = 1.0 / p["control_rate_hz"]
        self.max_input_age = p["max_input_age_s"]
        self.max_hold = p["max_hold_s"]
        self.frame_id = p["base_frame"]
        self.orientation = np.asarray(p["ee_orientation_xyzw"], dtype=float)
        self.constants = dict(zip(p["constant_names"], p["constant_values"], strict=True))
        self.joint_zero_offsets = dict(zip(ARM_JOINTS, p["joint_zero_offsets"], strict=True))
        self.needs = observation_sources(self.spec)
        missing = [n for n in self.needs["constants"] if n not in self.constants]
        if missing:
            raise ParameterError(f"task {self.spec.name} needs constants {missing}: set constant_names/values")
        try:
            self.held_offset = parse_held_object_offset(p["held_object_offset"], self.spec)
        except ValueError as err:
            raise ParameterError(str(err)) from err
        # the object comes from perception unless it is held (then detections are not waited for)
        self.uses_detection = bool(self.needs["object"]) and self.held_offset is None
        self.envelope = self._make_envelope(p)
        self.estop_file = Path(os.path.expanduser(p["estop_state_file"]))
        self.episode_file = Path(os.path.expanduser(p["episode_state_file"]))

        torch.set_num_threads(1)  # one small MLP at 5 Hz; leave the cores to the learner and the camera
        try:
            self.actor, self.policy_version = actor_from_checkpoint(p["checkpoint"], self.spec.name), 0
        except (CheckpointError, OSError) as err:
            raise ParameterError(f"cannot load checkpoint {p['checkpoint']!r}: {err}") from err
        self.actor.eval()

        # latest inputs: (message, measurement time in seconds of this node's clock)
        self.pose: tuple[PoseStamped, float] | None = None
        self.joints: tuple[JointState, float] | None = None
        self.detection: tuple[ObjectDetection, float] | None = None
        self.estop = self._read_estop_file()

        # episode state
        self.episode_id = 0
        self.running = False
        self.evaluation = False
        self.step_index = 0
        self.episode_return = 0.0
        self.pending: tuple[np.ndarray, np.ndarray] | None = None  # (s, a) waiting for s'
        self.hold_reason = ""
        self.hold_since: float | None = None
        self.joint_hold: np.ndarray | None = None  # targets of the joints a joint task does not move
        self.last_tick: float | None = None
        self.tick_periods: collections.deque[float] = collections.deque(maxlen=500)
        self.command_latencies: collections.deque[float] = collections.deque(maxlen=500)
        # how old (by its stamp, on this node's clock) the object detection is when a command is computed from it: a
        # detection older than about a period shows the object before the last command took effect
        self.detection_ages: collections.deque[float] = collections.deque(maxlen=500)
        self.tick_lateness: collections.deque[float] = collections.deque(maxlen=500)  # node clock past the multiple
        self.rejections: collections.Counter[str] = collections.Counter()

        self.create_subscription(PoseStamped, Topics.ROBOT_POSE, self._on_pose, ROBOT_STATE_QOS)
        self.create_subscription(JointState, Topics.MEASURED_JOINT_STATES, self._on_joints, ROBOT_STATE_QOS)
        self.create_subscription(ObjectDetection, Topics.OBJECT_DETECTION, self._on_detection, SENSOR_QOS)
        self.create_subscription(PolicyUpdate, Topics.POLICY_UPDATE, self._on_policy_update, POLICY_UPDATE_QOS)
        self.create_subscription(Bool, Topics.ESTOP, self._on_estop_topic, ESTOP_QOS)
        if self.spec.action_kind == "cartesian":
            self.command_pub = self.create_publisher(PoseStamped, p["cartesian_target_topic"], COMMAND_QOS)
        else:
            self.command_pub = self.create_publisher(JointTrajectory, p["joint_trajectory_topic"], COMMAND_QOS)
        self.transition_pub = self.create_publisher(Transition, Topics.TRANSITIONS, TRANSITION_QOS)
        self.event_pub = self.create_publisher(EpisodeEvent, Topics.EPISODE_EVENTS, EPISODE_EVENT_QOS)
        self.create_service(StartEpisode, Services.START_EPISODE, self._on_start)
        self.create_service(StopEpisode, Services.STOP_EPISODE, self._on_stop)
        self.create_service(SetBool, Services.SET_ESTOP, self._on_set_estop)
        self._recover_episode()
        # Ticks fall on multiples of the control period of this node's clock, so a simulated robot can phase its
        # camera frames to them and wait for each tick's command (sgft_sim.robot_node). An rcl timer would tick on
        # multiples counted from whenever it was created. Under sim time the tick runs in the callback of the /clock
        # message that crosses a multiple, so it never waits for the next one (a simulated robot that holds its
        # clock until it has the command would otherwise wait in vain); on the wall clock a poll at 1/50 of the
        # period ticks on the first reading past each multiple.
        self.tick_index: int | None = None
        # A tick waiting for the inputs of its time (tick_waits_for_inputs): its time in ns, else None.
        self.waiting_tick_ns: int | None = None
        self.tick_waits_for_inputs = bool(p["tick_waits_for_inputs"]) and bool(
            self.get_parameter("use_sim_time").value)
        if self.get_parameter("use_sim_time").value:
            self.create_subscription(Clock, Topics.CLOCK, self._on_clock_message, CLOCK_QOS)
        else:
            self.create_timer(self.period / 50.0, self._on_poll)
        self.create_timer(p["stats_period_s"], self._log_stats)
        self.get_logger().info(
            f"policy for task '{self.spec.name}' at {1 / self.period:.1f} Hz, checkpoint {p['checkpoint']}, "
            f"envelope low {self.envelope.low} high {self.envelope.high} step {self.envelope.max_step}"
            + (" — E-STOP ENGAGED (from state file)" if self.estop else ""))

    # ------------------------------------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> dict:
        declare = partial(declared, self)

        p = {
            "task": declare("task", "push", "task name in sgft_core.tasks (push, hammer, insert)"),
            "checkpoint": declare("checkpoint", "", "pretrained checkpoint to start from (sgft_sim.pretrain)"),
            "control_rate_hz": declare("control_rate_hz", 5.0, "control loop rate; the tasks are defined at 5 Hz"),
            "max_input_age_s": declare("max_input_age_s", 0.5, "older robot state or detection makes the robot hold"),
            "max_hold_s": declare("max_hold_s", 5.0, "an episode holding longer than this is aborted"),
            "base_frame": declare("base_frame", "fr3_link0", "frame of targets and observations"),
            "cartesian_target_topic": declare("cartesian_target_topic", Topics.CARTESIAN_TARGET,
                                              "PoseStamped target topic of the Cartesian impedance controller"),
            "joint_trajectory_topic": declare("joint_trajectory_topic", Topics.JOINT_TRAJECTORY,
                                              "JointTrajectory topic of the joint controller"),
            "ee_orientation_xyzw": declare("ee_orientation_xyzw", [1.0, 0.0, 0.0, 0.0],
                                           "fixed gripper orientation of Cartesian targets (default: pointing down)"),
            "workspace_low": declare("workspace_low", [float("nan")] * 3,
                                     "end-effector box low corner (m); NaN: the task's box"),
            "workspace_high": declare("workspace_high", [float("nan")] * 3,
                                      "end-effector box high corner (m); NaN: the task's box"),
            "max_step": declare("max_step", [float("nan")],
                                "per-step delta limit per action axis (m or rad); NaN: the task's max_delta"),
            "constant_names": declare("constant_names", [""], "names of task constants (e.g. goal_x, hole_z)"),
            "constant_values": declare("constant_values", [0.0], "values of the task constants, same order"),
            "joint_zero_offsets": declare(
                "joint_zero_offsets", [0.0] * len(ARM_JOINTS),
                "per arm joint fr3_joint1..7, the robot's reading (rad) at the zero the policy was trained with: "
                "observed joint positions are the measured ones minus this (hammer's checkpoint: joint 6 at pi/2, "
                "the simulator's MJCF counts joint 6 from a zero rotated by -pi/2). Joint targets are steps from the "
                "measured positions, in the robot's readings and limits"),
            "held_object_offset": declare(
                "held_object_offset", [float("nan")] * 3,
                "a task object rigidly held in the gripper (insert's leg): x, y, z (m) of its observed point in the "
                "end-effector frame (the robot pose's orientation), like a tool centre point; the object's position "
                "is then the robot pose plus this offset rotated, not a detection. NaN: not held, from perception"),
            "estop_state_file": declare("estop_state_file", "~/.ros/sgft_estop",
                                        "file that keeps the e-stop engaged across restarts"),
            "episode_state_file": declare("episode_state_file", "~/.ros/sgft_policy_episode.json",
                                          "the running episode, so a restarted node marks it aborted"),
            "stats_period_s": declare("stats_period_s", 30.0, "how often loop timing statistics are logged"),
            "tick_waits_for_inputs": declare(
                "tick_waits_for_inputs", False,
                "under sim time: a tick of a running episode waits (until the next tick at most) for the robot state "
                "(pose, and joint state where used) stamped at the tick, and for an object detection measured after "
                "the previous tick where the object comes from perception, when they have not arrived yet: the "
                "command is computed from the state the simulated robot scales it against and from the object as "
                "the last command left it; false: the newest inputs at hand (on the wall clock always)"),
        }
        if p["constant_names"] == [""]:
            p["constant_names"], p["constant_values"] = [], []
        if not 0.5 <= p["control_rate_hz"] <= 50.0:
            raise ParameterError(f"control_rate_hz={p['control_rate_hz']} outside [0.5, 50]")
        if not 0.0 < p["max_input_age_s"] <= 5.0:
            raise ParameterError(f"max_input_age_s={p['max_input_age_s']} outside (0, 5]")
        if not p["checkpoint"]:
            raise ParameterError("checkpoint is empty: give the pretrained checkpoint path")
        if len(p["constant_names"]) != len(p["constant_values"]):
            raise ParameterError("constant_names and constant_values differ in length")
        offsets = np.asarray(p["joint_zero_offsets"], dtype=float)
        if offsets.shape != (len(ARM_JOINTS),) or not np.all(np.abs(offsets) <= 2 * np.pi):
            raise ParameterError(f"joint_zero_offsets={offsets.tolist()}: give {len(ARM_JOINTS)} finite values within "
                                 "±2π rad, one per arm joint")
        quat = np.asarray(p["ee_orientation_xyzw"], dtype=float)
        if quat.shape != (4,) or not np.isfinite(quat).all() or abs(np.linalg.norm(quat) - 1.0) > 1e-3:
            raise ParameterError(f"ee_orientation_xyzw={list(quat)} is not a unit quaternion")
        return p

    def _make_envelope(self, p: dict) -> SafetyEnvelope:
        spec = self.spec
        step = np.asarray(p["max_step"], dtype=float)
        step = spec.max_delta if np.isnan(step).all() else step
        if step.shape != spec.max_delta.shape or np.any(step > spec.max_delta + 1e-12) or np.any(step <= 0):
            raise ParameterError(f"max_step={list(step)} must have {spec.action_dim} entries in (0, {spec.max_delta}]")
        if spec.action_kind == "joint":
            idx = [ARM_JOINTS.index(j) for j in spec.joint_names]
            return SafetyEnvelope(FR3_JOINT_LOW[idx], FR3_JOINT_HIGH[idx], step)
        low = np.asarray(p["workspace_low"], dtype=float)
        high = np.asarray(p["workspace_high"], dtype=float)
        low = spec.workspace_low if np.isnan(low).all() else low
        high = spec.workspace_high if np.isnan(high).all() else high
        if low.shape != (3,) or high.shape != (3,):
            raise ParameterError("workspace_low/high need 3 entries")
        # A user box may only shrink the task's box: the task's box is what the robot was cleared for.
        if np.any(low < spec.workspace_low - 1e-9) or np.any(high > spec.workspace_high + 1e-9):
            raise ParameterError(f"workspace box [{low}, {high}] exceeds the task's [{spec.workspace_low}, "
                                 f"{spec.workspace_high}]")
        axes = slice(0, spec.action_dim)  # push moves x, y; insert x, y, z
        try:
            return SafetyEnvelope(low[axes], high[axes], step)
        except ValueError as err:
            raise ParameterError(str(err)) from err

    # ---------------------------------------------------------------------------------------------------- inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp_of(self, msg) -> float:
        """When the data was measured: the header stamp (sim or wall time, as this node's clock), or the receipt
        time for publishers that leave it empty. Age is judged from this, so a queue delay counts as staleness."""
        stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
        return stamp if stamp > 0 else self._now()

    def _on_pose(self, msg: PoseStamped) -> None:
        self.pose = (msg, self._stamp_of(msg))
        self._run_waiting_tick()

    def _on_joints(self, msg: JointState) -> None:
        if len(msg.position) != len(msg.name):
            self._reject("joint_state", f"JointState with {len(msg.name)} names and {len(msg.position)} positions")
            return
        self.joints = (msg, self._stamp_of(msg))
        self._run_waiting_tick()

    def _on_detection(self, msg: ObjectDetection) -> None:
        self.detection = (msg, self._stamp_of(msg))
        self._run_waiting_tick()

    def _reject(self, kind: str, detail: str) -> None:
        """Count a rejected input; log the first of each kind, then every 100th."""
        self.rejections[kind] += 1
        n = self.rejections[kind]
        if n == 1 or n % 100 == 0:
            self.get_logger().warning(f"rejected {kind} (#{n}): {detail}")

    def _on_policy_update(self, msg: PolicyUpdate) -> None:
        if msg.task != self.spec.name:
            self._reject("policy_update", f"weights for task {msg.task!r}, this node runs {self.spec.name!r}")
            return
        if msg.version <= self.policy_version:
            return  # the transient-local replay of a version we already run
        try:
            # sha256 is mandatory here: an empty one fails the comparison, so unsigned weights are rejected.
            actor = actor_from_bytes(bytes(msg.weights), self.spec.name, msg.sha256, self.spec.obs_dim,
                                     self.spec.action_dim)
        except CheckpointError as err:
            self._reject("policy_update", f"version {msg.version}: {err}")
            return
        actor.eval()
        self.actor, self.policy_version = actor, msg.version
        self.get_logger().info(f"policy weights updated to version {msg.version}")

    # ---------------------------------------------------------------------------------------------------- e-stop
    def _read_estop_file(self) -> bool:
        try:
            return self.estop_file.read_text().strip() == "engaged"
        except FileNotFoundError:
            return False

    def _write_state(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: a crash leaves the old state or the new one, never half of it

    def _recover_episode(self) -> None:
        """Continue the episode numbering of the previous run; an episode it left running is marked aborted."""
        try:
            state = json.loads(self.episode_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        self.episode_id = int(state.get("episode_id", 0))
        if state.get("running"):
            self.step_index = int(state.get("steps", 0))
            self.evaluation = bool(state.get("evaluation", False))
            self._event(EpisodeEvent.ABORTED, "the policy node restarted during this episode")
            self.get_logger().warning(f"episode {self.episode_id} was running when this node stopped: "
                                      "marked ABORTED (neither success nor failure)")
            self._write_state(self.episode_file, json.dumps({"episode_id": self.episode_id, "running": False}))
            self.step_index = 0

    def _set_estop(self, engaged: bool, source: str) -> None:
        if engaged == self.estop:
            return
        self.estop = engaged
        self._write_state(self.estop_file, "engaged\n" if engaged else "cleared\n")
        if engaged:
            self.get_logger().error(f"E-STOP engaged by {source}: no more commands until it is cleared")
            if self.running:
                self._end_episode(EpisodeEvent.ABORTED, f"e-stop engaged by {source}")
        else:
            self.get_logger().warning(f"e-stop cleared by {source}")

    def _on_estop_topic(self, msg: Bool) -> None:
        self._set_estop(bool(msg.data), Topics.ESTOP)

    def _on_set_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._set_estop(bool(request.data), Services.SET_ESTOP)
        response.success, response.message = True, "engaged" if self.estop else "cleared"
        return response

    # -------------------------------------------------------------------------------------------------- episodes
    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response) -> StartEpisode.Response:
        if self.estop:
            response.accepted, response.message = False, "e-stop engaged"
        elif self.running:
            response.accepted, response.message = False, f"episode {self.episode_id} is running"
        elif not_ready := self._observe(self._now())[1]:
            # Refused rather than started on hold: at a graph's start the detections can reach the session before
            # they reach this node, and an episode that began holding was aborted after max_hold_s (its scene lost).
            response.accepted, response.message = False, f"{Services.START_NOT_READY}: {not_ready}"
        else:
            self.episode_id += 1
            self.running, self.evaluation = True, bool(request.evaluation)
            self.step_index, self.episode_return, self.pending = 0, 0.0, None
            self.hold_reason, self.hold_since, self.joint_hold = "", None, None
            self._write_state(self.episode_file, json.dumps(
                {"episode_id": self.episode_id, "running": True, "evaluation": self.evaluation}))
            self._event(EpisodeEvent.STARTED, "evaluation" if self.evaluation else "fine-tuning")
            response.accepted, response.episode_id = True, self.episode_id
        return response

    def _on_stop(self, request: StopEpisode.Request, response: StopEpisode.Response) -> StopEpisode.Response:
        if not self.running:
            response.stopped, response.message = False, "no episode is running"
        else:
            self._end_episode(EpisodeEvent.ABORTED, request.reason or "stopped by operator")
            response.stopped = True
        return response

    def _event(self, kind: int, reason: str = "", success: bool = False) -> None:
        msg = EpisodeEvent(task=self.spec.name, episode_id=self.episode_id, event=kind, reason=reason,
                           steps=self.step_index, episode_return=float(self.episode_return), success=success,
                           evaluation=self.evaluation, policy_version=self.policy_version)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        self.event_pub.publish(msg)

    def _end_episode(self, kind: int, reason: str, success: bool = False) -> None:
        self.running, self.pending = False, None
        self._write_state(self.episode_file, json.dumps({"episode_id": self.episode_id, "running": False}))
        self._event(kind, reason, success)
        verb = {EpisodeEvent.FINISHED: "finished", EpisodeEvent.ABORTED: "ABORTED"}[kind]
        self.get_logger().info(f"episode {self.episode_id} {verb} after {self.step_index} steps: {reason} "
                               f"(return {self.episode_return:.2f}, success {success})")

    # ------------------------------------------------------------------------------------------------ the loop
    def _observe(self, now: float) -> tuple[np.ndarray | None, str]:
        """The current observation, or None and the reason to hold."""
        if self.pose is None or now - self.pose[1] > self.max_input_age:
            return None, "robot pose stale or missing"
        pos = self.pose[0].pose.position
        ee = np.array([pos.x, pos.y, pos.z])
        q = dq = None
        if self.needs["joints"] or self.spec.action_kind == "joint":
            if self.joints is None or now - self.joints[1] > self.max_input_age:
                return None, "joint state stale or missing"
            js = self.joints[0]
            q = dict(zip(js.name, js.position, strict=True))
            dq = dict(zip(js.name, js.velocity, strict=False))
        obj = None
        if self.held_offset is not None:
            o = self.pose[0].pose.orientation
            try:
                obj = held_object_position(ee, (o.x, o.y, o.z, o.w), self.held_offset)
            except ValueError as err:
                return None, f"robot pose: {err}"
        elif self.needs["object"]:
            if self.detection is None or now - self.detection[1] > self.max_input_age:
                return None, "object detection stale or missing"
            det = self.detection[0]
            if not det.valid:
                return None, f"object detection invalid: {det.reason or 'no reason given'}"
            obj = np.array([det.position.x, det.position.y, det.position.z])
        try:
            obs = assemble_observation(self.spec, ee, q, dq, obj, self.constants,
                                       joint_zero_offsets=self.joint_zero_offsets)
        except ValueError as err:
            return None, str(err)
        if not self.spec.obs_in_bounds(obs):
            return None, f"observation non-finite or out of bounds: {np.array2string(obs, precision=3)}"
        return obs, ""

    def _on_poll(self) -> None:
        self._on_time(self.get_clock().now().nanoseconds)

    def _on_clock_message(self, msg: Clock) -> None:
        # this callback may run before the time source's own one for the same message: take the later of the two
        self._on_time(max(Time.from_msg(msg.clock).nanoseconds, self.get_clock().now().nanoseconds))

    def _on_time(self, now_ns: int) -> None:
        if now_ns == 0:
            return  # no /clock yet
        index = now_ns // round(self.period * 1e9)
        if index != self.tick_index:
            self.tick_index = index
            if self.running:
                self.tick_lateness.append(now_ns * 1e-9 - index * self.period)
            if self.waiting_tick_ns is not None:  # its state never came (a lost sample): act on what there is
                waiting, self.waiting_tick_ns = self.waiting_tick_ns, None
                self._tick(waiting)
            if self.tick_waits_for_inputs and self.running and self._inputs_behind(now_ns):
                self.waiting_tick_ns = now_ns  # run by the state callback that brings it
                return
            self._tick(now_ns)

    def _inputs_behind(self, now_ns: int) -> bool:
        """Whether this tick (time in ns) would act on robot state measured before it, or on a detection measured
        before the previous tick. The simulated robot publishes a step's state, and waits for the detection of the
        frame it renders one step before a tick, before the /clock of the tick; over separate topics the clock can
        still be handled first. It scales each command against the state at the command's stamp."""
        t = now_ns * 1e-9 - 1e-6
        if self.pose is None or self.pose[1] < t:
            return True
        uses_joints = bool(self.needs["joints"]) or self.spec.action_kind == "joint"
        if uses_joints and (self.joints is None or self.joints[1] < t):
            return True
        return self.uses_detection and (self.detection is None or self.detection[1] <= t - self.period)

    def _run_waiting_tick(self) -> None:
        if self.waiting_tick_ns is not None and not self._inputs_behind(self.waiting_tick_ns):
            waiting, self.waiting_tick_ns = self.waiting_tick_ns, None
            self._tick(waiting)

    def _tick(self, now_ns: int) -> None:
        now = now_ns * 1e-9
        wall = time.perf_counter()
        if self.last_tick is not None and self.running:
            self.tick_periods.append(wall - self.last_tick)  # wall clock: what the controller experiences
        self.last_tick = wall
        if not self.running or self.estop:
            return
        wall_start = time.perf_counter()
        obs, reason = self._observe(now)
        if obs is None:
            self._hold(reason, now)
            return
        if self.hold_since is not None:
            self._event(EpisodeEvent.RESUMED, f"inputs fresh again after {self.hold_reason}")
            self.get_logger().info(f"resuming episode {self.episode_id}: {self.hold_reason} cleared")
            self.hold_since, self.hold_reason = None, ""

        if self.pending is not None:
            done = self._publish_transition(*self.pending, obs, now_ns)
            self.pending = None
            if done:
                return
        action = np.asarray(self.actor.act(obs, deterministic=self.evaluation), dtype=np.float32)
        target = self._command(obs, action, Time(nanoseconds=now_ns).to_msg())
        if target is None:
            self._hold("no safe target for the current state", now)
            return
        self.pending = (obs, action)
        self.command_latencies.append(time.perf_counter() - wall_start)
        if self.uses_detection:
            self.detection_ages.append(now - self.detection[1])

    def _hold(self, reason: str, now: float) -> None:
        if self.pending is not None:
            self.pending = None  # its action was not held for one period: not a valid transition
        if self.hold_since is None or reason != self.hold_reason:
            self.get_logger().warning(f"holding position in episode {self.episode_id}: {reason}")
            self._event(EpisodeEvent.HOLDING, reason)
            self.hold_since = now if self.hold_since is None else self.hold_since
            self.hold_reason = reason
        if now - self.hold_since > self.max_hold:
            self._end_episode(EpisodeEvent.ABORTED, f"held for more than {self.max_hold:.1f} s: {reason}")

    def _publish_transition(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, tick_ns: int) -> bool:
        spec = self.spec
        reward = float(spec.reward(next_obs))
        success = bool(spec.success(next_obs))
        terminal = bool(spec.terminal(next_obs))
        self.step_index += 1
        truncated = self.step_index >= spec.episode_length and not terminal
        self.episode_return += reward
        msg = Transition(task=spec.name, episode_id=self.episode_id, step=self.step_index - 1,
                         obs=obs.tolist(), action=action.tolist(), reward=reward, next_obs=next_obs.tolist(),
                         terminal=terminal, truncated=truncated, success=success, policy_version=self.policy_version)
        # stamped with the tick next_obs was observed at (as commands are): under sim time the node's clock can still
        # read the previous /clock when the tick runs
        msg.header.stamp = Time(nanoseconds=tick_ns).to_msg()
        msg.header.frame_id = self.frame_id
        if not self.evaluation:  # evaluation episodes measure the policy; they do not feed the learner
            self.transition_pub.publish(msg)
        if terminal or truncated:
            self._end_episode(EpisodeEvent.FINISHED, "terminal state" if terminal else "time limit", success)
            return True
        return False

    def _command(self, obs: np.ndarray, action: np.ndarray, stamp) -> np.ndarray | None:
        """Bound the actor's action to a safe target and publish it stamped with its tick's time; returns the target
        (None: nothing sent)."""
        spec = self.spec
        delta = np.clip(np.nan_to_num(action, nan=0.0), -1.0, 1.0) * spec.max_delta
        if spec.action_kind == "cartesian":
            ee = np.array([self.pose[0].pose.position.x, self.pose[0].pose.position.y,
                           self.pose[0].pose.position.z])
            target = self.envelope.bound(ee[: spec.action_dim], delta)
            if target is None:
                return None
            xyz = np.append(target, spec.ee_height) if spec.action_dim == 2 else target
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
            o = self.orientation
            msg.pose.orientation.x, msg.pose.orientation.y = float(o[0]), float(o[1])
            msg.pose.orientation.z, msg.pose.orientation.w = float(o[2]), float(o[3])
        else:
            js = self.joints[0]
            positions = dict(zip(js.name, js.position, strict=True))
            if any(j not in positions for j in ARM_JOINTS):
                return None
            if self.joint_hold is None:
                self.joint_hold = np.array([positions[j] for j in ARM_JOINTS])
            current = np.array([positions[j] for j in spec.joint_names])
            target = self.envelope.bound(current, delta)
            if target is None:
                return None
            full = self.joint_hold.copy()
            for name, value in zip(spec.joint_names, target, strict=True):
                full[ARM_JOINTS.index(name)] = value
            msg = JointTrajectory(joint_names=list(ARM_JOINTS))
            msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
            point = JointTrajectoryPoint(positions=full.tolist())
            point.time_from_start.sec = 0
            point.time_from_start.nanosec = int(self.period * 1e9)
            msg.points = [point]
        self.command_pub.publish(msg)
        return target

    # ------------------------------------------------------------------------------------------------ statistics
    def timing_stats(self) -> dict:
        """Wall-clock loop periods during episodes (under sim time the nominal wall period is period / time scale,
        so jitter is taken around the median), the observation-to-command compute latency, how late each tick ran
        after its multiple of the period and the age of the object detection each command was computed from (these
        two on this node's clock: sim time under the simulated robot)."""
        periods = np.array(self.tick_periods) if self.tick_periods else np.array([self.period])
        latency = np.array(self.command_latencies) if self.command_latencies else np.array([0.0])
        return {
            "period_median_ms": 1e3 * float(np.median(periods)),
            "period_jitter_p99_ms": 1e3 * float(np.percentile(np.abs(periods - np.median(periods)), 99)),
            "obs_to_command_median_ms": 1e3 * float(np.median(latency)),
            "obs_to_command_p99_ms": 1e3 * float(np.percentile(latency, 99)),
            **({"tick_lateness_median_ms": 1e3 * float(np.median(self.tick_lateness)),
                "tick_lateness_p99_ms": 1e3 * float(np.percentile(self.tick_lateness, 99))}
               if self.tick_lateness else {}),
            **({"detection_age_median_ms": 1e3 * float(np.median(self.detection_ages)),
                "detection_age_p99_ms": 1e3 * float(np.percentile(self.detection_ages, 99))}
               if self.detection_ages else {}),
            "rejections": dict(self.rejections),
        }

    def _log_stats(self) -> None:
        if self.tick_periods:
            self.get_logger().info("loop timing " + json.dumps(self.timing_stats()))


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, "sgft_policy", refuse=(ParameterError,), args=args)


if __name__ == "__main__":
    sys.exit(main())
