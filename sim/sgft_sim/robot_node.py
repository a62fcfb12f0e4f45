"""The simulated robot: a sim-to-sim "real" proxy behind the topics of franka_ros2 and realsense2_camera.

It steps the MuJoCo env in small chunks and publishes, as the real drivers would:
  /clock (sim time; faster than real time by default, real time with time_scale:=1.0),
  robot pose, measured joint states and /joint_states (best effort, like franka_robot_state_broadcaster),
  colored PointCloud2s in the realsense layout from one or two simulated D455s,
and tracks the Cartesian (PoseStamped) or joint (JointTrajectory) targets it receives. With no new target it holds
the last one, as the impedance controller does. The proxy's gaps apply to commands here too: the commanded delta is
rescaled (action_scale) and each command takes effect after a random delay (latency), so that the action is held
for a random 0.6–1.4 control periods, like the env's `hold_periods`.
The object's true position goes out on a debug topic so tests can grade perception.
"""

from __future__ import annotations

import sys
import threading
import time
from functools import partial

import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState, PointCloud2
from trajectory_msgs.msg import JointTrajectory

from sgft_interfaces import COMMAND_QOS, ROBOT_STATE_QOS, SENSOR_QOS, Services, Topics
from sgft_interfaces.node_main import declared, run_node
from sgft_msgs.srv import ResetEpisode
from sgft_perception.pointcloud2 import build_pointcloud2
from sgft_sim import make_env
from sgft_sim.camera import CAMERA_NAMES

BASE_FRAME = "fr3_link0"


def _stamp(seconds: float) -> TimeMsg:
    sec = int(seconds)
    return TimeMsg(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


class SimRobotNode(Node):
    def __init__(self) -> None:
        super().__init__("sgft_sim_robot")

        declare = partial(declared, self)

        task = declare("task", "push", "task whose scene is simulated (push, hammer, insert)")
        proxy = declare("proxy", "real", "sim-to-sim proxy: sim, real, deformable (push)")
        self.seed = int(declare("seed", 0, "seed of the first reset; later resets continue the sequence"))
        self.time_scale = float(declare("time_scale", 4.0, "sim seconds per wall second (1.0 = real time)"))
        self.state_period = 1.0 / float(declare("state_rate_hz", 50.0, "robot state publication rate (sim time)"))
        self.camera_period = 1.0 / float(declare("camera_rate_hz", 10.0, "point cloud rate per camera (sim time)"))
        self.cameras = list(declare("cameras", ["camera1"], f"simulated cameras, from {list(CAMERA_NAMES)}"))
        self.cloud_size = (int(declare("cloud_width", 424, "depth width (848 or 424 on a D455)")),
                           int(declare("cloud_height", 240, "depth height (480 or 240 on a D455)")))
        if not 0.05 <= self.time_scale <= 50.0:
            raise ValueError(f"time_scale={self.time_scale} outside [0.05, 50]")
        if not set(self.cameras) <= set(CAMERA_NAMES) or not self.cameras:
            raise ValueError(f"cameras={self.cameras}: choose from {list(CAMERA_NAMES)}")

        self.env = make_env(task, proxy, seed=self.seed)
        self.spec = self.env.task
        self.proxy = self.env.proxy
        self.rng = np.random.default_rng(self.seed + 1)
        self.lock = threading.Lock()
        self.pending: list[tuple[float, tuple[str, np.ndarray]]] = []  # (sim time to apply, scaled command)
        self.sim_time = 0.0
        self.next_camera = 0.0
        self.resets = 0
        self.env.reset(seed=self.seed)

        self.clock_pub = self.create_publisher(Clock, Topics.CLOCK, 10)
        self.pose_pub = self.create_publisher(PoseStamped, Topics.ROBOT_POSE, ROBOT_STATE_QOS)
        self.measured_pub = self.create_publisher(JointState, Topics.MEASURED_JOINT_STATES, ROBOT_STATE_QOS)
        self.joint_states_pub = self.create_publisher(JointState, Topics.JOINT_STATES, ROBOT_STATE_QOS)
        self.truth_pub = self.create_publisher(PointStamped, Topics.SIM_OBJECT_TRUTH, ROBOT_STATE_QOS)
        topic_of = {name: Topics.CAMERA_CLOUDS[CAMERA_NAMES.index(name)] for name in self.cameras}
        self.cloud_pubs = {name: self.create_publisher(PointCloud2, topic_of[name], SENSOR_QOS)
                           for name in self.cameras}
        target_topic = declare("cartesian_target_topic", Topics.CARTESIAN_TARGET, "Cartesian target topic")
        trajectory_topic = declare("joint_trajectory_topic", Topics.JOINT_TRAJECTORY, "joint trajectory topic")
        self.create_subscription(PoseStamped, target_topic, self._on_command, COMMAND_QOS)
        self.create_subscription(JointTrajectory, trajectory_topic, self._on_command, COMMAND_QOS)
        self.create_service(ResetEpisode, Services.RESET_EPISODE, self._on_reset)
        for name in self.cameras:
            extrinsic = self.env.point_cloud(name, 8, 8).camera_to_base
            self.get_logger().info(f"{name} optical frame -> {BASE_FRAME}: translation "
                                   f"{np.round(extrinsic[:3, 3], 4).tolist()}, rotation "
                                   f"{np.round(extrinsic[:3, :3], 4).tolist()}")
        self.get_logger().info(f"simulating {task} on proxy '{proxy}' at {self.time_scale}x real time")
        self.running = True
        self.thread = threading.Thread(target=self._run, name="sim", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------------------------------------ commands
    def _on_command(self, msg) -> None:
        with self.lock:
            # Scale now, against the state the command was computed from (as the env does at the start of a step);
            # scaling at the delayed moment of application would multiply the motion made meanwhile by
            # action_scale too, and above 2 that feedback loop diverges.
            command = self._scaled_command(msg)
            if command is None:
                return
            delay = 0.0
            if self.proxy.hold_periods is not None:
                # A delay d_k ~ U(0, (high − low)/2) periods makes each action last period + d_{k+1} − d_k.
                low, high = self.proxy.hold_periods
                delay = self.rng.uniform(0.0, 0.5 * (high - low)) * self.spec.control_period
            self.pending.append((self.sim_time + delay, command))

    def _scaled_command(self, msg) -> tuple[str, np.ndarray] | None:
        """("cartesian", ee target) or ("joint", 7 joint targets) with the proxy's action scale applied to the
        commanded change (FrankaTaskEnv.scaled_*); None (logged) for a target this robot refuses."""
        if isinstance(msg, PoseStamped):
            if msg.header.frame_id not in ("", BASE_FRAME):
                self.get_logger().warning(f"ignoring target in frame {msg.header.frame_id!r}", once=True)
                return None
            target = np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z])
            if not np.isfinite(target).all():
                self.get_logger().error("ignoring non-finite Cartesian target")
                return None
            return "cartesian", self.env.scaled_ee_target(target - self.env.ee_position())
        if not msg.points:
            return None
        names, q, _ = self.env.joint_state()
        goal = dict(zip(msg.joint_names, msg.points[0].positions, strict=False))
        if not np.isfinite(list(goal.values())).all():
            self.get_logger().error("ignoring non-finite joint target")
            return None
        return "joint", self.env.scaled_joint_targets({n: goal[n] - q[i] for i, n in enumerate(names) if n in goal})

    def _apply(self, command: tuple[str, np.ndarray]) -> None:
        kind, target = command
        if kind == "cartesian":
            self.env.set_ee_target(target)
        else:
            self.env.set_joint_targets(target)

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        with self.lock:
            self.resets += 1
            seed = int(request.seed) if request.seed >= 0 else self.seed + self.resets
            self.env.reset(seed=seed)
            self.pending.clear()
        response.success, response.message = True, f"reset with seed {seed}"
        return response

    # ---------------------------------------------------------------------------------------------- simulation
    def _run(self) -> None:
        wall_start, sim_start = time.monotonic(), self.sim_time
        while self.running and rclpy.ok():
            with self.lock:
                due = [m for t, m in self.pending if t <= self.sim_time]
                self.pending = [(t, m) for t, m in self.pending if t > self.sim_time]
                for command in due:
                    self._apply(command)
                self.env.simulate(self.state_period)
                self.sim_time += self.state_period
                stamp = _stamp(self.sim_time)
                self._publish_state(stamp)
                clouds = []
                if self.sim_time + 1e-9 >= self.next_camera:
                    self.next_camera = self.sim_time + self.camera_period
                    clouds = [(name, self.env.point_cloud(name, *self.cloud_size)) for name in self.cameras]
            if not rclpy.ok():
                break  # shutting down: the publishers' context is gone
            self.clock_pub.publish(Clock(clock=stamp))
            for name, cloud in clouds:
                self.cloud_pubs[name].publish(
                    build_pointcloud2(cloud.xyz, cloud.rgb, f"{name}_depth_optical_frame", stamp))
            # pace: sim time runs time_scale times faster than the wall clock (never faster than we can compute)
            ahead = (self.sim_time - sim_start) / self.time_scale - (time.monotonic() - wall_start)
            if ahead > 0:
                time.sleep(ahead)
            elif ahead < -1.0:  # fell behind by a second: do not try to catch up in a burst
                wall_start, sim_start = time.monotonic(), self.sim_time

    def _publish_state(self, stamp: TimeMsg) -> None:
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, BASE_FRAME
        p, q = self.env.ee_position(), self.env.ee_quaternion()  # quaternion w, x, y, z (MuJoCo order)
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in p)
        pose.pose.orientation.w, pose.pose.orientation.x = float(q[0]), float(q[1])
        pose.pose.orientation.y, pose.pose.orientation.z = float(q[2]), float(q[3])
        self.pose_pub.publish(pose)
        names, q_arm, dq_arm = self.env.joint_state()
        joints = JointState(name=list(names), position=q_arm.tolist(), velocity=dq_arm.tolist())
        joints.header.stamp = stamp
        self.measured_pub.publish(joints)
        self.joint_states_pub.publish(joints)
        truth = PointStamped()
        truth.header.stamp, truth.header.frame_id = stamp, BASE_FRAME
        truth.point.x, truth.point.y, truth.point.z = (float(v) for v in self.env.object_position())
        self.truth_pub.publish(truth)

    def destroy_node(self) -> None:
        if hasattr(self, "thread"):  # not when the constructor refused to start
            self.running = False
            self.thread.join(timeout=5.0)
            self.env.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(SimRobotNode, "sgft_sim_robot", refuse=(ValueError,), args=args)


if __name__ == "__main__":
    sys.exit(main())
