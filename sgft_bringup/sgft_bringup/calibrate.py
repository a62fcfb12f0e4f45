"""Camera calibration (eye-to-hand): the pose of a camera's optical frame in the robot base frame, written into a site
file, from an ArUco marker mounted on the hand.

    python -m sgft_bringup.calibrate --site site.yaml --camera camera1 --task push \
        --marker-in-ee 0 -0.0707 -0.0707 0.3827 0 0 0.9239        # real robot: the marker's mounting is measured
    python -m sgft_bringup.calibrate --sim --task push --site runs/sim_site.yaml  # simulated robot, graded on its truth

The arm visits `--poses` positions spread over the task's workspace box, one bounded step (the task's max_delta, what
the policy may command) per control period on the Cartesian target topic, as the policy streams them. At each, once
the arm is still, it takes the next color image, the robot pose at that image's stamp, detects the marker and
estimates its pose in the camera (solvePnP with the camera_info intrinsics).

Solver. The marker's pose in the end-effector frame is known (the sim's mounting, or measured on the robot and given
as a parameter), so every detected corner has a known position in the base frame and a measured pixel: the camera's
pose is a perspective-n-point problem over all corners of all poses. A rigid least-squares fit (Kabsch) of the corners
in the camera frame (per-pose PnP) to the base frame starts it; solvePnP over all corners then minimises the
reprojection error, which weights each pose by what the image actually measured: a single marker's depth is its
weakest coordinate (1-3 cm at 1 m here), and a fit of per-pose positions would inherit that. Hand-eye solvers
(calibrateHandEye's AX = XB, calibrateRobotWorldHandEye's AX = ZB) would estimate the mounting too, but need rotations
about at least two non-parallel axes between poses, and the task envelopes hold the gripper pointing down (push:
pure translations at one height), where the mounting is unobservable: measure it instead (a CAD drawing of the
bracket, or a ruler: a 5 mm error in it moves the whole camera by about that much).

Frames. The result is written as the camera's DEPTH optical frame in the base frame (x y z qx qy qz qw), what
perception's `extrinsics` take. The marker is seen by the color camera; on a D455 the color and depth optical frames
differ by the factory extrinsics (realsense2_camera publishes them as depth_to_color / tf), which this tool assumes to
be identity: true in the simulator, a few centimetres off on a real D455 unless its color stream is aligned to depth
or the factory transform is composed in afterwards.

Exit codes: 0 written; 2 bad input (too few detections, residuals over --max-residual-px, a result that is not a
rotation, no robot pose or images), with a message naming what, and nothing written.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from transforms3d.quaternions import mat2quat, quat2mat

from sgft_core.checkpoint import atomic_write_bytes
from sgft_core.command import task_envelope
from sgft_core.fr3 import BASE_FRAME
from sgft_core.tasks import TaskSpec, get_task

# Defaults of the marker mounted on the simulated hand (sgft_sim.robot); a real mounting passes its own.
DEFAULT_DICTIONARY = "DICT_4X4_50"
DEFAULT_MARKER_ID = 0
DEFAULT_MARKER_LENGTH = 0.08
EXIT_BAD_INPUT = 2


class CalibrationError(ValueError):
    """Bad input or result: the message names what; nothing is written."""


# ------------------------------------------------------------------------------------------------ pure helpers
def pose_matrix(xyz: Sequence[float], quat_xyzw: Sequence[float], what: str = "pose") -> np.ndarray:
    """4×4 from a position and a unit quaternion (x, y, z, w); CalibrationError for a non-finite or non-unit one."""
    p, q = np.asarray(xyz, dtype=np.float64), np.asarray(quat_xyzw, dtype=np.float64)
    if p.shape != (3,) or q.shape != (4,) or not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise CalibrationError(f"{what}: expected 3 finite coordinates and a finite quaternion (x, y, z, w)")
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise CalibrationError(f"{what}: quaternion {q.tolist()} is not a rotation (norm {np.linalg.norm(q):.4f})")
    out = np.eye(4)
    out[:3, :3] = quat2mat([q[3], q[0], q[1], q[2]] / np.linalg.norm(q))
    out[:3, 3] = p
    return out


def check_rotation(rotation: np.ndarray, what: str) -> None:
    r = np.asarray(rotation, dtype=np.float64)
    if (r.shape != (3, 3) or not np.isfinite(r).all() or np.abs(r.T @ r - np.eye(3)).max() > 1e-6
            or abs(np.linalg.det(r) - 1.0) > 1e-6):
        raise CalibrationError(f"{what} is not a rotation matrix: {np.round(r, 4).tolist()}")


def to_xyz_quat(pose: np.ndarray) -> list[float]:
    """[x, y, z, qx, qy, qz, qw] (w ≥ 0) of a 4×4 pose, the site file's extrinsics layout."""
    check_rotation(pose[:3, :3], "the camera pose")
    w, x, y, z = mat2quat(pose[:3, :3])
    q = np.array([x, y, z, w]) * (1.0 if w >= 0 else -1.0)
    return [round(float(v), 6) for v in (*pose[:3, 3], *q)]


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))


def pose_error(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(translation error in mm, rotation error in degrees) between two 4×4 poses."""
    return float(np.linalg.norm(estimate[:3, 3] - truth[:3, 3]) * 1000.0), rotation_angle_deg(estimate, truth)


def marker_object_points(length: float) -> np.ndarray:
    """The 4 corners in the marker frame (x right, y up, z out), in cv2.aruco's order: top-left, top-right,
    bottom-right, bottom-left."""
    h = 0.5 * length
    return np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])


def image_to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) as an (H, W, 3) uint8 RGB array; ValueError otherwise.
    By hand: cv_bridge is not on PyPI. Rows may be padded (step ≥ width · channels)."""
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(msg.encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (rgb8, bgr8, rgba8, bgra8, mono8)")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if height <= 0 or width <= 0 or step < width * channels or data.size < step * height:
        raise ValueError(f"image of {width}×{height} ({msg.encoding}) with step {step} and {data.size} bytes")
    pixels = data[: step * height].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[:, :, :3]
    return np.ascontiguousarray(rgb[:, :, ::-1] if msg.encoding.startswith("bgr") else rgb)


def camera_model(info) -> tuple[np.ndarray, np.ndarray]:
    """K (3×3) and distortion coefficients of a sensor_msgs/CameraInfo; ValueError for an unusable K."""
    k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1.0:
        raise ValueError(f"camera_info has no usable intrinsics: K = {k.tolist()}")
    dist = np.asarray(info.d, dtype=np.float64)
    if info.distortion_model not in ("", "plumb_bob", "rational_polynomial") or not np.isfinite(dist).all():
        raise ValueError(f"unsupported distortion model {info.distortion_model!r}")
    return k, dist


class MarkerDetector:
    def __init__(self, dictionary: str = DEFAULT_DICTIONARY, marker_id: int = DEFAULT_MARKER_ID) -> None:
        if not hasattr(cv2.aruco, dictionary):
            raise CalibrationError(f"unknown ArUco dictionary {dictionary!r}")
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX  # sub-pixel corners: they carry the result
        self.detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)),
                                                params)
        self.marker_id = marker_id

    def corners(self, rgb: np.ndarray) -> np.ndarray | None:
        """The marker's 4 corners (4×2 pixels, cv2.aruco order), or None when it is not seen exactly once."""
        found, ids, _ = self.detector.detectMarkers(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        if ids is None:
            return None
        hits = [c for c, i in zip(found, ids.ravel(), strict=True) if int(i) == self.marker_id]
        return hits[0].reshape(4, 2).astype(np.float64) if len(hits) == 1 else None


def marker_in_camera(corners: np.ndarray, k: np.ndarray, dist: np.ndarray, length: float) -> np.ndarray:
    """4×4 pose of the marker in the camera's optical frame from one view (IPPE for a square)."""
    ok, rvec, tvec = cv2.solvePnP(marker_object_points(length), corners, k, dist, flags=cv2.SOLVEPNP_IPPE_SQUARE)
    if not ok:
        raise CalibrationError("solvePnP failed on a detected marker")
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.ravel()
    return out


def rigid_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """4×4 T minimising Σ‖T·src − dst‖² (Kabsch); CalibrationError when the points do not fix a rotation."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    u, s, vt = np.linalg.svd((src - mu_s).T @ (dst - mu_d))
    if s[1] < 1e-9 * max(s[0], 1e-300):
        raise CalibrationError("the marker corners are collinear: they do not fix the camera's rotation")
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, mu_d - rotation @ mu_s
    return out


@dataclass(frozen=True)
class Observation:
    ee_pose: np.ndarray  # 4×4, the robot's end-effector pose in the base frame at the image's stamp
    corners: np.ndarray  # 4×2 pixels


@dataclass(frozen=True)
class Residual:
    reprojection_px: float  # RMS over the pose's 4 corners under the solution
    position_mm: float  # the pose's own marker position (single-view PnP) against the solution's
    rotation_deg: float


@dataclass(frozen=True)
class Solution:
    camera_pose: np.ndarray  # 4×4: optical frame in the base frame, p_base = R p_cam + t
    residuals: list[Residual]
    rms_px: float


def solve_camera_pose(observations: Sequence[Observation], k: np.ndarray, dist: np.ndarray,
                      marker_in_ee: np.ndarray, marker_length: float, min_observations: int = 4,
                      max_residual_px: float = 2.0) -> Solution:
    """The camera's optical frame in the base frame from marker observations (see the module's "Solver").

    CalibrationError: fewer than `min_observations`, a pose whose reprojection RMS exceeds `max_residual_px`, or a
    result that is not a rotation."""
    if len(observations) < max(1, min_observations):
        raise CalibrationError(f"the marker was detected in {len(observations)} poses; at least "
                               f"{max(1, min_observations)} are needed")
    check_rotation(marker_in_ee[:3, :3], "the marker's pose in the end-effector frame")
    obj = marker_object_points(marker_length)
    obj_h = np.hstack([obj, np.ones((4, 1))])
    base_markers, cam_markers, base_pts, cam_pts, pixels = [], [], [], [], []
    for i, o in enumerate(observations):
        check_rotation(o.ee_pose[:3, :3], f"the robot pose of observation {i}")
        base_marker = o.ee_pose @ marker_in_ee
        cam_marker = marker_in_camera(o.corners, k, dist, marker_length)
        base_markers.append(base_marker)
        cam_markers.append(cam_marker)
        base_pts.append((obj_h @ base_marker.T)[:, :3])
        cam_pts.append((obj_h @ cam_marker.T)[:, :3])
        pixels.append(o.corners)
    base_pts, cam_pts, pixels = np.vstack(base_pts), np.vstack(cam_pts), np.vstack(pixels)
    guess = np.linalg.inv(rigid_fit(cam_pts, base_pts))  # base in camera: what solvePnP solves for
    rvec, tvec = cv2.Rodrigues(guess[:3, :3])[0], guess[:3, 3].reshape(3, 1).copy()
    ok, rvec, tvec = cv2.solvePnP(base_pts, pixels, k, dist, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or not (np.isfinite(rvec).all() and np.isfinite(tvec).all()):
        raise CalibrationError("the joint PnP over all corners did not converge")
    base_in_cam = np.eye(4)
    base_in_cam[:3, :3], base_in_cam[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.ravel()
    check_rotation(base_in_cam[:3, :3], "the solved camera rotation")
    camera_pose = np.linalg.inv(base_in_cam)
    projected = cv2.projectPoints(base_pts, rvec, tvec, k, dist)[0].reshape(-1, 2)
    errors = np.linalg.norm(projected - pixels, axis=1).reshape(-1, 4)
    residuals = []
    for i, (base_marker, cam_marker) in enumerate(zip(base_markers, cam_markers, strict=True)):
        mm, deg = pose_error(camera_pose @ cam_marker, base_marker)
        residuals.append(Residual(float(np.sqrt(np.mean(errors[i] ** 2))), mm, deg))
    bad = [i for i, r in enumerate(residuals) if not r.reprojection_px <= max_residual_px]
    if bad:
        raise CalibrationError(
            "reprojection residual over --max-residual-px=" + f"{max_residual_px} px at "
            + ", ".join(f"observation {i} ({residuals[i].reprojection_px:.2f} px)" for i in bad)
            + ": wrong marker mounting or length, a moving arm, or wrong intrinsics")
    return Solution(camera_pose, residuals, float(np.sqrt(np.mean(errors ** 2))))


def calibration_poses(spec: TaskSpec, count: int, margin: float = 0.1) -> list[np.ndarray]:
    """`count` end-effector positions spread over the task's workspace box (each side shrunk by `margin` of its
    width) in a snake order, so consecutive poses are neighbours; a planar task's at its ee_height, a 3-D task's
    alternating between two heights."""
    if count < 1:
        raise CalibrationError(f"--poses must be at least 1, got {count}")
    low, high = spec.workspace_low, spec.workspace_high
    low, high = low + margin * (high - low), high - margin * (high - low)
    rows = max(1, round(math.sqrt(count / 2.0)))
    cols = math.ceil(count / rows)
    out = []
    for r in range(rows):
        x = low[0] + (high[0] - low[0]) * (r / (rows - 1) if rows > 1 else 0.5)
        for c in (range(cols) if r % 2 == 0 else reversed(range(cols))):
            y = low[1] + (high[1] - low[1]) * (c / (cols - 1) if cols > 1 else 0.5)
            if spec.ee_height is not None:
                z = spec.ee_height
            else:
                z = low[2] + (high[2] - low[2]) * (0.25 if (r + c) % 2 == 0 else 0.75)
            out.append(np.array([x, y, z]))
    return out[:count]


def write_site(path: Path, camera: str, extrinsics: list[float]) -> None:
    """Set `cameras[<camera>].extrinsics` in the site YAML at `path` (created if missing; a camera not listed is
    added), keeping every other key; written to a temporary file in the same folder and renamed over the old one.
    Comments are not kept (PyYAML)."""
    document = {}
    if path.exists():
        document = yaml.safe_load(path.read_text()) or {}
        if not isinstance(document, dict) or not isinstance(document.get("site", {}), dict):
            raise CalibrationError(f"{path}: not a site file (expected a mapping with a 'site' mapping)")
    site = document.setdefault("site", {})
    cameras = site.setdefault("cameras", [])
    if not isinstance(cameras, list) or not all(isinstance(c, dict) for c in cameras):
        raise CalibrationError(f"{path}: site.cameras must be a list of mappings")
    entry = next((c for c in cameras if c.get("name") == camera), None)
    if entry is None:
        entry = {"name": camera}
        cameras.append(entry)
    entry["extrinsics"] = [float(v) for v in extrinsics]
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None)
    atomic_write_bytes(path, text.encode("utf-8"))  # a crash leaves the old site file or the new one


# ------------------------------------------------------------------------------------------------------ ROS side
def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class _RobotLink:
    """Subscriptions (robot pose, color image, camera_info) and the target publisher, spun on a background thread."""

    def __init__(self, args: argparse.Namespace) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from sgft_interfaces import COMMAND_QOS, ROBOT_STATE_QOS, Topics

        self.rclpy = rclpy
        self.PoseStamped = PoseStamped
        rclpy.init(args=[])
        self.node = rclpy.create_node("sgft_calibrate")
        self.lock = threading.Lock()
        self.poses: deque[tuple[int, np.ndarray]] = deque(maxlen=500)  # (stamp ns, 4×4)
        self.image = None
        self.info = None
        # reliable, newest only: a best-effort 1 MB image is lost whole when one fragment is
        image_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        namespace = f"/{args.camera_namespace or args.camera}/{args.camera}/color"
        self.node.create_subscription(PoseStamped, args.pose_topic, self._on_pose, ROBOT_STATE_QOS)
        self.node.create_subscription(Image, f"{namespace}/image_raw", self._on_image, image_qos)
        self.node.create_subscription(CameraInfo, f"{namespace}/camera_info", self._on_info, image_qos)
        self.target_pub = self.node.create_publisher(PoseStamped, args.target_topic or Topics.CARTESIAN_TARGET,
                                                     COMMAND_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutting down
            pass

    def _on_pose(self, msg) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        try:
            pose = pose_matrix([p.x, p.y, p.z], [o.x, o.y, o.z, o.w], "robot pose")
        except CalibrationError as err:
            self.node.get_logger().warning(f"ignoring {err}", throttle_duration_sec=5.0)
            return
        with self.lock:
            self.poses.append((_stamp_ns(msg.header), pose))

    def _on_image(self, msg) -> None:
        with self.lock:
            self.image = msg

    def _on_info(self, msg) -> None:
        with self.lock:
            self.info = msg

    def latest_pose(self) -> tuple[int, np.ndarray] | None:
        with self.lock:
            return self.poses[-1] if self.poses else None

    def pose_at(self, stamp_ns: int, tolerance_ns: int) -> np.ndarray | None:
        with self.lock:
            best = min(self.poses, key=lambda sp: abs(sp[0] - stamp_ns), default=None)
        return best[1] if best is not None and abs(best[0] - stamp_ns) <= tolerance_ns else None

    def recent_poses(self, since_ns: int) -> list[np.ndarray]:
        with self.lock:
            return [p for s, p in self.poses if s >= since_ns]

    def image_after(self, stamp_ns: int):
        with self.lock:
            if self.image is not None and self.info is not None and _stamp_ns(self.image.header) > stamp_ns:
                return self.image, self.info
        return None

    def send_target(self, xyz: np.ndarray, pose: np.ndarray, stamp_ns: int) -> None:
        msg = self.PoseStamped()
        msg.header.frame_id = BASE_FRAME
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
        w, x, y, z = mat2quat(pose[:3, :3])  # hold the measured orientation
        msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = (
            float(x), float(y), float(z), float(w))
        self.target_pub.publish(msg)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def _wait(what: str, timeout: float, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.02)
    raise CalibrationError(f"no {what} within {timeout} s")


def move_to(link: _RobotLink, spec: TaskSpec, goal: np.ndarray, args: argparse.Namespace) -> int:
    """Stream bounded targets (the task's envelope: its box, at most one max_delta step per control period from the
    measured pose; --approach-gain of the remaining way) until the arm is within --settle-tolerance of `goal` and
    still; returns the pose stamp then."""
    envelope = task_envelope(spec)
    axes = spec.action_dim
    if not envelope.contains(goal[:axes]):
        raise CalibrationError(f"pose {np.round(goal, 3).tolist()} is outside the task's envelope")
    deadline = time.monotonic() + args.move_timeout
    still_ns = int(args.settle_time * 1e9)
    while time.monotonic() < deadline:
        stamp, pose = _wait("robot pose", args.topic_timeout, link.latest_pose)
        position = pose[:3, 3]
        if np.linalg.norm(position[:axes] - goal[:axes]) < args.settle_tolerance:
            recent = [p[:3, 3] for p in link.recent_poses(stamp - still_ns)]
            oldest = link.pose_at(stamp - still_ns, int(0.5 * still_ns))
            if oldest is not None and np.ptp(np.array(recent), axis=0).max() < args.still_tolerance:
                return stamp
        # a fraction of the remaining error per period: a controller that mis-scales commanded changes (the sim's
        # "real" proxy: ×2.5) would otherwise overshoot the goal for ever
        bounded = envelope.bound(position[:axes], args.approach_gain * (goal[:axes] - position[:axes]))
        if bounded is None:
            raise CalibrationError(f"no safe target from the measured pose {position.tolist()}")
        target = np.append(bounded, spec.ee_height) if axes == 2 else bounded
        link.send_target(target, pose, stamp)
        time.sleep(spec.control_period)
    raise CalibrationError(f"the arm did not settle at {np.round(goal, 3).tolist()} within {args.move_timeout} s")


def collect(link: _RobotLink, spec: TaskSpec, args: argparse.Namespace) -> tuple[list[Observation], np.ndarray,
                                                                                   np.ndarray, int]:
    detector = MarkerDetector(args.dictionary, args.marker_id)
    goals = calibration_poses(spec, args.poses)
    observations: list[Observation] = []
    k = dist = None
    for i, goal in enumerate(goals):
        settled = move_to(link, spec, goal, args)
        image, info = _wait(f"color image on /{args.camera_namespace or args.camera}/{args.camera}/color",
                            args.topic_timeout, lambda s=settled: link.image_after(s))
        k, dist = camera_model(info)
        pose = link.pose_at(_stamp_ns(image.header), int(0.1e9))
        if pose is None:
            print(f"pose {i}: no robot pose at the image's stamp: skipped")
            continue
        corners = detector.corners(image_to_rgb(image))
        if corners is None:
            print(f"pose {i}: ee {np.round(pose[:3, 3], 3).tolist()}: marker not seen")
            continue
        observations.append(Observation(pose, corners))
    if k is None:
        raise CalibrationError("no camera_info received")
    return observations, k, dist, len(goals)


def _start_sim(args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "sgft_sim.robot_node", "--ros-args", "-p", f"task:={args.task}",
               "-p", f"proxy:={args.proxy}", "-p", f"cameras:=[{args.camera}]", "-p", f"time_scale:={args.time_scale}",
               "-p", "idle_time_scale:=0.0", "-p", f"seed:={args.seed}",
               "-p", f"image_width:={args.image_size[0]}", "-p", f"image_height:={args.image_size[1]}"]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def _sim_truth(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(the simulated camera's optical frame in the base frame, the marker's pose in the ee frame) from the model."""
    from sgft_sim import make_env
    from sgft_sim.camera import CAMERA_NAMES

    if args.camera not in CAMERA_NAMES:
        raise CalibrationError(f"--camera {args.camera}: the simulator has {list(CAMERA_NAMES)}")
    env = make_env(args.task, args.proxy, seed=args.seed)
    try:
        env.reset(seed=args.seed)
        return env.camera_pose(args.camera), env.marker_in_ee()
    finally:
        env.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sgft_bringup.calibrate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--site", type=Path, help="site YAML whose cameras[<camera>].extrinsics are written")
    parser.add_argument("--camera", default="camera1", help="camera_name (its topics under /<ns>/<name>/color)")
    parser.add_argument("--camera-namespace", default="", help="camera_namespace (default: the camera name)")
    parser.add_argument("--task", default="push", help="task whose safety envelope bounds the motion")
    parser.add_argument("--poses", type=int, default=8, help="poses to visit")
    parser.add_argument("--min-detections", type=int, default=6, help="poses that must show the marker")
    parser.add_argument("--max-residual-px", type=float, default=2.0, help="largest reprojection RMS of a pose")
    parser.add_argument("--marker-in-ee", type=float, nargs=7, metavar=("X", "Y", "Z", "QX", "QY", "QZ", "QW"),
                        help="the marker's pose in the robot's end-effector frame (required without --sim)")
    parser.add_argument("--marker-length", type=float, default=DEFAULT_MARKER_LENGTH, help="black square's edge, m")
    parser.add_argument("--dictionary", default=DEFAULT_DICTIONARY)
    parser.add_argument("--marker-id", type=int, default=DEFAULT_MARKER_ID)
    parser.add_argument("--pose-topic", default="/franka_robot_state_broadcaster/current_pose")
    parser.add_argument("--target-topic", default="", help="Cartesian target topic (default: the suite's)")
    parser.add_argument("--approach-gain", type=float, default=0.4,
                        help="fraction of the remaining way commanded per control period (then bounded by max_delta)")
    parser.add_argument("--settle-tolerance", type=float, default=0.005, help="m from the goal counted as arrived")
    parser.add_argument("--still-tolerance", type=float, default=0.0005, help="m of motion counted as still")
    parser.add_argument("--settle-time", type=float, default=0.4, help="s (robot clock) the arm must be still")
    parser.add_argument("--move-timeout", type=float, default=60.0, help="wall s to reach one pose")
    parser.add_argument("--topic-timeout", type=float, default=30.0, help="wall s to wait for a message")
    sim = parser.add_argument_group("simulation")
    sim.add_argument("--sim", action="store_true", help="start the simulated robot and grade against its camera")
    sim.add_argument("--proxy", default="real")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--time-scale", type=float, default=2.0, help="sim seconds per wall second")
    sim.add_argument("--image-size", type=int, nargs=2, default=(848, 480), metavar=("W", "H"))
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.approach_gain <= 1.0:
        raise CalibrationError(f"--approach-gain={args.approach_gain} outside (0, 1]")
    spec = get_task(args.task)
    if spec.action_kind != "cartesian":
        raise CalibrationError(f"--task {args.task} commands joints; calibration moves the arm with Cartesian "
                               "targets inside a Cartesian task's envelope (push, insert)")
    truth = None
    if args.sim:
        from sgft_sim.robot import ARUCO_DICTIONARY, ARUCO_ID, MARKER_LENGTH

        truth, marker_in_ee = _sim_truth(args)
        args.dictionary, args.marker_id, args.marker_length = ARUCO_DICTIONARY, ARUCO_ID, MARKER_LENGTH
    elif args.marker_in_ee is None:
        raise CalibrationError("--marker-in-ee is required on a real robot (the marker's pose in the ee frame)")
    else:
        marker_in_ee = pose_matrix(args.marker_in_ee[:3], args.marker_in_ee[3:], "--marker-in-ee")
    if args.site is None:
        raise CalibrationError("--site is required (the site YAML to write)")
    sim = _start_sim(args) if args.sim else None
    link = None
    try:
        link = _RobotLink(args)
        observations, k, dist, visited = collect(link, spec, args)
    finally:
        if link is not None:
            link.close()
        if sim is not None:
            sim.terminate()
            try:
                sim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
    if len(observations) < args.min_detections:
        raise CalibrationError(f"the marker was seen in {len(observations)} of {visited} poses; "
                               f"--min-detections is {args.min_detections}")
    solution = solve_camera_pose(observations, k, dist, marker_in_ee, args.marker_length,
                                 min_observations=args.min_detections, max_residual_px=args.max_residual_px)
    for i, (o, r) in enumerate(zip(observations, solution.residuals, strict=True)):
        print(f"observation {i}: ee {np.round(o.ee_pose[:3, 3], 3).tolist()}: reprojection {r.reprojection_px:.2f} px,"
              f" single-view marker {r.position_mm:.1f} mm / {r.rotation_deg:.2f} deg off the fit")
    extrinsics = to_xyz_quat(solution.camera_pose)
    print(f"{args.camera} optical frame in {BASE_FRAME} (x y z qx qy qz qw): {extrinsics}; RMS reprojection "
          f"{solution.rms_px:.2f} px over {len(observations)} poses")
    write_site(args.site, args.camera, extrinsics)
    print(f"wrote {args.site}: site.cameras[{args.camera}].extrinsics (depth optical frame, assumed = color optical)")
    if truth is not None:
        mm, deg = pose_error(solution.camera_pose, truth)
        print(f"calibration error: {mm:.2f} mm, {deg:.3f} deg")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except CalibrationError as err:
        print(f"calibrate: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
