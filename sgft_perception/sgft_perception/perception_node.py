"""Perception node: colored PointCloud2 from one or two cameras -> sgft_msgs/ObjectDetection in the robot base frame.

A thin adapter: messages in, sgft_perception.detector does the work, messages out. Each cloud is processed when it
arrives and fused with the other camera's newest result if that one is fresh, so a detection goes out per cloud.
A malformed, stale or foreign-frame cloud is rejected (counted, logged once and then at most every
REJECTION_LOG_PERIOD_S per kind) and yields valid=false with the reason; it never stops the node.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import replace
from functools import partial

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import PointCloud2

from sgft_interfaces import SENSOR_QOS, Topics
from sgft_interfaces.cloud import CloudFormatError
from sgft_interfaces.node_main import run_node
from sgft_interfaces.pointcloud2 import build_pointcloud2, view_of
from sgft_interfaces.stamps import stamp_problem
from sgft_msgs.msg import ObjectDetection
from sgft_perception.detector import CameraResult, DetectorConfig, Extrinsic, HsvRange, detect_in_cloud, fuse

NODE_NAME = "sgft_perception"
# The topics this node uses, in one place (names from the shared sgft_interfaces.Topics).
DEFAULT_CLOUD_TOPICS = [Topics.CAMERA_CLOUDS[0]]
DETECTION_TOPIC = Topics.OBJECT_DETECTION
OBJECT_POINTS_TOPIC = Topics.OBJECT_POINTS

# Camera clouds: best effort, depth 1 (SENSOR_QOS). realsense2_camera publishes best effort; at 30 Hz and 8 MB a
# cloud only the newest one matters, and a reliable, deeper queue would make an 8 MB cloud wait behind stale ones
# (or stall the camera's writer) instead of being dropped.
CLOUD_QOS = SENSOR_QOS
# Detections are small and the policy acts on each: reliable (matches reliable and best-effort subscribers alike).
DETECTION_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
REJECTION_LOG_PERIOD_S = 10.0
EXTRINSIC_SIZE = 7  # x y z qx qy qz qw

# name: (default, description). A default of a Parameter.Type means "no default: must be given".
PARAMETERS = {
    "cloud_topics": (DEFAULT_CLOUD_TOPICS, "colored PointCloud2 topics, one per camera (one or two cameras)"),
    "cloud_frame_ids": (Parameter.Type.STRING_ARRAY,
                        "optional: the frame_id each camera's cloud must carry (e.g. camera1_depth_optical_frame); "
                        "a cloud in another frame is rejected, since its extrinsic would be wrong. Unset: no check"),
    "extrinsics": (Parameter.Type.DOUBLE_ARRAY,
                   "required calibration: per camera, in cloud_topics order, 7 numbers x y z qx qy qz qw: the pose of "
                   "the cloud's optical frame (x right, y down, z forward) in output_frame"),
    "output_frame": ("fr3_link0", "robot base frame the detection is expressed in"),
    "box_min": ([0.2, -0.5, 0.005], "workspace box lower corner in output_frame, m (set z above the table top)"),
    "box_max": ([0.9, 0.5, 0.3], "workspace box upper corner in output_frame, m"),
    "hsv_min": ([340.0, 0.5, 0.2], "HSV lower bound: hue degrees [0, 360), saturation, value [0, 1]. "
                                   "hue_min > hue_max wraps through 0 (red)"),
    "hsv_max": ([20.0, 1.0, 1.0], "HSV upper bound: hue degrees [0, 360), saturation, value [0, 1]"),
    "min_points": (30, "fewer object points than this in a camera: occluded or absent, no position from it"),
    "expected_points": (400, "object points one camera sees when nothing occludes it: confidence = found / expected"),
    "cluster_cell": (0.02, "xy grid cell (m) whose densest cell seeds the object cluster"),
    "cluster_radius": (0.05, "object points farther than this (xy, m) from the cluster seed are ignored"),
    "top_band": (0.005, "xy from the object's top surface: points within this band (m) below its top; 0: median "
                        "of all its points"),
    "position_offset": ([0.0, 0.0, 0.0], "added to the measured top-surface position, m (e.g. -half height in z)"),
    "max_cloud_age": (0.5, "a cloud older than this (s, stamp vs. node clock) is stale: rejected, not fused"),
    "max_stamp_future": (0.5, "a cloud stamped more than this (s) ahead of the node clock is rejected: it would never "
                              "go stale"),
    "publish_object_points": (True, "publish the selected object points as a debug PointCloud2"),
}


class PerceptionNode(Node):
    def __init__(self):
        super().__init__(NODE_NAME)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self._topics, self._frames, self._extrinsics, self._config = self._read_parameters()
        self._max_age_s = float(self.get_parameter("max_cloud_age").value)
        self._max_future_s = float(self.get_parameter("max_stamp_future").value)
        self._output_frame = str(self.get_parameter("output_frame").value)
        self._publish_points = bool(self.get_parameter("publish_object_points").value)
        self._latest: list[tuple[Time, CameraResult] | None] = [None] * len(self._topics)
        self.rejections: Counter[str] = Counter()
        self._last_rejection_log: dict[str, float] = {}

        self._detection_pub = self.create_publisher(ObjectDetection, DETECTION_TOPIC, DETECTION_QOS)
        self._points_pub = self.create_publisher(PointCloud2, OBJECT_POINTS_TOPIC, SENSOR_QOS)
        for index, topic in enumerate(self._topics):
            self.create_subscription(PointCloud2, topic, partial(self._on_cloud, index), CLOUD_QOS)
        self.get_logger().info(f"detecting in {self._topics} -> {DETECTION_TOPIC} (frame {self._output_frame})")

    def _read_parameters(self) -> tuple[list[str], list[str], list[Extrinsic], DetectorConfig]:
        """Validate every parameter at start-up; raise ValueError listing what is wrong."""
        value = {}
        for name in PARAMETERS:
            try:
                value[name] = self.get_parameter(name).value
            except ParameterUninitializedException:
                value[name] = None
        topics = list(value["cloud_topics"])
        errors = []
        if not 1 <= len(topics) <= 2 or len(set(topics)) != len(topics) or not all(topics):
            errors.append(f"cloud_topics must name one or two distinct topics, got {topics}")
        frames = list(value["cloud_frame_ids"] or [])
        if frames and len(frames) != len(topics):
            errors.append(f"cloud_frame_ids needs one frame per cloud topic ({len(topics)}), got {frames}")
        raw = value["extrinsics"]
        extrinsics = []
        if raw is None or len(raw) != EXTRINSIC_SIZE * len(topics):
            errors.append(f"extrinsics is a required calibration: {EXTRINSIC_SIZE} numbers (x y z qx qy qz qw) per "
                          f"cloud topic, {EXTRINSIC_SIZE * len(topics)} in all; got {list(raw or [])}")
        else:
            for i in range(len(topics)):
                pose = raw[EXTRINSIC_SIZE * i:EXTRINSIC_SIZE * (i + 1)]
                try:
                    extrinsics.append(Extrinsic.from_xyz_quat(pose[:3], pose[3:]))
                except ValueError as err:
                    errors.append(f"extrinsics of {topics[i]}: {err}")
        if not value["max_cloud_age"] > 0:
            errors.append(f"max_cloud_age must be > 0 s, got {value['max_cloud_age']}")
        if not 0 < value["max_stamp_future"] <= 10:
            errors.append(f"max_stamp_future must be in (0, 10] s, got {value['max_stamp_future']}")
        if not value["output_frame"]:
            errors.append("output_frame must not be empty")
        config = None
        try:
            hsv_min, hsv_max = list(value["hsv_min"]), list(value["hsv_max"])
            if len(hsv_min) != 3 or len(hsv_max) != 3:
                raise ValueError(f"hsv_min and hsv_max need 3 values (h, s, v), got {hsv_min}, {hsv_max}")
            hsv = HsvRange(hsv_min[0], hsv_max[0], hsv_min[1], hsv_max[1], hsv_min[2], hsv_max[2])
            config = DetectorConfig(
                box_min=np.array(value["box_min"]), box_max=np.array(value["box_max"]), hsv=hsv,
                min_points=int(value["min_points"]), expected_points=int(value["expected_points"]),
                cluster_cell=float(value["cluster_cell"]), cluster_radius=float(value["cluster_radius"]),
                top_band=float(value["top_band"]), position_offset=np.array(value["position_offset"]))
        except ValueError as err:
            errors.append(str(err))
        if errors:
            raise ValueError("; ".join(errors))
        return topics, frames, extrinsics, config

    def _reject(self, kind: str, detail: str) -> None:
        """Count a rejected cloud; log the first of each kind at once, then at most every REJECTION_LOG_PERIOD_S."""
        self.rejections[kind] += 1
        now = time.monotonic()
        if now - self._last_rejection_log.get(kind, -np.inf) >= REJECTION_LOG_PERIOD_S:
            self._last_rejection_log[kind] = now
            self.get_logger().warning(f"rejected cloud ({kind}, {self.rejections[kind]} so far): {detail}")

    def _process(self, index: int, msg: PointCloud2, now: Time) -> CameraResult:
        topic = self._topics[index]
        stamp = Time.from_msg(msg.header.stamp, clock_type=now.clock_type)
        age_s = (now - stamp).nanoseconds * 1e-9
        kind, detail = None, ""
        if self._frames and msg.header.frame_id != self._frames[index]:
            kind, detail = "wrong_frame", f"frame_id {msg.header.frame_id!r}, expected {self._frames[index]!r}"
        elif age_s > self._max_age_s:
            kind, detail = "stale", f"stale cloud, {age_s:.3f} s old > max_cloud_age {self._max_age_s} s"
        else:
            try:
                result = detect_in_cloud(view_of(msg), self._extrinsics[index], self._config)
                return result if result.valid else replace(result, reason=f"{topic}: {result.reason}")
            except CloudFormatError as err:
                kind, detail = err.kind, f"malformed cloud: {err}"
            except Exception as err:  # last line of defense: no cloud, however odd, may stop the node
                kind, detail = "internal_error", f"{type(err).__name__}: {err}"
        self._reject(kind, f"{topic}: {detail}")
        empty = np.empty((0, 3), np.float32)
        return CameraResult(empty, empty.astype(np.uint8), 0, None, f"{topic}: {detail}")

    def _on_cloud(self, index: int, msg: PointCloud2) -> None:
        try:
            self._detect_and_publish(index, msg)
        except Exception as err:  # noqa: BLE001 - last line of defense: no message, however odd, may stop the node
            self._reject("internal_error", f"{self._topics[index]}: {type(err).__name__}: {err}")

    def _detect_and_publish(self, index: int, msg: PointCloud2) -> None:
        now = self.get_clock().now()
        problem = stamp_problem(msg.header.stamp, now.nanoseconds, self._max_future_s)
        if problem:  # nothing is published: a detection would carry the bogus stamp on to the policy
            self._reject("bad_stamp", f"{self._topics[index]}: {problem}")
            return
        result = self._process(index, msg, now)
        self._latest[index] = (Time.from_msg(msg.header.stamp, clock_type=now.clock_type), result)
        fresh = [result]  # plus the other camera's newest result, while it is fresh
        for other, entry in enumerate(self._latest):
            if other != index and entry is not None and (now - entry[0]).nanoseconds * 1e-9 <= self._max_age_s:
                fresh.append(entry[1])
        detection = fuse(fresh, self._config, num_cameras=len(self._topics))

        out = ObjectDetection()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = self._output_frame
        out.position.x, out.position.y, out.position.z = (float(v) for v in detection.position)
        out.num_points = detection.num_points
        out.confidence = float(detection.confidence)
        out.num_cameras = detection.num_cameras
        out.valid = detection.valid
        out.reason = detection.reason
        self._detection_pub.publish(out)

        if self._publish_points and self._points_pub.get_subscription_count() > 0:
            used = [r for r in fresh if r.valid]
            points = np.concatenate([r.points for r in used]) if used else np.empty((0, 3), np.float32)
            colors = np.concatenate([r.colors for r in used]) if used else np.empty((0, 3), np.uint8)
            self._points_pub.publish(build_pointcloud2(points, colors, self._output_frame, msg.header.stamp))


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, NODE_NAME, refuse=(ValueError, InvalidParameterTypeException), args=args)


if __name__ == "__main__":
    sys.exit(main())
