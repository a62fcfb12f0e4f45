"""The shared Gymnasium env of the SGFT tasks: a Franka on a table, controlled at 5 Hz through physics sub-steps.

A task subclass provides its scene (tool inside the hand, bodies on the table), its physical parameters with their
randomization ranges, and its observation. This class owns the control: `step(action)` is built from the lower-level
methods a ROS node can call directly (`set_ee_target`, `set_joint_targets`, `simulate`, `ee_position`,
`joint_state`, `object_position`, `observation`), so the simulated robot node and the Gymnasium env share one path.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from sgft_core.command import command_target, task_envelope
from sgft_core.fr3 import JOINT_NAMES, MJCF_JOINT_ZERO_OFFSET
from sgft_core.safety import SafetyEnvelope
from sgft_core.tasks import TaskSpec
from sgft_sim.camera import (
    CAMERAS_XML,
    PointCloud,
    camera_to_base,
    intrinsics,
    render_color,
    render_point_cloud,
)
from sgft_sim.proxies import ProxyConfig
from sgft_sim.robot import HOME_Q, FrankaArm, ImpedanceGains, build_model_xml

# "Gripper points down" in the base frame: tool z along −z, the hand's fingers along the base's y axis.
GRIPPER_DOWN = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
TABLE_HALF_THICKNESS = 0.02
# Joint targets move from the old to the new value in this many equal steps spread over the first half of the hold:
# the real controller interpolates at 1 kHz; a jump would be an impulse no Franka produces.
TARGET_RAMP_CHUNKS = 5
# The simulated robot node's physics step (its state_rate_hz default: 50 Hz), which latency_model="command_delay"
# reproduces: the node simulates one state step at a time, so a new target is ramped in within one step.
ROBOT_NODE_STATE_PERIOD = 0.02


class FrankaTaskEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    task: TaskSpec
    # name -> (low, high) of each randomized physical parameter; NOMINAL_PARAMS hold the fixed values
    PARAM_RANGES: dict[str, tuple[float, float]] = {}
    NOMINAL_PARAMS: dict[str, float] = {}
    # initial end-effector position: randomized in [low, high], fixed at FIXED_EE_START otherwise
    EE_START_LOW = np.zeros(3)
    EE_START_HIGH = np.zeros(3)
    FIXED_EE_START = np.zeros(3)
    EE_SITE = "ee"
    PHYSICS_TIMESTEP = 0.004

    def __init__(self, proxy: ProxyConfig, seed: int | None = None, render_mode: str | None = None) -> None:
        super().__init__()
        self.proxy = proxy
        self.render_mode = render_mode
        self.model = mujoco.MjModel.from_xml_string(
            build_model_xml(self._tool_xml(), CAMERAS_XML + self._world_xml(), self._asset_xml(),
                            timestep=self.PHYSICS_TIMESTEP))
        self.data = mujoco.MjData(self.model)
        self.arm = FrankaArm(self.model, self.data, self.EE_SITE)
        self.gains = ImpedanceGains(kp_shoulder=600.0 * proxy.stiffness_scale, kp_wrist=150.0 * proxy.stiffness_scale,
                                    damping_ratio=proxy.damping_ratio)
        self.arm.set_gains(self.gains)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.task.action_dim,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(self.task.obs_low.astype(np.float32),
                                                self.task.obs_high.astype(np.float32), dtype=np.float32)
        self.params: dict[str, float] = dict(self.NOMINAL_PARAMS)
        # What bounds every action, as the policy node's default envelope bounds it on a robot; tighten it to test.
        self.envelope: SafetyEnvelope = task_envelope(self.task)
        self.last_hold_periods = 1.0
        self._ee_target = np.zeros(3)
        self._steps = 0
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._rng = np.random.default_rng(seed)
        self._seeded = seed is not None
        unknown = set(proxy.observation_offset) - set(self.task.obs_names)
        if unknown:
            raise ValueError(f"observation_offset names {sorted(unknown)} not in {self.task.name}'s observation "
                             f"{list(self.task.obs_names)}")
        self._observation_offset = np.array([proxy.observation_offset.get(n, 0.0) for n in self.task.obs_names])

    # ------------------------------------------------------------------------------------------ task hooks
    def _tool_xml(self) -> str:
        raise NotImplementedError

    def _world_xml(self) -> str:
        raise NotImplementedError

    def _asset_xml(self) -> str:
        return ""

    def _apply_params(self) -> None:
        """Write self.params into the model and place the task's objects (called at every reset)."""
        raise NotImplementedError

    def object_position(self) -> np.ndarray:
        """Position of the task's object in the base frame (push: puck centre; hammer: nail head; insert: leg tip)."""
        raise NotImplementedError

    def observation(self) -> np.ndarray:
        """The task's observation of the true scene (float32, laid out as task.obs_names)."""
        raise NotImplementedError

    def perceived_observation(self) -> np.ndarray:
        """What the robot observes: observation() plus the proxy's constant perception errors (observation_offset)."""
        return (self.observation() + self._observation_offset).astype(np.float32)

    # --------------------------------------------------------------------------------------- robot interface
    def ee_position(self) -> np.ndarray:
        return self.arm.ee_position()

    def ee_quaternion(self) -> np.ndarray:
        return self.arm.ee_quaternion()

    def joint_state(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """Names, positions (rad) and velocities (rad/s) of the 7 arm joints."""
        return JOINT_NAMES, self.arm.q(), self.arm.dq()

    def set_ee_target(self, xyz: np.ndarray) -> np.ndarray:
        """Track a Cartesian target (clipped to the workspace box, gripper down); returns the target used."""
        target = np.clip(np.asarray(xyz, dtype=np.float64), self.task.workspace_low, self.task.workspace_high)
        if self.task.ee_height is not None:
            target[2] = self.task.ee_height
        self._ee_target = target
        q_goal = self.arm.solve_ik(target, self.arm.joint_targets(), GRIPPER_DOWN, iterations=8)
        self._ramp_to(q_goal)
        return target

    def set_joint_targets(self, q: np.ndarray) -> np.ndarray:
        """Track joint position targets of the 7 arm joints, clipped to the joint limits and shortened (towards the
        current target) until the end effector they imply lies in the workspace box; returns the target used."""
        start = self.arm.joint_targets()
        goal = np.clip(np.asarray(q, dtype=np.float64), self.arm.joint_low, self.arm.joint_high)
        if not self._in_box(self.arm.forward_ee(goal)):
            low, high = 0.0, 1.0  # bisection on the fraction of the step that stays inside the box
            for _ in range(8):
                mid = 0.5 * (low + high)
                low, high = (mid, high) if self._in_box(self.arm.forward_ee(start + mid * (goal - start))) else (low,
                                                                                                              mid)
            goal = start + low * (goal - start)
        self._ramp_to(goal)
        return goal

    def _in_box(self, xyz: np.ndarray) -> bool:
        return bool(np.all(xyz >= self.task.workspace_low) and np.all(xyz <= self.task.workspace_high))

    def simulate(self, seconds: float) -> None:
        """Advance the physics by `seconds`, ramping a pending joint target in over the first half."""
        n_steps = max(1, int(round(seconds / self.model.opt.timestep)))
        ramp = self._ramp
        self._ramp = None
        if ramp is None:
            mujoco.mj_step(self.model, self.data, nstep=n_steps)
            return
        start, goal = ramp
        chunk = max(1, n_steps // (2 * TARGET_RAMP_CHUNKS))
        done = 0
        for i in range(1, TARGET_RAMP_CHUNKS + 1):
            self.arm.set_joint_targets(start + (goal - start) * (i / TARGET_RAMP_CHUNKS))
            mujoco.mj_step(self.model, self.data, nstep=min(chunk, n_steps - done))
            done += chunk
            if done >= n_steps:
                break
        self.arm.set_joint_targets(goal)
        if n_steps > done:
            mujoco.mj_step(self.model, self.data, nstep=n_steps - done)

    _ramp: tuple[np.ndarray, np.ndarray] | None = None

    def _ramp_to(self, q_goal: np.ndarray) -> None:
        q_goal = np.clip(q_goal, self.arm.joint_low, self.arm.joint_high)
        self._ramp = (self.arm.joint_targets(), q_goal)

    # ------------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        mujoco.mj_resetData(self.model, self.data)
        self.params = dict(self.NOMINAL_PARAMS)
        if self.proxy.randomize_params:
            for name, (low, high) in self.PARAM_RANGES.items():
                self.params[name] = float(rng.uniform(low, high))
        else:
            self.params.update(self.proxy.params)
            for name, half_width in self.proxy.reset_jitter.items():
                self.params[name] += float(rng.uniform(-half_width, half_width))
        self._apply_params()
        ee_start = self._initial_ee(rng.uniform(self.EE_START_LOW, self.EE_START_HIGH)
                                    if self.proxy.randomize_initial_pose else self.FIXED_EE_START.copy())
        q0 = self.arm.solve_ik(ee_start, self._ik_seed(), GRIPPER_DOWN, iterations=60)
        self.arm.reset(q0)
        self._ee_target = ee_start
        self._ramp = None
        mujoco.mj_forward(self.model, self.data)
        self.simulate(0.1)  # let contacts settle
        self._steps = 0
        obs = self.perceived_observation()
        return obs, {"success": bool(self.task.success(obs)), "params": dict(self.params)}

    def _initial_ee(self, sampled: np.ndarray) -> np.ndarray:
        """The initial end-effector position from the sampled (or fixed) EE_START value; tasks may make it relative."""
        return sampled

    def _ik_seed(self) -> np.ndarray:
        return HOME_Q

    def apply_action(self, action: np.ndarray,
                     measured: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Turn a normalized action into a controller target with sgft_core.command, the policy node's mapping: a step
        from the measured state (now, or `measured`: the end-effector position and joint positions the action was
        computed from) through the safety envelope, then times the proxy's mis-calibrated action scale, as the
        simulated robot node scales what it receives. Joint targets are computed in the FR3's readings, whose limits
        the envelope holds; the joints a joint task does not move keep their current targets."""
        ee, q = (self.ee_position(), self.arm.q()) if measured is None else measured
        target = command_target(self.task, self.envelope, action, ee, q + MJCF_JOINT_ZERO_OFFSET,
                                joint_hold=self.arm.joint_targets() + MJCF_JOINT_ZERO_OFFSET,
                                action_scale=self.proxy.action_scale)
        if target is None:
            return  # no safe target for this state: the controller keeps its current one
        if self.task.action_kind == "cartesian":
            self.set_ee_target(target)
        else:
            self.set_joint_targets(target - MJCF_JOINT_ZERO_OFFSET)

    def branch(self, seed: int) -> FrankaTaskEnv:
        """A copy of this env at its current state (controller targets included) that shares the read-only MjModel
        and draws its latency from `seed`: for look-ahead on the true dynamics (sgft_sim.oracle)."""
        copied = copy.deepcopy(self, memo={id(self.model): self.model})
        copied._rng = np.random.default_rng(seed)
        return copied

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        period = self.task.control_period
        if self.proxy.latency_model == "command_delay":
            # The simulated robot node's loop: physics in state steps, a command applied at the first state step
            # boundary at or after its delay (scaled against the state it was computed from), the previous target
            # running on until then; the next observation one period after this one.
            measured = self.ee_position(), self.arm.q()
            delay = self.proxy.command_delay_periods(self._rng) * period
            state_steps = round(period / ROBOT_NODE_STATE_PERIOD)
            apply_at = min(state_steps - 1, math.ceil(delay / ROBOT_NODE_STATE_PERIOD - 1e-9))
            for step in range(state_steps):
                if step == apply_at:
                    self.apply_action(action, measured)
                self.simulate(ROBOT_NODE_STATE_PERIOD)
            self.last_hold_periods = 1.0 - apply_at / state_steps  # of this action, up to this observation
        else:
            self.apply_action(action)
            hold = 1.0 if self.proxy.hold_periods is None else float(self._rng.uniform(*self.proxy.hold_periods))
            self.last_hold_periods = hold
            self.simulate(hold * period)
        self._steps += 1
        obs = self.perceived_observation()
        reward = float(self.task.reward(obs))
        terminated = bool(self.task.terminal(obs))
        truncated = self._steps >= self.task.episode_length
        return obs, reward, terminated, truncated, {"success": bool(self.task.success(obs))}

    # ------------------------------------------------------------------------------------------- cameras
    def point_cloud(self, camera: str = "camera1", width: int = 848, height: int = 480,
                    render_arm: bool = False) -> PointCloud:
        """Colored cloud of `camera` in its optical frame (x right, y down, z forward) and its camera→base pose.

        By default the arm's visual meshes are not rendered (about 5× faster with osmesa; no arm occlusion in the
        cloud, see render_point_cloud); the tool and the objects always are.
        """
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        return render_point_cloud(self._renderers[key], self.model, self.data, camera, render_arm=render_arm)

    def color_image(self, camera: str = "camera1", width: int = 848, height: int = 480,
                    render_arm: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """`camera`'s RGB image (height, width, 3) uint8 and its intrinsics K (3×3); the calibration marker on the
        hand is always drawn, the arm's meshes unless render_arm=False."""
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        return (render_color(self._renderers[key], self.model, self.data, camera, render_arm=render_arm),
                intrinsics(self.model, camera, width, height))

    def camera_pose(self, camera: str = "camera1") -> np.ndarray:
        """4×4 pose of `camera`'s optical frame in the base frame (the sim's color and depth optical frames coincide):
        the truth a calibration is graded against."""
        mujoco.mj_kinematics(self.model, self.data)
        return camera_to_base(self.model, self.data, camera)

    def marker_pose(self) -> np.ndarray:
        """4×4 pose of the calibration marker (sgft_sim.robot's ArUco frame) in the base frame."""
        mujoco.mj_kinematics(self.model, self.data)
        body = self.model.body("aruco_marker").id
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = self.data.xmat[body].reshape(3, 3), self.data.xpos[body]
        return pose

    def marker_in_ee(self) -> np.ndarray:
        """4×4 pose of the marker in the end-effector frame that the robot's pose topic reports (the task's ee site):
        the mounting a calibration on the real robot takes as a parameter."""
        ee = np.eye(4)
        mujoco.mj_kinematics(self.model, self.data)
        site = self.arm.ee_site
        ee[:3, :3], ee[:3, 3] = self.data.site_xmat[site].reshape(3, 3), self.data.site_xpos[site]
        return np.linalg.inv(ee) @ self.marker_pose()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        key = (640, 480)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=480, width=640)
        renderer = self._renderers[key]
        renderer.update_scene(self.data, camera="camera1")
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
