"""The real robot's reset server: ResetEpisode homes the arm through the profile's controller, then waits for the
operator to set up the scene and confirm it (std_srvs/Trigger on /sgft/confirm_reset). In sim mode the simulated
robot serves ResetEpisode instead; this node runs in the real graph only.

Homing. Cartesian tasks (push, insert) stream PoseStamped targets on the controller's target topic towards
`home_position` (the end effector, base frame); with `retract_height_m` the arm first rises to that height, crosses
above the table and lowers onto home, so a finger at the table's height does not sweep the object across it. Joint
tasks (hammer) stream JointTrajectory targets of the 7 FR3 joints towards the site's `home_joints`. Each target is
the measured state plus one bounded step (sgft_core SafetyEnvelope.bound: the task's box or the FR3's joint limits,
at most step_scale × the task's max_delta per axis from the measured state), sent at control_rate_hz until the
measured state is within tolerance of home. The reset fails (success false, the reason in the message) and nothing
more is sent when: home lies outside the box or limits, no fresh robot state arrives, no controller subscribes to the
target topic (or, for crisp's controller, another node publishes there: it would ignore both), the measured state
stops approaching its goal for stall_timeout_s (a controller that does not follow), homing takes longer than
homing_timeout_s, or an episode starts meanwhile. The target publisher exists only while homing, so the policy's is
the only one during an episode.

Scenes. `ResetEpisode.scene` indexes the site's `start_scenes` (object x, y): after homing the node logs "set up scene
i: object at (x, y)" and publishes it as a visualization_msgs/Marker (latched) for rviz. It then waits for the
operator's confirmation, at most confirm_timeout_s (0: forever); an unconfirmed reset fails. A reset during an episode
is refused as the simulated robot refuses it: the policy is asked to stop the episode, and the answer begins with
Services.RESET_EPISODE_RUNNING.

Executor: a reset takes seconds to minutes (homing, then a person), and meanwhile the node must keep receiving the
robot state, episode events and the confirmation. The reset handler runs in a ReentrantCallbackGroup on a
MultiThreadedExecutor (run_node(threads=...)) and blocks its own worker thread on threading.Event waits; the other
callbacks (short) share the node's default mutually exclusive group on the other threads. An async handler on the
single-threaded executor was the alternative, but rclpy (9.x, Kilted; Humble and Jazzy alike) resumes a pending
coroutine task at every pass of the executor: waiting minutes for an operator would busy-spin a core of the robot PC.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker

from sgft_core.command import task_envelope
from sgft_core.fr3 import BASE_FRAME, JOINT_HIGH, JOINT_LOW, JOINT_NAMES, joint_indices
from sgft_core.safety import SafetyEnvelope
from sgft_core.tasks import TASKS, TaskSpec
from sgft_interfaces import COMMAND_QOS, EPISODE_EVENT_QOS, ROBOT_STATE_QOS, SERVICE_QOS, Services, Topics
from sgft_interfaces.node_main import declared, run_node
from sgft_msgs.msg import EpisodeEvent
from sgft_msgs.srv import ResetEpisode, StopEpisode

START_SCENE_TOPIC = "/sgft/start_scene"
# The scene marker is latched: rviz started after the reset still shows what to set up.
SCENE_MARKER_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
# Worker threads: one blocked in a reset, one answering a concurrent reset's refusal, two for state and the rest.
EXECUTOR_THREADS = 4
# How often blocking waits look at shutdown and episode starts (s).
POLL_S = 0.1


# ------------------------------------------------------------------------------------------ homing (no ROS)
def homing_envelope(spec: TaskSpec, step_scale: float, workspace_low=None, workspace_high=None) -> SafetyEnvelope:
    """Box and per-step limit of what homing moves. Cartesian tasks: the end effector's x, y, z in the task's box
    (a site's tighter box wins); joint tasks: the 7 FR3 joints within their limits. Steps are step_scale × the task's
    max_delta on its action axes and step_scale × its smallest max_delta on the others (push's z, hammer's other
    joints). ValueError for a box wider than the task's or a step_scale outside (0, 1]."""
    if not 0.0 < step_scale <= 1.0:
        raise ValueError(f"step_scale={step_scale} must be in (0, 1]: homing never steps further than the policy")
    task_envelope(spec, None, workspace_low, workspace_high)  # refuses a box wider than the task's
    smallest = float(np.min(spec.max_delta))
    if spec.action_kind == "joint":
        step = np.full(len(JOINT_NAMES), smallest)
        step[joint_indices(spec.joint_names)] = spec.max_delta
        return SafetyEnvelope(JOINT_LOW, JOINT_HIGH, step * step_scale)
    low = spec.workspace_low if _absent(workspace_low) else np.asarray(workspace_low, dtype=np.float64)
    high = spec.workspace_high if _absent(workspace_high) else np.asarray(workspace_high, dtype=np.float64)
    step = np.full(3, smallest)
    step[: spec.action_dim] = spec.max_delta
    return SafetyEnvelope(low, high, step * step_scale)


def _absent(values) -> bool:
    return values is None or len(values) == 0 or bool(np.isnan(np.asarray(values, dtype=np.float64)).all())


def home_problem(spec: TaskSpec, envelope: SafetyEnvelope, home) -> str:
    """Why `home` cannot be homed to ("" when it can): missing, wrong size, not finite, outside the box or joint
    limits, or (push) off the height the policy moves at."""
    what = "home_joints" if spec.action_kind == "joint" else "home_position"
    if home is None or len(home) == 0:
        return f"no {what} given (the site file's, or the task YAML's sgft_reset_server.{what})"
    home = np.asarray(home, dtype=np.float64)
    if home.shape != envelope.low.shape or not np.all(np.isfinite(home)):
        return f"{what}={home.tolist()} needs {envelope.low.size} finite values"
    if not envelope.contains(home):
        where = "the FR3's joint limits" if spec.action_kind == "joint" else f"{spec.name}'s workspace box"
        return (f"{what}={home.tolist()} is outside {where} [{envelope.low.tolist()}, {envelope.high.tolist()}]")
    if spec.ee_height is not None and abs(home[2] - spec.ee_height) > 1e-3:
        return (f"{what} z={home[2]} differs from {spec.name}'s end-effector height {spec.ee_height}: the policy's "
                "first target would jump to that height")
    return ""


def distance(spec: TaskSpec, a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of end-effector positions (m); the largest joint difference (rad)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(diff))) if spec.action_kind == "joint" else float(np.linalg.norm(diff))


def cartesian_waypoint(measured: np.ndarray, home: np.ndarray, retract_height: float | None,
                       near: float) -> np.ndarray:
    """Where the end effector heads now. Without a retract height: home. With one, while more than `near` from home
    in x, y: up to that height where it is, then across at that height; once above home: down onto it."""
    measured, home = np.asarray(measured, dtype=np.float64), np.asarray(home, dtype=np.float64)
    if retract_height is None or np.linalg.norm(measured[:2] - home[:2]) <= near:
        return home.copy()
    lift = max(retract_height, home[2])
    if measured[2] < lift - near:
        return np.array([measured[0], measured[1], lift])
    return np.array([home[0], home[1], lift])


def next_target(envelope: SafetyEnvelope, measured: np.ndarray, goal: np.ndarray) -> np.ndarray | None:
    """One step from the measured state towards `goal`, inside the envelope; None without a finite measured state."""
    measured = np.asarray(measured, dtype=np.float64)
    return envelope.bound(measured, np.asarray(goal, dtype=np.float64) - measured)


class Progress:
    """Whether the measured state still approaches its goal. A controller that is not running, or ignores the
    targets, leaves the arm where it is: no improvement of at least `epsilon` for `stall_s` is a stall. A new goal
    (the next waypoint) starts the count again."""

    def __init__(self, stall_s: float, epsilon: float) -> None:
        self.stall_s, self.epsilon = stall_s, epsilon
        self.goal: np.ndarray | None = None
        self.best = math.inf
        self.since = 0.0

    def update(self, goal: np.ndarray, dist: float, now: float) -> bool:
        """False once the state has not come `epsilon` closer to `goal` for stall_s seconds."""
        if self.goal is None or not np.allclose(goal, self.goal):
            self.goal, self.best, self.since = np.array(goal, dtype=np.float64), dist, now
            return True
        if dist < self.best - self.epsilon:
            self.best, self.since = dist, now
        return now - self.since <= self.stall_s


def orientation_error(q_xyzw, target_xyzw) -> float:
    """Rotation angle (rad) between two unit quaternions (x, y, z, w)."""
    dot = abs(float(np.dot(np.asarray(q_xyzw, dtype=np.float64), np.asarray(target_xyzw, dtype=np.float64))))
    return 2.0 * math.acos(min(1.0, dot))


def scene_xy(scenes: list[float] | None, index: int) -> tuple[float, float] | str:
    """(x, y) of start scene `index` from the flattened list [x0, y0, x1, y1, ...], or why there is none."""
    count = len(scenes or []) // 2
    if count == 0:
        return f"scene {index} asked for, but the site file has no start_scenes"
    if not 0 <= index < count:
        return f"scene {index} does not exist: the site file has {count} start scenes (0 to {count - 1})"
    return float(scenes[2 * index]), float(scenes[2 * index + 1])


# ------------------------------------------------------------------------------------------------- the node
@dataclass
class _State:
    position: np.ndarray | None = None  # end effector, base frame
    orientation: np.ndarray | None = None  # x, y, z, w
    pose_at: float = -math.inf  # monotonic receipt time
    frame: str = ""
    joints: np.ndarray | None = None  # 7 FR3 joint readings
    joints_at: float = -math.inf


class ResetFailed(Exception):
    """A reset that cannot go on; the message is the answer's."""


class ResetServer(Node):
    def __init__(self) -> None:
        super().__init__("sgft_reset_server")
        declare = lambda *a: declared(self, *a)  # noqa: E731
        task = str(declare("task", "push", "task whose envelope bounds the homing steps"))
        if task not in TASKS:
            raise ValueError(f"task={task!r} is not one of {', '.join(TASKS)}")
        self.spec = spec = TASKS[task]
        self.pose_topic = str(declare("robot_pose_topic", Topics.ROBOT_POSE, "the robot's pose (profile)"))
        self.joint_topic = str(declare("joint_state_topic", Topics.MEASURED_JOINT_STATES,
                                       "the robot's measured joint states (profile)"))
        cartesian_topic = str(declare("cartesian_target_topic", Topics.CARTESIAN_TARGET,
                                      "PoseStamped target topic of the Cartesian controller (profile)"))
        joint_target_topic = str(declare("joint_trajectory_topic", Topics.JOINT_TRAJECTORY,
                                         "JointTrajectory topic of the joint controller (profile)"))
        self.base_frame = str(declare("base_frame", BASE_FRAME, "the robot's base frame (profile)"))
        self.single_publisher = bool(declare(
            "single_publisher", False, "the Cartesian controller ignores targets while its topic has more than one "
            "publisher (crisp's): homing refuses to add a second one"))
        self.home = declare("home_position" if spec.action_kind == "cartesian" else "home_joints",
                            Parameter.Type.DOUBLE_ARRAY,
                            "home: end-effector x y z (m, Cartesian tasks) or 7 FR3 joint readings (rad, hammer)")
        # the other one is declared too, so one parameter file serves every task
        declare("home_joints" if spec.action_kind == "cartesian" else "home_position", Parameter.Type.DOUBLE_ARRAY,
                "unused by this task's homing")
        low = declare("workspace_low", Parameter.Type.DOUBLE_ARRAY, "end-effector box low (default: the task's)")
        high = declare("workspace_high", Parameter.Type.DOUBLE_ARRAY, "end-effector box high (default: the task's)")
        step_scale = float(declare("step_scale", 0.5, "homing step per control period as a fraction of the task's "
                                                      "max_delta, in (0, 1]"))
        retract = float(declare("retract_height_m", float("nan"), "Cartesian homing first rises to this z, crosses, "
                                                                  "then lowers onto home (NaN: straight to home)"))
        self.retract = None if math.isnan(retract) else retract
        self.orientation = np.asarray(declare("ee_orientation_xyzw", [1.0, 0.0, 0.0, 0.0],
                                              "fixed gripper orientation of the targets, as the policy's"), float)
        self.max_orientation_error = float(declare(
            "max_orientation_error_rad", 0.5, "refuse Cartesian homing while the measured orientation is further "
            "from ee_orientation_xyzw: the controller would turn the hand in one jump"))
        rate = float(declare("control_rate_hz", 1.0 / spec.control_period, "targets per second while homing"))
        self.tolerance = float(declare("tolerance", 0.005 if spec.action_kind == "cartesian" else 0.01,
                                       "homed within this distance (m; joints: rad per joint)"))
        self.homing_timeout = float(declare("homing_timeout_s", 60.0, "longest homing before the reset fails"))
        self.stall_timeout = float(declare("stall_timeout_s", 3.0, "the reset fails when the measured state has not "
                                           "come closer to its goal for this long (a controller not following)"))
        self.state_timeout = float(declare("state_timeout_s", 1.0, "the robot state is missing when the newest is "
                                           "older than this (wall time of receipt)"))
        self.controller_wait = float(declare("controller_wait_s", 5.0, "wait this long for the controller to "
                                             "subscribe to the target topic before the reset fails"))
        self.confirm_timeout = float(declare("confirm_timeout_s", 0.0, "wait this long for the operator's "
                                             "confirmation of the scene (0: forever); unconfirmed, the reset fails"))
        scenes = declare("start_scenes", Parameter.Type.DOUBLE_ARRAY, "the site's start scenes, object x y pairs "
                         "flattened [x0, y0, x1, y1, ...] (base frame)")
        self.scenes = list(scenes or [])
        self.table_height = float(declare("table_height", 0.0, "z of the scene marker (the site's table height)"))
        numbers = {"control_rate_hz": rate, "tolerance": self.tolerance, "homing_timeout_s": self.homing_timeout,
                   "stall_timeout_s": self.stall_timeout, "state_timeout_s": self.state_timeout}
        bad = [f"{k}={v}" for k, v in numbers.items() if not (math.isfinite(v) and v > 0)]
        bad += [f"{k}={v}" for k, v in (("controller_wait_s", self.controller_wait),
                                        ("confirm_timeout_s", self.confirm_timeout)) if not (v >= 0)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be positive (waits: >= 0)")
        if len(self.scenes) % 2:
            raise ValueError(f"start_scenes has {len(self.scenes)} values: expected x y pairs")
        if self.orientation.shape != (4,) or abs(np.linalg.norm(self.orientation) - 1.0) > 1e-3:
            raise ValueError(f"ee_orientation_xyzw={self.orientation.tolist()} is not a unit quaternion")
        self.period = 1.0 / rate
        self.envelope = homing_envelope(spec, step_scale, low, high)
        self.home_problem = home_problem(spec, self.envelope, self.home)
        if self.home_problem:  # the node still answers, so the session shows why no reset works
            self.get_logger().error(f"every reset will fail: {self.home_problem}")
        self.target_topic = cartesian_topic if spec.action_kind == "cartesian" else joint_target_topic
        self.target_type = PoseStamped if spec.action_kind == "cartesian" else JointTrajectory

        self.lock = threading.Lock()
        self.state = _State()
        self.episode_running = False
        self.closing = threading.Event()
        self.confirmed = threading.Event()
        self.awaiting_confirmation = False
        self.busy = threading.Lock()  # one reset at a time
        reset_group = ReentrantCallbackGroup()
        self.create_subscription(PoseStamped, self.pose_topic, self._on_pose, ROBOT_STATE_QOS)
        self.create_subscription(JointState, self.joint_topic, self._on_joints, ROBOT_STATE_QOS)
        self.create_subscription(EpisodeEvent, Topics.EPISODE_EVENTS, self._on_episode_event, EPISODE_EVENT_QOS)
        self.create_service(ResetEpisode, Services.RESET_EPISODE, self._on_reset, qos_profile=SERVICE_QOS,
                            callback_group=reset_group)
        self.create_service(Trigger, Services.CONFIRM_RESET, self._on_confirm, qos_profile=SERVICE_QOS)
        self.stop_client = self.create_client(StopEpisode, Services.STOP_EPISODE)
        self.marker_pub = self.create_publisher(Marker, START_SCENE_TOPIC, SCENE_MARKER_QOS)
        home = "none" if self.home is None else [round(float(v), 4) for v in self.home]
        self.get_logger().info(f"reset server for {task}: home {home} via {self.target_topic}, "
                               f"{len(self.scenes) // 2} start scenes")

    # ------------------------------------------------------------------------------------------ inputs
    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        with self.lock:
            self.state.position = np.array([p.x, p.y, p.z])
            self.state.orientation = np.array([o.x, o.y, o.z, o.w])
            self.state.frame, self.state.pose_at = msg.header.frame_id, time.monotonic()

    def _on_joints(self, msg: JointState) -> None:
        by_name = dict(zip(msg.name, msg.position, strict=False))
        if not all(name in by_name for name in JOINT_NAMES):  # a gripper's message, or a partial one
            return
        with self.lock:
            self.state.joints = np.array([by_name[name] for name in JOINT_NAMES], dtype=np.float64)
            self.state.joints_at = time.monotonic()

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        with self.lock:
            self.episode_running = msg.event not in (EpisodeEvent.FINISHED, EpisodeEvent.ABORTED)

    def _on_confirm(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.lock:
            waiting = self.awaiting_confirmation
            if waiting:
                self.confirmed.set()
        response.success = waiting
        response.message = "scene confirmed" if waiting else "no reset is waiting for a confirmation"
        return response

    def _measured(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(homed coordinates, end-effector position, orientation) from fresh state; ResetFailed without it."""
        now = time.monotonic()
        with self.lock:
            s = self.state
            pose_age, joints_age = now - s.pose_at, now - s.joints_at
            position, orientation, joints, frame = s.position, s.orientation, s.joints, s.frame
        if pose_age > self.state_timeout:
            raise ResetFailed(f"no robot state: no pose on {self.pose_topic} for {self.state_timeout} s")
        if frame not in ("", self.base_frame):
            raise ResetFailed(f"the robot pose on {self.pose_topic} is in frame {frame!r}, not {self.base_frame!r}")
        if self.spec.action_kind == "cartesian":
            return position, position, orientation
        if joints_age > self.state_timeout:
            raise ResetFailed(f"no robot state: no joint state with {', '.join(JOINT_NAMES)} on {self.joint_topic} "
                              f"for {self.state_timeout} s")
        return joints, position, orientation

    # ------------------------------------------------------------------------------------------- reset
    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        if not self.busy.acquire(blocking=False):
            response.success, response.message = False, "a reset is already under way"
            return response
        try:
            response.message = self._reset(int(request.scene))
            response.success = True
        except ResetFailed as err:
            response.success, response.message = False, str(err)
            if response.message.startswith(Services.RESET_EPISODE_RUNNING):
                self.get_logger().warning(f"reset refused: {err}")
            else:
                self.get_logger().error(f"reset failed: {err}")
        except Exception as err:  # noqa: BLE001 - the caller must get an answer whatever went wrong
            response.success, response.message = False, f"reset failed: {type(err).__name__}: {err}"
            self.get_logger().error(response.message)
        finally:
            self.busy.release()
        return response

    def _reset(self, scene: int) -> str:
        with self.lock:
            running = self.episode_running
        if running:
            # Homing under a running episode would fight the policy's targets: ask the policy to end it first.
            self.stop_client.call_async(StopEpisode.Request(reason="reset requested while the episode ran"))
            raise ResetFailed(f"{Services.RESET_EPISODE_RUNNING}: asked the policy to abort it; reset again once it "
                              "has ended")
        if self.home_problem:
            raise ResetFailed(self.home_problem)
        xy = scene_xy(self.scenes, scene) if scene >= 0 else None
        if isinstance(xy, str):
            raise ResetFailed(xy)
        what = f"scene {scene}: object at ({xy[0]:.3f}, {xy[1]:.3f})" if xy else "any scene"
        self.get_logger().info(f"reset: homing, then set up {what}")
        error = self._home()
        with self.lock:  # open for the confirmation before showing the scene: an operator may answer at once
            self.confirmed.clear()
            self.awaiting_confirmation = True
        self._show_scene(scene, xy)
        self.get_logger().info(f"homed; set up {what}, then confirm: ros2 service call {Services.CONFIRM_RESET} "
                               "std_srvs/srv/Trigger")
        self._await_confirmation()
        unit = "m" if self.spec.action_kind == "cartesian" else "rad"
        return f"homed (within {error:.4f} {unit}), {what} confirmed"

    def _home(self) -> float:
        """Stream bounded targets until the measured state is within tolerance of home; its final distance."""
        spec, home = self.spec, np.asarray(self.home, dtype=np.float64)
        # a robot (or simulator) just brought up may not have published its state yet: wait as for its controller
        self._wait(lambda: time.monotonic() - self.state.pose_at <= self.state_timeout, self.controller_wait)
        start_measured, start_ee, start_orientation = self._measured()
        if distance(spec, start_measured, home) <= self.tolerance:
            return distance(spec, start_measured, home)
        if spec.action_kind == "cartesian":
            angle = orientation_error(start_orientation, self.orientation)
            if angle > self.max_orientation_error:
                raise ResetFailed(f"the hand is turned {angle:.2f} rad from ee_orientation_xyzw (more than "
                                  f"max_orientation_error_rad={self.max_orientation_error}): turn it back by hand")
        # joint homing cannot see the end effector's box: it must at least not leave it further than it started
        outside_at_start = _outside(self.spec, start_ee)
        if spec.action_kind == "cartesian" and self.single_publisher and self.count_publishers(self.target_topic):
            raise ResetFailed(f"{self.count_publishers(self.target_topic)} other publisher(s) on {self.target_topic}:"
                              " its controller ignores targets while more than one node publishes there")
        pub = self.create_publisher(self.target_type, self.target_topic, COMMAND_QOS)
        try:
            waited = self._wait(lambda: pub.get_subscription_count() > 0, self.controller_wait)
            if not waited:
                raise ResetFailed(f"no controller subscribes to {self.target_topic} (waited {self.controller_wait} s)")
            progress = Progress(self.stall_timeout, self.tolerance / 2)
            deadline = time.monotonic() + self.homing_timeout
            while True:
                if self.closing.is_set():
                    raise ResetFailed("the reset server is shutting down")
                with self.lock:
                    running = self.episode_running
                if running:
                    raise ResetFailed("an episode started during the reset: homing stopped")
                measured, ee, _ = self._measured()
                dist = distance(spec, measured, home)
                if dist <= self.tolerance:
                    return dist
                if spec.action_kind == "joint" and _outside(spec, ee) > outside_at_start + self.tolerance:
                    raise ResetFailed(f"joint homing took the end effector out of {spec.name}'s workspace box (at "
                                      f"{np.round(ee, 3).tolist()}): stopped; move the arm nearer home by hand")
                goal = (cartesian_waypoint(measured, home, self.retract, 2 * self.tolerance)
                        if spec.action_kind == "cartesian" else home)
                now = time.monotonic()
                if not progress.update(goal, distance(spec, measured, goal), now):
                    raise ResetFailed(f"the controller is not answering: the measured state has not moved towards "
                                      f"{np.round(goal, 3).tolist()} for {self.stall_timeout} s (targets on "
                                      f"{self.target_topic}; is its controller active?)")
                if now > deadline:
                    raise ResetFailed(f"homing took longer than homing_timeout_s={self.homing_timeout} (still "
                                      f"{dist:.3f} from home)")
                target = next_target(self.envelope, measured, goal)
                if target is None:
                    raise ResetFailed("the measured state is not finite")
                pub.publish(self._target_msg(target))
                if self.closing.wait(self.period):
                    raise ResetFailed("the reset server is shutting down")
        finally:
            self.destroy_publisher(pub)

    def _target_msg(self, target: np.ndarray) -> PoseStamped | JointTrajectory:
        stamp = self.get_clock().now().to_msg()
        if self.spec.action_kind == "cartesian":
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, self.base_frame
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in target)
            o = self.orientation
            msg.pose.orientation.x, msg.pose.orientation.y = float(o[0]), float(o[1])
            msg.pose.orientation.z, msg.pose.orientation.w = float(o[2]), float(o[3])
            return msg
        msg = JointTrajectory(joint_names=list(JOINT_NAMES))
        msg.header.stamp, msg.header.frame_id = stamp, self.base_frame
        point = JointTrajectoryPoint(positions=[float(v) for v in target])
        # reached one period from now: the controller interpolates, as for the policy's targets
        point.time_from_start.sec, point.time_from_start.nanosec = divmod(int(self.period * 1e9), 1_000_000_000)
        msg.points = [point]
        return msg

    def _show_scene(self, scene: int, xy: tuple[float, float] | None) -> None:
        marker = Marker(ns="start_scene", id=0)
        marker.header.stamp, marker.header.frame_id = self.get_clock().now().to_msg(), self.base_frame
        if xy is None:
            marker.action = Marker.DELETEALL
        else:
            marker.action, marker.type = Marker.ADD, Marker.CYLINDER
            marker.pose.position.x, marker.pose.position.y = xy
            marker.pose.position.z = self.table_height + 0.005
            marker.pose.orientation.w = 1.0
            marker.scale.x = marker.scale.y = 0.05
            marker.scale.z = 0.01
            marker.color.g, marker.color.a = 1.0, 0.6
            marker.text = f"scene {scene}"
        self.marker_pub.publish(marker)

    def _await_confirmation(self) -> None:
        """Wait for the confirmation _reset opened (awaiting_confirmation set before the scene was shown)."""
        try:
            timeout = self.confirm_timeout or math.inf
            if not self._wait(self.confirmed.is_set, timeout):
                if self.closing.is_set():
                    raise ResetFailed("the reset server is shutting down")
                raise ResetFailed(f"the operator did not confirm the scene within confirm_timeout_s="
                                  f"{self.confirm_timeout} (call {Services.CONFIRM_RESET})")
        finally:
            with self.lock:
                self.awaiting_confirmation = False

    def _wait(self, done, timeout_s: float) -> bool:
        """Block this (worker) thread until done() or timeout_s; False on timeout or shutdown."""
        deadline = time.monotonic() + timeout_s
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or self.closing.wait(min(POLL_S, left)):
                return done()
        return True

    def destroy_node(self) -> None:
        if hasattr(self, "closing"):  # not when the constructor refused to start
            self.closing.set()  # a reset waiting for a person returns at once, so the worker thread can be joined
        super().destroy_node()


def _outside(spec: TaskSpec, ee: np.ndarray | None) -> float:
    """How far (m) the end effector is outside the task's box; 0 inside or unknown."""
    if ee is None:
        return 0.0
    ee = np.asarray(ee, dtype=np.float64)
    return float(np.linalg.norm(np.maximum(spec.workspace_low - ee, 0.0) + np.maximum(ee - spec.workspace_high, 0.0)))


def main(args: list[str] | None = None) -> int:
    return run_node(ResetServer, "sgft_reset_server", refuse=(ValueError,), args=args, threads=EXECUTOR_THREADS)


if __name__ == "__main__":
    sys.exit(main())
