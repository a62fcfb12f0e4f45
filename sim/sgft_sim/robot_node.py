"""The simulated robot: a sim-to-sim "real" proxy behind the topics of franka_ros2 and realsense2_camera.

It steps the MuJoCo env in small chunks and publishes, as the real drivers would:
  /clock (sim time; faster than real time by default, real time with time_scale:=1.0),
  robot pose, measured joint states and /joint_states (best effort, like franka_robot_state_broadcaster; joint
  positions in the FR3's readings, sgft_core.fr3.MJCF_JOINT_ZERO_OFFSET),
  colored PointCloud2s in the realsense layout from one or two simulated D455s (only while subscribed, like the driver),
  and each camera's color image (rgb8) with its CameraInfo (only while either is subscribed; for calibration),
and tracks the Cartesian (PoseStamped) or joint (JointTrajectory) targets it receives. With no new target it holds
the last one, as the impedance controller does. The proxy's gaps apply to commands here too: the commanded change is
rescaled (action_scale, by sgft_core.command.scale_command as in the env) and each command takes effect after a random
delay (latency), so that the action is held for a random 0.6–1.4 control periods (the proxy's `hold_periods`). The env
reproduces this robot's timing with `latency_model="command_delay"` (sgft_sim.proxies), so the benchmark can run what
the graph runs.
The object's true position goes out on a debug topic so tests can grade perception.

Camera timing. A real D455 streams at 30 Hz, so the cloud behind the policy's detection is a few tens of ms old at
each 5 Hz tick. Rendering 30 Hz clouds in the sim would eat these two cores, so the sim renders few frames but puts
them where they count: one state step before each multiple of the camera period (the policy node ticks on multiples
of its control period), and, while a perception node is up, it waits (wall time, bounded by
perception_sync_timeout_s) for the detections of a frame before it advances the clock. The detection a tick acts on
is then one state step old (sim time) whatever the load on the machine, as the benchmark env's observation is; a
free-running camera lagged 80–400 ms here, up to two whole control steps.

Command timing. For the same reason, during an episode (the policy node's EpisodeEvents: started or resumed, not
holding or ended) the sim holds its clock at each multiple of the task's control period until the policy's command
for that tick has arrived (bounded by command_sync_timeout_s). A loaded machine then slows the graph down instead of
applying commands one or more state steps late, which the benchmark env never does (in a full demo the policy's
command came a median 20 ms, p99 120 ms of sim time after its tick).

Wall-clock mode (wall_clock:=true, for measuring the graph at a real robot's rates: sgft_bringup.realtime_bench).
The node then behaves like the real drivers instead: state, clouds and images are stamped with the node's own clock
(use_sim_time must be false; a state with the time it is due at, so a stall shows as late states, not as a fast arm),
no /clock is published, physics runs at real time (time_scale and idle_time_scale are ignored), and it never waits
for detections or commands (both sync timeouts are ignored): a late command takes effect late, as on the real robot.
Clouds go out at every multiple of the camera period (30 Hz as a D455) on the wall clock, whatever the state rate.
Rendering cannot keep that pace here (an 848×480 cloud costs ≈80 ms of a core, 30 Hz would need 2.4 cores), so a
render thread draws a new cloud only every cloud_render_every-th camera period and the latest cloud is re-stamped and
published again at each period in between: the transport and perception load are a real camera's, but the scene in a
cloud lags the robot by up to cloud_render_every camera periods plus a render.
"""

from __future__ import annotations

import collections
import copy
import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from trajectory_msgs.msg import JointTrajectory

from sgft_core.command import scale_command
from sgft_core.fr3 import BASE_FRAME, JOINT_NAMES, MJCF_JOINT_ZERO_OFFSET
from sgft_core.seeds import EVAL_SEED
from sgft_interfaces import (
    COMMAND_QOS,
    EPISODE_EVENT_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    SERVICE_QOS,
    Services,
    Topics,
)
from sgft_interfaces.node_main import declared, run_node
from sgft_interfaces.pointcloud2 import build_pointcloud2
from sgft_interfaces.stamps import stamp_ns, stamp_problem
from sgft_msgs.msg import EpisodeEvent, ObjectDetection
from sgft_msgs.srv import ResetEpisode, StopEpisode
from sgft_sim import make_env
from sgft_sim.base_env import ROBOT_NODE_STATE_PERIOD
from sgft_sim.camera import (
    CAMERA_NAMES,
    color_image_topic,
    color_info_topic,
    color_optical_frame,
    intrinsics,
    render_color,
    render_point_cloud,
)

# Sim seconds a peer's stamp may lead the sim's clock (a command is stamped with the tick it answers).
MAX_STAMP_FUTURE_S = 1.0
# Color images and camera_info: reliable like realsense2_camera's default, so best-effort and reliable subscribers
# (rviz) both get them; newest only, a 1.2 MB image must not queue up.
IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def _stamp(seconds: float) -> TimeMsg:
    sec = int(seconds)
    return TimeMsg(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def _stamp_ns(ns: int) -> TimeMsg:
    sec, nanosec = divmod(ns, 1_000_000_000)
    return TimeMsg(sec=sec, nanosec=nanosec)


# name -> (default, description); the default's type is the parameter's type.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "task": ("push", "task whose scene is simulated (push, hammer, insert)"),
    "proxy": ("real", "sim-to-sim proxy: sim, real, deformable (push)"),
    "seed": (0, "seed of the first reset; later resets continue the sequence"),
    "time_scale": (4.0, "sim seconds per wall second (1.0 = real time)"),
    "idle_time_scale": (
        0.0, "time scale between episodes (0 = time_scale): lower, it leaves the CPU to a learner catching up, while "
        "the camera still shows the scene; from a reset until the episode starts the sim runs at time_scale (the "
        "session waits for a detection of the reset scene)"),
    "state_rate_hz": (1.0 / ROBOT_NODE_STATE_PERIOD,
                      "robot state rate (sim time), up to 1000 Hz as a real FR3's broadcasters; also the physics step "
                      "at which commands take effect"),
    "camera_rate_hz": (5.0, "point cloud rate per camera (sim time)"),
    "cameras": (["camera1"], f"simulated cameras, from {list(CAMERA_NAMES)}"),
    "cloud_width": (424, "depth width (848 or 424 on a D455)"),
    "cloud_height": (240, "depth height (480 or 240 on a D455)"),
    "image_width": (848, "color image width (rendered only while the image or camera_info is subscribed)"),
    "image_height": (480, "color image height"),
    "image_render_arm": (True, "draw the arm's meshes in color images (False: cheaper, nothing occludes the marker)"),
    "perception_sync_timeout_s": (
        1.0, "wall seconds the sim waits for perception's detections of each frame before it goes on (only while a "
        "perception node is up; 0 = free-running camera)"),
    "command_sync_timeout_s": (
        1.0, "wall seconds the sim waits at each control tick of a running episode for the policy's command before "
        "it goes on (0 = never waits)"),
    "cartesian_target_topic": (Topics.CARTESIAN_TARGET, "Cartesian target topic"),
    "reset_service": (Services.RESET_EPISODE,
                      "the ResetEpisode service it serves: the graph's (sim mode), or in real-sim mode the operator's "
                      "hands that set up a scene while the reset server homes the arm (a scene i is the evaluation "
                      "seed's: EVAL_SEED + i)"),
    "joint_trajectory_topic": (Topics.JOINT_TRAJECTORY, "joint trajectory topic"),
    # the robot interface profile this simulated robot speaks (sgft_bringup/config/profiles)
    "robot_pose_topic": (Topics.ROBOT_POSE, "end-effector pose topic (PoseStamped)"),
    "joint_state_topic": (Topics.MEASURED_JOINT_STATES, "measured joint state topic (JointState)"),
    "base_frame": (BASE_FRAME, "frame of the published pose and of accepted Cartesian targets"),
    "state_reliability": ("best_effort", "QoS reliability of the state topics: best_effort or reliable"),
    "wall_clock": (
        False, "real-robot timing: stamp with the node's clock (use_sim_time false), no /clock, real time (time_scale "
        "and idle_time_scale ignored), never wait for detections or commands (the sync timeouts ignored), clouds at "
        "camera_rate_hz on the wall clock (see cloud_render_every)"),
    "cloud_render_every": (
        1, "wall_clock only: render a new cloud every this many camera periods and publish the latest one re-stamped "
        "at the periods between (the scene in a cloud lags by up to this many periods; rendering every 30 Hz frame "
        "needs more cores than a workstation has)"),
}
STATE_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
MAX_STATE_RATE_HZ = 1000.0
# Commands are scaled against the state at their stamp: keep that much history whatever the state rate.
HISTORY_S = 2.0
WALL_CLOCK_STATS_PERIOD_S = 10.0  # how often wall-clock mode logs the rates it achieved
# Wall clock: how far the physics may fall behind the clock (a stall) and catch up in a burst of due-stamped states;
# beyond it the lost time is skipped. A few state periods at 1 kHz, well inside the policy's input age limit.
MAX_WALL_CLOCK_LAG_S = 0.02


@dataclass(frozen=True)
class SimRobotParameters:
    """The validated parameters; ValueError says which one is wrong."""

    task: str
    proxy: str
    seed: int
    time_scale: float
    idle_time_scale: float
    state_period: float  # s of sim time
    camera_period: float
    camera_steps: int  # state steps between frames of a camera
    cameras: tuple[str, ...]
    cloud_size: tuple[int, int]  # width, height
    image_size: tuple[int, int]
    image_render_arm: bool
    sync_timeout: float
    command_timeout: float
    cartesian_target_topic: str
    joint_trajectory_topic: str
    robot_pose_topic: str
    joint_state_topic: str
    base_frame: str
    state_reliability: str
    wall_clock: bool = False
    render_every: int = 1  # camera periods per rendered cloud (wall_clock)

    @classmethod
    def from_values(cls, p: Mapping[str, Any]) -> SimRobotParameters:
        time_scale = float(p["time_scale"])
        idle_time_scale = float(p["idle_time_scale"]) or time_scale
        for name, value in (("time_scale", time_scale), ("idle_time_scale", idle_time_scale)):
            if not 0.05 <= value <= 50.0:
                raise ValueError(f"{name}={value} outside [0.05, 50]")
        for name in ("perception_sync_timeout_s", "command_sync_timeout_s"):
            if not 0.0 <= float(p[name]) <= 10.0:
                raise ValueError(f"{name}={float(p[name])} outside [0, 10]")
        if not 1.0 <= float(p["state_rate_hz"]) <= MAX_STATE_RATE_HZ:
            raise ValueError(f"state_rate_hz={p['state_rate_hz']} outside [1, {MAX_STATE_RATE_HZ:g}]")
        if p["state_reliability"] not in STATE_RELIABILITY:
            raise ValueError(f"state_reliability={p['state_reliability']!r}: choose from {list(STATE_RELIABILITY)}")
        for name in ("robot_pose_topic", "joint_state_topic", "base_frame", "cartesian_target_topic",
                     "joint_trajectory_topic"):
            if not str(p[name]).strip():
                raise ValueError(f"{name} must not be empty")
        wall_clock, render_every = bool(p["wall_clock"]), int(p["cloud_render_every"])
        if not 1 <= render_every <= 1000:
            raise ValueError(f"cloud_render_every={render_every} outside [1, 1000]")
        sync_timeout, command_timeout = float(p["perception_sync_timeout_s"]), float(p["command_sync_timeout_s"])
        if wall_clock:  # a real robot neither waits for the graph nor runs faster than real time
            time_scale = idle_time_scale = 1.0
            sync_timeout = command_timeout = 0.0
        state_period, camera_period = 1.0 / float(p["state_rate_hz"]), 1.0 / float(p["camera_rate_hz"])
        # Frames fall on whole state steps: camera_steps steps apart, one step before a multiple of the camera period
        # (on the wall clock the camera keeps its own time instead).
        camera_steps = max(1, round(camera_period / state_period))
        if not wall_clock and abs(camera_steps * state_period - camera_period) > 1e-9:
            raise ValueError(f"camera_rate_hz: the camera period {camera_period} s is not a whole number of "
                             f"state periods ({state_period} s)")
        cameras = tuple(p["cameras"])
        if not (16 <= int(p["image_width"]) <= 1280 and 16 <= int(p["image_height"]) <= 960):
            raise ValueError(f"image_width x image_height = {p['image_width']} x {p['image_height']} outside "
                             "[16, 1280] x [16, 960] (the model's off-screen buffer)")
        if not set(cameras) <= set(CAMERA_NAMES) or not cameras:
            raise ValueError(f"cameras={list(cameras)}: choose from {list(CAMERA_NAMES)}")
        return cls(task=p["task"], proxy=p["proxy"], seed=int(p["seed"]), time_scale=time_scale,
                   idle_time_scale=idle_time_scale, state_period=state_period, camera_period=camera_period,
                   camera_steps=camera_steps, cameras=cameras,
                   cloud_size=(int(p["cloud_width"]), int(p["cloud_height"])),
                   image_size=(int(p["image_width"]), int(p["image_height"])),
                   image_render_arm=bool(p["image_render_arm"]),
                   sync_timeout=sync_timeout, command_timeout=command_timeout,
                   cartesian_target_topic=p["cartesian_target_topic"],
                   joint_trajectory_topic=p["joint_trajectory_topic"], robot_pose_topic=p["robot_pose_topic"],
                   joint_state_topic=p["joint_state_topic"], base_frame=p["base_frame"],
                   state_reliability=p["state_reliability"], wall_clock=wall_clock, render_every=render_every)

    def control_steps(self, control_period: float) -> int:
        """State steps per control period; ValueError unless it is a whole number of them."""
        steps = round(control_period / self.state_period)
        if abs(steps * self.state_period - control_period) > 1e-9:
            raise ValueError(f"state_rate_hz: the control period {control_period} s is not a whole number of state "
                             f"periods ({self.state_period} s)")
        return steps

    @staticmethod
    def defaults() -> dict[str, Any]:
        return {name: default for name, (default, _) in PARAMETERS.items()}


class SimRobotNode(Node):
    def __init__(self) -> None:
        super().__init__("sgft_sim_robot")
        p = self.params = SimRobotParameters.from_values(
            {name: declared(self, name, default, doc) for name, (default, doc) in PARAMETERS.items()})
        self.env = make_env(p.task, p.proxy, seed=p.seed)
        if p.state_period < self.env.model.opt.timestep:  # a 1 kHz state needs physics steps of at most 1 ms
            self.env.model.opt.timestep = p.state_period
        self.spec = self.env.task
        self.control_steps = p.control_steps(self.spec.control_period)
        self.proxy = self.env.proxy
        self.rng = np.random.default_rng(p.seed + 1)
        self.lock = threading.Lock()
        self.pending: list[tuple[float, tuple[str, np.ndarray]]] = []  # (sim time to apply, scaled command)
        self.steps = 0  # state steps since start: sim time is steps * state_period (no drift from adding floats)
        # (step, ee position, joint positions) as published (joints in the env's MJCF readings), for scaling a command
        # against what it was computed from; on the wall clock the stamp (ns) stands in for the step
        self.history: collections.deque[tuple[int, np.ndarray, np.ndarray]] = collections.deque(
            maxlen=round(HISTORY_S / p.state_period))
        self.sim_time = 0.0
        # what the sim thread waits for from the graph: detections of its frames, the policy's command of a tick
        self.graph_input = threading.Condition()
        self.detected_stamps: dict[int, int] = {}  # frame stamp (ns) -> detections seen with it
        self.command_stamp_ns = -1  # of the newest command
        # from a reset (an episode is about to start: the session waits for the reset scene's detection) until the
        # policy's FINISHED / ABORTED event: the sim runs at time_scale, otherwise at idle_time_scale
        self.episode_under_way = False
        self.commands_expected = False  # an episode runs and the policy is not holding
        self.episode_running = False  # from the policy's STARTED to its FINISHED / ABORTED
        self.resets = 0
        self.env.reset(seed=p.seed)
        if p.wall_clock and self.get_parameter("use_sim_time").value:
            raise ValueError("wall_clock needs use_sim_time false: the node stamps with its own clock and publishes "
                             "no /clock")
        # wall clock: the newest cloud message of each camera, re-stamped and published every camera period
        self.latest_clouds: dict[str, PointCloud2] = {}
        self.render_wanted = threading.Condition()
        self.render_requested = False
        self.wall_counts = collections.Counter()  # state steps, clouds published and rendered, camera periods missed
        self.wall_counts_lock = threading.Lock()  # three threads count

        self.clock_pub = None if p.wall_clock else self.create_publisher(Clock, Topics.CLOCK, 10)
        state_qos = QoSProfile(depth=ROBOT_STATE_QOS.depth, history=HistoryPolicy.KEEP_LAST,
                               reliability=STATE_RELIABILITY[p.state_reliability])
        self.pose_pub = self.create_publisher(PoseStamped, p.robot_pose_topic, state_qos)
        self.measured_pub = self.create_publisher(JointState, p.joint_state_topic, state_qos)
        # robot_state_publisher's input, unless the profile's joint state is that topic already
        self.joint_states_pub = (self.create_publisher(JointState, Topics.JOINT_STATES, state_qos)
                                 if p.joint_state_topic != Topics.JOINT_STATES else None)
        self.truth_pub = self.create_publisher(PointStamped, Topics.SIM_OBJECT_TRUTH, ROBOT_STATE_QOS)
        self.cloud_pubs = {name: self.create_publisher(PointCloud2, Topics.CAMERA_CLOUDS[CAMERA_NAMES.index(name)],
                                                       SENSOR_QOS) for name in p.cameras}
        self.image_pubs = {name: self.create_publisher(Image, color_image_topic(name), IMAGE_QOS) for name in p.cameras}
        self.info_pubs = {name: self.create_publisher(CameraInfo, color_info_topic(name), IMAGE_QOS)
                          for name in p.cameras}
        self.create_subscription(PoseStamped, p.cartesian_target_topic, self._on_command, COMMAND_QOS)
        self.create_subscription(JointTrajectory, p.joint_trajectory_topic, self._on_command, COMMAND_QOS)
        self.create_service(ResetEpisode, self.get_parameter("reset_service").value, self._on_reset,
                            qos_profile=SERVICE_QOS)
        self.stop_client = self.create_client(StopEpisode, Services.STOP_EPISODE)
        self.create_subscription(ObjectDetection, Topics.OBJECT_DETECTION, self._on_detection, SENSOR_QOS)
        self.create_subscription(EpisodeEvent, Topics.EPISODE_EVENTS, self._on_episode_event, EPISODE_EVENT_QOS)
        for name in p.cameras:
            extrinsic = self.env.point_cloud(name, 8, 8).camera_to_base
            self.get_logger().info(f"{name} optical frame -> {p.base_frame}: translation "
                                   f"{np.round(extrinsic[:3, 3], 4).tolist()}, rotation "
                                   f"{np.round(extrinsic[:3, :3], 4).tolist()}")
        if p.wall_clock:
            self.get_logger().info(
                f"simulating {p.task} on proxy '{p.proxy}' on the wall clock: state at {1 / p.state_period:g} Hz, "
                f"clouds at {1 / p.camera_period:g} Hz, a new render every {p.render_every} camera period(s), the "
                "latest cloud re-stamped in between")
        else:
            self.get_logger().info(f"simulating {p.task} on proxy '{p.proxy}' at {p.time_scale}x real time "
                                   f"({p.idle_time_scale}x between episodes)")
        self.running = True
        self.thread = threading.Thread(target=self._run, name="sim", daemon=True)
        self.thread.start()
        if p.wall_clock:
            self.camera_threads = [threading.Thread(target=self._guarded_loop, args=(loop,), name=name, daemon=True)
                                   for loop, name in ((self._render_loop, "render"), (self._camera_loop, "camera"))]
            for thread in self.camera_threads:
                thread.start()

    # ------------------------------------------------------------------------------------------------ commands
    def _bad_stamp(self, stamp: TimeMsg, what: str) -> bool:
        """Whether a peer's stamp is unusable (negative, malformed, or ahead of the sim's clock: a future-stamped
        command would count as the answer to every later tick); logged once per kind of message. A zero stamp is an
        unstamped command (scaled against the current state), not an error."""
        if stamp.sec == 0 and stamp.nanosec == 0:
            return False
        now_ns = self.get_clock().now().nanoseconds if self.params.wall_clock else round(self.sim_time * 1e9) or 1
        problem = stamp_problem(stamp, now_ns, MAX_STAMP_FUTURE_S)
        if problem:
            self.get_logger().warning(f"ignoring {what}: {problem}", throttle_duration_sec=10.0)
        return bool(problem)

    def _on_command(self, msg) -> None:
        if self._bad_stamp(msg.header.stamp, "command"):
            return
        with self.graph_input:  # answered, whether or not it is accepted below
            self.command_stamp_ns = max(self.command_stamp_ns, stamp_ns(msg.header.stamp))
            self.graph_input.notify_all()
        with self.lock:
            # Scale now, against the state the command was computed from (its stamp: the policy's tick), as the env
            # does at the start of a step. Against a later state, the motion made meanwhile would be multiplied by
            # action_scale too, and above 2 that feedback loop diverges: on a loaded machine a command reaching the
            # sim a few state steps late set the arm swinging ±0.6 m across the table.
            command = self._scaled_command(msg)
            if command is None:
                return
            # The robot's latency (ProxyConfig's "command_delay" model, whatever the env's latency_model).
            delay = self.proxy.command_delay_periods(self.rng) * self.spec.control_period
            self.pending.append((self.sim_time + delay, command))

    def _scaled_command(self, msg) -> tuple[str, np.ndarray] | None:
        """("cartesian", ee target) or ("joint", 7 joint targets) with the proxy's action scale applied to the
        commanded change (sgft_core.command.scale_command, as the env applies it); None (logged) for a target this
        robot refuses."""
        scale = self.proxy.action_scale
        if isinstance(msg, PoseStamped):
            if msg.header.frame_id not in ("", self.params.base_frame):
                self.get_logger().warning(f"ignoring target in frame {msg.header.frame_id!r}", once=True)
                return None
            target = np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z])
            if not np.isfinite(target).all():
                self.get_logger().error("ignoring non-finite Cartesian target")
                return None
            ee, _ = self._measured_at(msg.header.stamp)
            return "cartesian", scale_command(ee, target, scale)
        if not msg.points:
            return None
        # names of other joints (a gripper's) are not this arm's to move
        named = [(JOINT_NAMES.index(n), p) for n, p in zip(msg.joint_names, msg.points[0].positions, strict=False)
                 if n in JOINT_NAMES]
        idx = [i for i, _ in named]
        # targets come in the FR3's joint readings; the env works in the MJCF's
        goal = np.array([p for _, p in named], dtype=np.float64) - MJCF_JOINT_ZERO_OFFSET[idx]
        if not np.isfinite(goal).all():
            self.get_logger().error("ignoring non-finite joint target")
            return None
        _, q = self._measured_at(msg.header.stamp)
        targets = self.env.arm.joint_targets()  # joints the message leaves out keep theirs, as the controller does
        targets[idx] = scale_command(q[idx], goal, scale)
        return "joint", targets

    def _measured_at(self, stamp: TimeMsg) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position and joint positions published last at or before `stamp` (sim time); the current
        ones for an unstamped command or one older than the history (then nothing better is known)."""
        step = self._history_key(stamp)
        if self.history and self.history[0][0] <= step:
            for recorded, ee, q in reversed(self.history):
                if recorded <= step:
                    return ee, q
        return self.env.ee_position(), self.env.joint_state()[1]

    def _history_key(self, stamp: TimeMsg) -> int:
        """The state step a stamp falls in; on the wall clock, where steps are not evenly stamped, the stamp (ns)."""
        if self.params.wall_clock:
            return stamp_ns(stamp)
        return int(stamp_ns(stamp) * 1e-9 / self.params.state_period + 1e-6)

    def _apply(self, command: tuple[str, np.ndarray]) -> None:
        kind, target = command
        if kind == "cartesian":
            self.env.set_ee_target(target)
        else:
            self.env.set_joint_targets(target)

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        if self.episode_running:
            # Moving the scene under a running episode would hand the learner a transition across the reset: abort
            # the episode first and let the caller ask again once it has ended.
            self.stop_client.call_async(StopEpisode.Request(reason="reset requested while the episode ran"))
            response.success = False
            response.message = (f"{Services.RESET_EPISODE_RUNNING}: asked the policy to abort it; reset again once "
                                "it has ended")
            self.get_logger().warning("reset requested during an episode: aborting the episode first")
            return response
        with self.lock:
            self.resets += 1
            if request.scene >= 0:  # a fixed start scene: the evaluation's i-th
                seed = EVAL_SEED + int(request.scene)
            else:
                seed = int(request.seed) if request.seed >= 0 else self.params.seed + self.resets
            self.env.reset(seed=seed)
            self.pending.clear()
            self.history.clear()  # a command from before the reset is scaled against the reset state
            self.episode_under_way = True
        response.success, response.message = True, f"reset with seed {seed}"
        return response

    # ------------------------------------------------------------------------------------ perception, command sync
    def _on_detection(self, msg: ObjectDetection) -> None:
        if self._bad_stamp(msg.header.stamp, "detection"):
            return
        frame_ns = stamp_ns(msg.header.stamp)
        with self.graph_input:
            self.detected_stamps[frame_ns] = self.detected_stamps.get(frame_ns, 0) + 1
            self.graph_input.notify_all()

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        with self.graph_input:
            self.commands_expected = msg.event in (EpisodeEvent.STARTED, EpisodeEvent.RESUMED)
            self.episode_running = msg.event not in (EpisodeEvent.FINISHED, EpisodeEvent.ABORTED)
            self.episode_under_way = msg.event not in (EpisodeEvent.FINISHED, EpisodeEvent.ABORTED)
            self.graph_input.notify_all()

    def _wait_for_command(self, stamp: TimeMsg) -> bool:
        """Block (wall time, at most command_sync_timeout_s) until the policy's command for the tick at `stamp` has
        arrived, while an episode expects one; True when it did or none is expected. A tick without one (a crashed
        policy node) stops the waiting until the next episode event."""
        stamp_ns = Time.from_msg(stamp).nanoseconds
        with self.graph_input:
            if self.params.command_timeout <= 0.0 or not self.commands_expected:
                return True
            answered = self.graph_input.wait_for(
                lambda: not self.running or not self.commands_expected or self.command_stamp_ns >= stamp_ns,
                timeout=self.params.command_timeout)
            if not answered:
                self.commands_expected = False
            return answered

    def _wait_for_detections(self, stamp: TimeMsg) -> bool:
        """Block (wall time, at most perception_sync_timeout_s) until perception has published one detection per
        camera for the frame stamped `stamp`; True when it did, or when no perception node is up or listening yet."""
        if (self.params.sync_timeout <= 0.0 or self.count_publishers(Topics.OBJECT_DETECTION) == 0
                or any(pub.get_subscription_count() == 0 for pub in self.cloud_pubs.values())):
            return True
        stamp_ns = Time.from_msg(stamp).nanoseconds
        with self.graph_input:
            seen = self.graph_input.wait_for(
                lambda: not self.running or self.detected_stamps.get(stamp_ns, 0) >= len(self.params.cameras),
                timeout=self.params.sync_timeout)
            self.detected_stamps = {t: n for t, n in self.detected_stamps.items() if t > stamp_ns}
        return seen

    # ---------------------------------------------------------------------------------------------- simulation
    def _run(self) -> None:
        try:
            self._simulate()
        except Exception:
            if self.running and rclpy.ok():
                raise
            # shutting down: the context went away between the check and a publish

    def _simulate(self) -> None:
        p = self.params
        wall_start, sim_start, scale = time.monotonic(), self.sim_time, p.idle_time_scale
        # wall clock: a state is stamped with the time it is due at (this clock's reading when pacing began, plus the
        # sim time since), as a robot controller stamps its cycles; stamping when the loop got round to it would bunch
        # the stamps of steps caught up after a stall, and the arm would seem to move faster than it can
        wall_origin_ns = self._wall_origin_ns(sim_start)
        late_frames = late_commands = 0
        while self.running and rclpy.ok():
            with self.lock:
                due = [m for t, m in self.pending if t <= self.sim_time]
                self.pending = [(t, m) for t, m in self.pending if t > self.sim_time]
                for command in due:
                    self._apply(command)
                self.env.simulate(p.state_period)
                self.steps += 1
                self.sim_time = self.steps * p.state_period
                stamp = (_stamp_ns(wall_origin_ns + round(self.sim_time * 1e9)) if p.wall_clock
                         else _stamp(self.sim_time))
                self._publish_state(stamp)
                self.history.append((self._history_key(stamp) if p.wall_clock else self.steps,
                                     self.env.ee_position(), self.env.joint_state()[1]))
                clouds, images = [], []
                if p.wall_clock:  # the camera threads render and publish
                    self._count_wall_clock("state_steps")
                elif (self.steps + 1) % p.camera_steps == 0:
                    # rendered only while someone subscribes, as realsense2_camera publishes its cloud (a graph without
                    # perception, e.g. insert's, leaves the CPU to the learner)
                    clouds = [(name, self.env.point_cloud(name, *p.cloud_size)) for name in p.cameras
                              if self.cloud_pubs[name].get_subscription_count() > 0]
                    images = [(name, *self.env.color_image(name, *p.image_size, render_arm=p.image_render_arm))
                              for name in p.cameras if self.image_pubs[name].get_subscription_count() > 0
                              or self.info_pubs[name].get_subscription_count() > 0]
            if not rclpy.ok():
                break  # shutting down: the publishers' context is gone
            if self.clock_pub is not None:
                self.clock_pub.publish(Clock(clock=stamp))
            for name, cloud in clouds:
                self.cloud_pubs[name].publish(
                    build_pointcloud2(cloud.xyz, cloud.rgb, f"{name}_depth_optical_frame", stamp))
            for name, rgb, k in images:
                image, info = color_messages(rgb, k, color_optical_frame(name), stamp)
                self.info_pubs[name].publish(info)
                self.image_pubs[name].publish(image)
            if clouds:
                waited = time.monotonic()
                if not self._wait_for_detections(stamp):
                    late_frames += 1
                    self.get_logger().warning(
                        f"no detection within {p.sync_timeout} s of the frame at sim time {self.sim_time:.2f} s "
                        f"({late_frames} so far): going on without it", throttle_duration_sec=10.0)
                wall_start += time.monotonic() - waited  # sim time stood still meanwhile: nothing to catch up on
            if self.steps % self.control_steps == 0:
                waited = time.monotonic()
                if not self._wait_for_command(stamp):
                    late_commands += 1
                    self.get_logger().warning(
                        f"no command within {p.command_timeout} s of the tick at sim time {self.sim_time:.2f} s "
                        f"({late_commands} so far): going on without waiting until the next episode event",
                        throttle_duration_sec=10.0)
                wall_start += time.monotonic() - waited
            # pace: sim time runs time_scale times faster than the wall clock (never faster than we can compute)
            wanted = p.time_scale if self.episode_under_way else p.idle_time_scale
            if wanted != scale:
                scale, wall_start, sim_start = wanted, time.monotonic(), self.sim_time
            ahead = (self.sim_time - sim_start) / scale - (time.monotonic() - wall_start)
            if ahead > 0:
                time.sleep(ahead)
            elif ahead < -(MAX_WALL_CLOCK_LAG_S if p.wall_clock else 1.0):
                # fell behind: do not try to catch up in a burst. On the wall clock the states' stamps would lag the
                # clock meanwhile (the policy holds on a state older than its max_input_age), so the sim skips the
                # time it lost instead: its physics slows down, its stamps stay fresh
                wall_start, sim_start = time.monotonic(), self.sim_time
                wall_origin_ns = self._wall_origin_ns(sim_start)
                if p.wall_clock:
                    self._count_wall_clock("lag_skips")

    def _wall_origin_ns(self, sim_time: float) -> int:
        """This node's clock reading (ns) at sim time 0, were the sim time `sim_time` now."""
        return self.get_clock().now().nanoseconds - round(sim_time * 1e9)

    def _publish_state(self, stamp: TimeMsg) -> None:
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.params.base_frame
        p, q = self.env.ee_position(), self.env.ee_quaternion()  # quaternion w, x, y, z (MuJoCo order)
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in p)
        pose.pose.orientation.w, pose.pose.orientation.x = float(q[0]), float(q[1])
        pose.pose.orientation.y, pose.pose.orientation.z = float(q[2]), float(q[3])
        self.pose_pub.publish(pose)
        names, q_arm, dq_arm = self.env.joint_state()
        joints = JointState(name=list(names), position=(q_arm + MJCF_JOINT_ZERO_OFFSET).tolist(),
                            velocity=dq_arm.tolist())  # the FR3's readings, as franka_ros2 publishes them
        joints.header.stamp = stamp
        self.measured_pub.publish(joints)
        if self.joint_states_pub is not None:
            self.joint_states_pub.publish(joints)
        truth = PointStamped()
        truth.header.stamp, truth.header.frame_id = stamp, self.params.base_frame
        truth.point.x, truth.point.y, truth.point.z = (float(v) for v in self.env.object_position())
        self.truth_pub.publish(truth)

    # --------------------------------------------------------------------------------------- wall-clock camera
    def _guarded_loop(self, loop) -> None:
        try:
            loop()
        except Exception:
            if self.running and rclpy.ok():
                raise
            # shutting down: the context went away between the check and a publish

    def _count_wall_clock(self, what: str, n: int = 1) -> None:
        """Count for the periodic log of the rates the wall-clock mode achieved (the robot stands in for hardware
        that keeps its rates; a loaded machine may not)."""
        now = time.monotonic()
        with self.wall_counts_lock:
            self.wall_counts[what] += n
            start = self.wall_counts.setdefault("since", now)
            if what != "state_steps" or now - start < WALL_CLOCK_STATS_PERIOD_S:
                return
            counts, self.wall_counts = self.wall_counts, collections.Counter(since=now)
        seconds = now - start
        self.get_logger().info("wall clock rates " + json.dumps({
            "state_hz": round(counts["state_steps"] / seconds, 1),
            "clouds_published_hz": round(counts["clouds_published"] / seconds, 2),
            "clouds_rendered_hz": round(counts["clouds_rendered"] / seconds, 2),
            "camera_periods_missed": counts["camera_periods_missed"], "lag_skips": counts["lag_skips"],
            "window_s": round(seconds, 1)}))

    def _render_loop(self) -> None:
        """Render a cloud of each subscribed camera when the camera thread asks (every cloud_render_every-th period;
        a request that comes while rendering is merged into the next render), from a copy of the sim's state so the
        physics goes on meanwhile (MuJoCo's renderer releases the GIL), and color images while they are subscribed.
        The renderers live in this thread: an OpenGL context is current in one thread."""
        p = self.params
        renderers: dict[tuple[int, int], mujoco.Renderer] = {}

        def renderer(size: tuple[int, int]) -> mujoco.Renderer:
            if size not in renderers:
                renderers[size] = mujoco.Renderer(self.env.model, height=size[1], width=size[0])
            return renderers[size]

        try:
            while self.running and rclpy.ok():
                with self.render_wanted:
                    self.render_wanted.wait_for(lambda: self.render_requested or not self.running, timeout=1.0)
                    if not self.render_requested:
                        continue
                    self.render_requested = False
                clouds = [n for n in p.cameras if self.cloud_pubs[n].get_subscription_count() > 0]
                images = [n for n in p.cameras if self.image_pubs[n].get_subscription_count() > 0
                          or self.info_pubs[n].get_subscription_count() > 0]
                if not clouds and not images:
                    continue
                with self.lock:
                    data = copy.copy(self.env.data)
                for name in clouds:
                    cloud = render_point_cloud(renderer(p.cloud_size), self.env.model, data, name)
                    self.latest_clouds[name] = build_pointcloud2(cloud.xyz, cloud.rgb, f"{name}_depth_optical_frame")
                    self._count_wall_clock("clouds_rendered")
                for name in images:
                    rgb = render_color(renderer(p.image_size), self.env.model, data, name,
                                       render_arm=p.image_render_arm)
                    k = intrinsics(self.env.model, name, *p.image_size)
                    image, info = color_messages(rgb, k, color_optical_frame(name), self.get_clock().now().to_msg())
                    self.info_pubs[name].publish(info)
                    self.image_pubs[name].publish(image)
        finally:
            for r in renderers.values():
                r.close()

    def _camera_loop(self) -> None:
        """At every multiple of the camera period of the node's clock: ask for a render every cloud_render_every-th
        period and publish each subscribed camera's latest cloud stamped now (a real camera's cloud is stamped at
        its exposure; here the scene may be older, see the module's docstring). A period missed (a loaded machine)
        is skipped, not made up in a burst."""
        p = self.params
        period_ns = round(p.camera_period * 1e9)
        index = self.get_clock().now().nanoseconds // period_ns + 1
        while self.running and rclpy.ok():
            delay = (index * period_ns - self.get_clock().now().nanoseconds) * 1e-9
            if delay > 0:
                time.sleep(delay)
            subscribed = [n for n, pub in self.cloud_pubs.items() if pub.get_subscription_count() > 0]
            if index % p.render_every == 0 or any(n not in self.latest_clouds for n in subscribed):
                with self.render_wanted:
                    self.render_requested = True
                    self.render_wanted.notify_all()
            stamp = self.get_clock().now().to_msg()
            for name in subscribed:
                msg = self.latest_clouds.get(name)
                if msg is not None:
                    msg.header.stamp = stamp
                    self.cloud_pubs[name].publish(msg)
                    self._count_wall_clock("clouds_published")
            now_index = self.get_clock().now().nanoseconds // period_ns
            if now_index > index:
                self._count_wall_clock("camera_periods_missed", now_index - index)
            index = max(index, now_index) + 1

    def destroy_node(self) -> None:
        if hasattr(self, "thread"):  # not when the constructor refused to start
            self.running = False
            with self.graph_input:
                self.graph_input.notify_all()
            with self.render_wanted:
                self.render_wanted.notify_all()
            self.thread.join(timeout=5.0)
            for thread in getattr(self, "camera_threads", []):
                thread.join(timeout=5.0)
            self.env.close()
        super().destroy_node()


def color_messages(rgb: np.ndarray, k: np.ndarray, frame_id: str, stamp: TimeMsg) -> tuple[Image, CameraInfo]:
    """An (H, W, 3) uint8 RGB image and its pinhole K as realsense2_camera's color image (rgb8) and camera_info
    (plumb_bob, no distortion: the render is an ideal pinhole)."""
    height, width = rgb.shape[:2]
    image = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width,
                  data=np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
    image.header.stamp, image.header.frame_id = stamp, frame_id
    projection = np.zeros((3, 4))
    projection[:, :3] = k
    info = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=k.ravel().tolist(), r=np.eye(3).ravel().tolist(), p=projection.ravel().tolist())
    info.header.stamp, info.header.frame_id = stamp, frame_id
    return image, info


def main(args: list[str] | None = None) -> int:
    return run_node(SimRobotNode, "sgft_sim_robot", refuse=(ValueError,), args=args)


if __name__ == "__main__":
    sys.exit(main())
