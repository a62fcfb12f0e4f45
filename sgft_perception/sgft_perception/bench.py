"""Perception latency benchmark: the numpy path for one cloud, and end to end through DDS.

    python -m sgft_perception.bench                 # both parts
    python -m sgft_perception.bench --skip-dds      # numpy path only (no ROS needed)

Part 1 times parse -> transform + crop -> color threshold -> position on one synthetic 848x480 cloud in the
realsense layout (x, y, z, rgb at 16, point_step 20) with depth holes (NaN), stage by stage and in total.
Part 2 starts the perception node as a separate process, publishes clouds from this process and measures, for each
detection received, now - cloud stamp (the stamp is set just before publishing), at 848x480 and 424x240. The DDS
share is roughly the end-to-end median minus the processing median.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sgft_interfaces.cloud import (
    REALSENSE_FIELDS,
    REALSENSE_POINT_STEP,
    CloudLayout,
    build_cloud_bytes,
    cloud_view,
    unpack_rgb,
)
from sgft_perception.detector import DetectorConfig, HsvRange, crop_to_box, detect_in_cloud, robust_position
from sgft_perception.synthetic import PuckScene, look_at, render_cloud

CAMERA = look_at([0.5, -0.6, 0.55], [0.5, 0.0, 0.0])
SCENE = PuckScene(puck_center=(0.55, 0.1))
CONFIG = DetectorConfig(box_min=np.array([0.2, -0.5, 0.005]), box_max=np.array([0.9, 0.5, 0.3]),
                        hsv=HsvRange(340.0, 20.0, 0.5, 1.0, 0.2, 1.0))
RESOLUTIONS = ((848, 480), (424, 240))


def summary(times_s: list[float]) -> str:
    ms = np.asarray(times_s) * 1e3
    return (f"median {np.median(ms):7.2f} ms   p90 {np.percentile(ms, 90):7.2f} ms   "
            f"p99 {np.percentile(ms, 99):7.2f} ms   (n={len(ms)})")


def bench_numpy(runs: int) -> float:
    xyz, rgb = render_cloud(SCENE, CAMERA, 848, 480)
    data = build_cloud_bytes(xyz, rgb)
    layout = CloudLayout(REALSENSE_FIELDS, REALSENSE_POINT_STEP, REALSENSE_POINT_STEP * len(xyz), len(xyz), 1)
    print(f"numpy path, one 848x480 cloud: {len(xyz)} points, {len(data) / 1e6:.1f} MB, "
          f"{np.isnan(xyz[:, 0]).mean():.0%} without depth")
    stages: dict[str, list[float]] = {k: [] for k in ("parse", "transform+crop", "color", "position", "total")}
    for _ in range(runs):
        t0 = time.perf_counter()
        view = cloud_view(data, layout)
        t1 = time.perf_counter()
        points, idx = crop_to_box(view, CAMERA, CONFIG.box_min, CONFIG.box_max)
        t2 = time.perf_counter()
        selected = CONFIG.hsv.select(unpack_rgb(view["rgb"][idx]))
        t3 = time.perf_counter()
        robust_position(points[selected], CONFIG.cluster_cell, CONFIG.cluster_radius, CONFIG.top_band)
        t4 = time.perf_counter()
        result = detect_in_cloud(cloud_view(data, layout), CAMERA, CONFIG)  # the real call, timed whole
        t5 = time.perf_counter()
        for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            stages[key].append(dt)
    for key, times in stages.items():
        print(f"  {key:15s} {summary(times)}")
    error_mm = (result.position[:2] - SCENE.puck_center) * 1e3
    print(f"  {len(idx)} points in the box, {len(result.points)} object points, xy error {np.round(error_mm, 1)} mm")
    return float(np.median(stages["total"]))


def bench_dds(clouds: int, rate_hz: float, transport: str) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    from sgft_interfaces.pointcloud2 import build_pointcloud2
    from sgft_interfaces.qos import select_transport
    from sgft_msgs.msg import ObjectDetection
    from sgft_perception.perception_node import DETECTION_TOPIC

    os.environ["ROS_DOMAIN_ID"] = str(random.Random(time.time_ns()).randint(1, 100))
    transport = select_transport(transport)
    topic = "/bench/camera/points"
    extrinsic = "[" + ",".join(repr(float(v)) for v in [*CAMERA.translation, *CAMERA.quaternion_xyzw]) + "]"
    package_root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "sgft_perception.perception_node", "--ros-args",
                             "-p", f"cloud_topics:=['{topic}']", "-p", f"extrinsics:={extrinsic}",
                             "-p", "max_cloud_age:=5.0"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("perception_bench", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    latencies: dict[tuple[int, int], float] = {}

    def on_detection(msg: ObjectDetection) -> None:
        now_ns = node.get_clock().now().nanoseconds
        latencies[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (now_ns - _ns(msg.header.stamp)) * 1e-9

    node.create_subscription(ObjectDetection, DETECTION_TOPIC, on_detection,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    pub = node.create_publisher(PointCloud2, topic, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        print(f"end to end through DDS ({transport}): cloud stamp -> detection received in this process")
        for width, height in RESOLUTIONS:
            msg = build_pointcloud2(*render_cloud(SCENE, CAMERA, width, height), "camera_depth_optical_frame")
            # warm-up until the node answers (discovery, imports), then measure
            deadline = time.monotonic() + 60
            latencies.clear()
            while not latencies and time.monotonic() < deadline and proc.poll() is None:
                msg.header.stamp = node.get_clock().now().to_msg()
                pub.publish(msg)
                end = time.monotonic() + 1.0
                while not latencies and time.monotonic() < end:
                    executor.spin_once(timeout_sec=0.05)
            if not latencies:
                print(f"  {width}x{height}: the node never answered")
                continue
            latencies.clear()
            sent = 0
            for _ in range(clouds):
                msg.header.stamp = node.get_clock().now().to_msg()
                pub.publish(msg)
                sent += 1
                end = time.monotonic() + 1.0 / rate_hz
                while time.monotonic() < end:
                    executor.spin_once(timeout_sec=max(0.0, end - time.monotonic()))
            end = time.monotonic() + 2.0
            while time.monotonic() < end and len(latencies) < sent:
                executor.spin_once(timeout_sec=0.05)
            lost = sent - len(latencies)
            print(f"  {width}x{height} ({width * height * REALSENSE_POINT_STEP / 1e6:.1f} MB) "
                  f"{summary(list(latencies.values()))}, {lost} of {sent} lost")
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        proc.terminate()
        proc.wait(timeout=10)


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="numpy path repetitions")
    parser.add_argument("--clouds", type=int, default=40, help="clouds per resolution through DDS")
    parser.add_argument("--rate", type=float, default=5.0, help="clouds per second through DDS")
    parser.add_argument("--transport", default="profile",
                        help="'profile': the FASTDDS_DEFAULT_PROFILES_FILE setup.bash sets (the graph's); else a "
                             "FASTDDS_BUILTIN_TRANSPORTS value for both processes (DEFAULT, LARGE_DATA, ...)")
    parser.add_argument("--skip-dds", action="store_true", help="only the numpy path")
    args = parser.parse_args()
    bench_numpy(args.runs)
    if not args.skip_dds:
        bench_dds(args.clouds, args.rate, args.transport)


if __name__ == "__main__":
    main()
