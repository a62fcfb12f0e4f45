"""The perception node as a separate process over real DDS: valid clouds give correct detections, malformed ones
give valid=false with the reason, are logged once per kind, and never stop the node.

Both processes share a ROS_DOMAIN_ID drawn at random for this run, so parallel runs do not hear each other. Every
wait has a timeout so a failure ends the test instead of hanging it.

Fast DDS's built-in DEFAULT transports (UDP + a 512 KiB shared-memory segment) lose multi-MB best-effort clouds
here; the graph runs with setup.bash's transport profile (sgft_bringup/config/fastdds.xml: a 64 MiB shared-memory
segment), and so do both processes of this test.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402

from sgft_interfaces.pointcloud2 import build_pointcloud2  # noqa: E402
from sgft_msgs.msg import ObjectDetection  # noqa: E402
from sgft_perception.perception_node import DETECTION_TOPIC  # noqa: E402
from sgft_perception.synthetic import PuckScene, look_at, render_cloud  # noqa: E402
from sgft_testing import RERUN_MULTIPROCESS  # noqa: E402

pytestmark = [RERUN_MULTIPROCESS, pytest.mark.faults]  # (why reruns: sgft_testing)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["/test/camera1/points", "/test/camera2/points"]
CAMERAS = [look_at([0.5, -0.6, 0.55], [0.5, 0.0, 0.0]), look_at([1.2, 0.0, 0.5], [0.5, 0.0, 0.0])]
FRAMES = ["camera1_depth_optical_frame", "camera2_depth_optical_frame"]
MAX_CLOUD_AGE_S = 0.5
START_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 5.0
PUCK = PuckScene(puck_center=(0.55, 0.1))


def ros_array(values) -> str:
    return "[" + ",".join(repr(v if isinstance(v, str) else float(v)) for v in values) + "]"


@pytest.fixture()  # per test: a rerun must start fresh processes
def graph():
    assert os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"), "source setup.bash: without its transport profile " \
        "Fast DDS loses multi-MB clouds"
    saved = {"ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID")}
    # read when rclpy.init below creates the participant, and inherited by the node process
    os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid() ^ time.time_ns()).randint(1, 100))
    extrinsics = [v for cam in CAMERAS for v in [*cam.translation, *cam.quaternion_xyzw]]
    args = ["--ros-args", "-p", f"cloud_topics:={ros_array(TOPICS)}", "-p", f"cloud_frame_ids:={ros_array(FRAMES)}",
            "-p", f"extrinsics:={ros_array(extrinsics)}", "-p", f"max_cloud_age:={MAX_CLOUD_AGE_S}",
            "-p", "expected_points:=150", "-p", "min_points:=20"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")]),
               PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, "-m", "sgft_perception.perception_node", *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("perception_node_test", context=context)
    received: list[ObjectDetection] = []
    node.create_subscription(ObjectDetection, DETECTION_TOPIC, received.append,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    pubs = [node.create_publisher(PointCloud2, t, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
            for t in TOPICS]
    clouds = [render_cloud(PUCK, cam, 424, 240, seed=i) for i, cam in enumerate(CAMERAS)]
    yield dict(node=node, proc=proc, log=log, received=received, pubs=pubs, clouds=clouds, context=context)
    node.destroy_node()
    rclpy.shutdown(context=context)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def exchange(graph, camera: int, make_msg, timeout_s: float = REPLY_TIMEOUT_S) -> ObjectDetection:
    """Publish a cloud (re-sent with a fresh stamp while unanswered: best effort may drop one) and return the
    detection whose stamp is that cloud's."""
    node, received = graph["node"], graph["received"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert graph["proc"].poll() is None, "perception node died:\n" + node_log(graph)
        msg = make_msg()
        if msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0:
            msg.header.stamp = node.get_clock().now().to_msg()
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        graph["pubs"][camera].publish(msg)
        resend_at = time.monotonic() + 1.0
        while time.monotonic() < min(resend_at, deadline):
            _spin(graph)
            for det in received:
                if (det.header.stamp.sec, det.header.stamp.nanosec) == stamp:
                    return det
    raise AssertionError(f"no detection for the cloud within {timeout_s} s; node log:\n{node_log(graph)}")


def _spin(graph) -> None:
    executor = graph.setdefault("executor", rclpy.executors.SingleThreadedExecutor(context=graph["context"]))
    if graph["node"] not in executor.get_nodes():
        executor.add_node(graph["node"])
    executor.spin_once(timeout_sec=0.05)


def node_log(graph) -> str:
    graph["log"].flush()
    graph["log"].seek(0)
    return graph["log"].read()


def cloud_msg(graph, camera: int, stamp=None):
    xyz, rgb = graph["clouds"][camera]
    return build_pointcloud2(xyz, rgb, FRAMES[camera], stamp)


def assert_puck(det: ObjectDetection, num_cameras: int):
    assert det.valid, det.reason
    assert det.header.frame_id == "fr3_link0" and det.num_cameras == num_cameras and det.reason == ""
    np.testing.assert_allclose([det.position.x, det.position.y, det.position.z], [*PUCK.puck_center, 0.02],
                               atol=0.01)
    assert 0 < det.confidence <= 1 and det.num_points >= 20


def test_node_detects_fuses_and_survives_malformed_clouds(graph):
    det = exchange(graph, 0, lambda: cloud_msg(graph, 0), timeout_s=START_TIMEOUT_S)  # includes discovery
    assert_puck(det, num_cameras=1)
    assert det.confidence == pytest.approx(det.num_points / (2 * 150), abs=1e-6) or det.confidence == 1.0
    one_camera_points = det.num_points

    fused = exchange(graph, 1, lambda: cloud_msg(graph, 1))  # camera 1's result is still fresh: two cameras
    assert_puck(fused, num_cameras=2)
    assert fused.num_points > one_camera_points

    time.sleep(MAX_CLOUD_AGE_S + 0.2)  # let both results age out: what follows is judged on camera 0 alone

    def truncated():
        msg = cloud_msg(graph, 0)
        msg.data = msg.data[:-7]
        return msg

    def missing_rgb():
        msg = cloud_msg(graph, 0)
        msg.fields = msg.fields[:3]
        return msg

    def wrong_point_step():
        msg = cloud_msg(graph, 0)
        msg.point_step = 16  # rgb at 16 no longer fits
        return msg

    def all_nan():
        xyz, rgb = graph["clouds"][0]
        return build_pointcloud2(np.full_like(xyz, np.nan), rgb, FRAMES[0])

    def inf_points():
        xyz, rgb = graph["clouds"][0]
        return build_pointcloud2(np.where(np.isnan(xyz), np.inf, xyz), rgb, FRAMES[0])

    def empty():
        return build_pointcloud2(np.empty((0, 3), np.float32), np.empty((0, 3), np.uint8), FRAMES[0])

    def stale():
        past = graph["node"].get_clock().now() - rclpy.duration.Duration(seconds=5.0)
        return cloud_msg(graph, 0, past.to_msg())

    def wrong_frame():
        msg = cloud_msg(graph, 0)
        msg.header.frame_id = "camera2_depth_optical_frame"
        return msg

    cases = [(truncated, "bad_data_length"), (truncated, "bad_data_length"), (missing_rgb, "missing_field"),
             (wrong_point_step, "bad_point_step"), (all_nan, "no points inside the workspace box"),
             (empty, "empty cloud"), (stale, "stale"), (wrong_frame, "frame_id")]
    for make, reason in cases:
        det = exchange(graph, 0, make)
        assert not det.valid and reason in det.reason, (make.__name__, det.reason)
        assert np.isnan([det.position.x, det.position.y, det.position.z]).all() and det.num_points == 0

    # Inf points (where the depth image had holes) are dropped like NaN: the puck is still found
    assert_puck(exchange(graph, 0, inf_points), num_cameras=1)
    # and after all of that the node still works
    assert_puck(exchange(graph, 0, lambda: cloud_msg(graph, 0)), num_cameras=1)
    assert graph["proc"].poll() is None

    log = node_log(graph)
    # each rejection kind is logged once (then at most every 10 s), not once per message
    assert log.count("rejected cloud (bad_data_length") == 1, log
    for kind in ("missing_field", "bad_point_step", "stale", "wrong_frame"):
        assert f"rejected cloud ({kind}" in log, log


def test_negative_zero_and_future_stamps_are_rejected_without_a_detection(graph):
    """A peer's cloud with a negative, zero or far-future stamp: rejected and counted, no detection carries the
    stamp on, and the node keeps working (a negative stamp used to raise inside the callback and stop it)."""
    from builtin_interfaces.msg import Time as TimeMsg

    exchange(graph, 0, lambda: cloud_msg(graph, 0), timeout_s=START_TIMEOUT_S)  # discovery done
    future = graph["node"].get_clock().now() + rclpy.duration.Duration(seconds=3600.0)
    bad = [TimeMsg(sec=-5, nanosec=0), TimeMsg(sec=0, nanosec=0), future.to_msg()]
    heard: list[tuple[int, int]] = []
    sub = graph["node"].create_subscription(ObjectDetection, DETECTION_TOPIC,
                                            lambda m: heard.append((m.header.stamp.sec, m.header.stamp.nanosec)),
                                            10)
    for stamp in bad:
        graph["pubs"][0].publish(cloud_msg(graph, 0, stamp))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        _spin(graph)
    graph["node"].destroy_subscription(sub)
    assert not {(s.sec, s.nanosec) for s in bad} & set(heard), heard
    assert_puck(exchange(graph, 0, lambda: cloud_msg(graph, 0)), num_cameras=1)
    assert graph["proc"].poll() is None
    assert "rejected cloud (bad_stamp" in node_log(graph)


def test_out_of_range_parameters_are_rejected_at_start_up():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")]))
    base = ["--ros-args", "-p", "extrinsics:=[0.5,-0.6,0.55,0.0,0.0,0.0,1.0]"]
    cases = [(["-p", "box_min:=[1.0,0.0,0.0]", "-p", "box_max:=[0.5,1.0,1.0]"], ["box_min < box_max"]),
             (["-p", "hsv_min:=[400.0,0.5,0.2]"], ["hue bounds"]),
             (["-p", "min_points:=0", "-p", "max_cloud_age:=-1.0", "-p",
               "extrinsics:=[0.0,0.0,0.0,0.0,0.0,0.0,3.0]"], ["min_points", "max_cloud_age", "quaternion"]),
             (["-p", "min_points:=many"], ["expecting type 'INTEGER'"])]
    for extra, messages in cases:
        result = subprocess.run([sys.executable, "-m", "sgft_perception.perception_node", *base, *extra], env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (extra, result)
        assert all(m in result.stdout + result.stderr for m in messages), (extra, result)
    missing_calibration = subprocess.run([sys.executable, "-m", "sgft_perception.perception_node"], env=env,
                                         capture_output=True, text=True, timeout=30)
    assert missing_calibration.returncode == 2
    assert "extrinsics is a required calibration" in missing_calibration.stderr + missing_calibration.stdout
