"""How far are perception's detections from the simulated robot's ground truth while the graph runs?

    source setup.bash
    python -m sgft_bringup.run_graph --task push --session --set sgft_learner.method=zero_shot \
        --set sgft_finetune_session.episodes=6 --set sgft_finetune_session.eval_episodes=10 &
    python tools/detection_error.py --seconds 75

Records /sgft/object_detection and the sim's /sgft/sim/object_truth for --seconds (wall), pairs each valid detection
with the truth of the same stamp (the sim publishes it with every state) and prints the error per axis (mean, sd),
the p99 and maximum of the xy error, and the worst detections (perception README, "Accuracy in the graph").
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to record (wall seconds)")
    parser.add_argument("--worst", type=int, default=5, help="how many of the largest errors to list")
    args = parser.parse_args()

    import rclpy
    from geometry_msgs.msg import PointStamped
    from rclpy.time import Time

    from sgft_interfaces import ROBOT_STATE_QOS, SENSOR_QOS, Topics
    from sgft_msgs.msg import ObjectDetection

    rclpy.init()
    node = rclpy.create_node("detection_error")
    detections: list[ObjectDetection] = []
    truth: list[PointStamped] = []
    node.create_subscription(ObjectDetection, Topics.OBJECT_DETECTION, detections.append, SENSOR_QOS)
    node.create_subscription(PointStamped, Topics.SIM_OBJECT_TRUTH, truth.append, ROBOT_STATE_QOS)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()

    def seconds(msg) -> float:
        return Time.from_msg(msg.header.stamp).nanoseconds * 1e-9

    if not truth:
        raise SystemExit("no ground truth received: is the simulated robot running (same ROS_DOMAIN_ID)?")
    truth_t = np.array([seconds(t) for t in truth])
    truth_p = np.array([[t.point.x, t.point.y, t.point.z] for t in truth])
    rows = []  # (stamp, error xyz, detection, truth)
    for det in detections:
        if not det.valid:
            continue
        i = int(np.argmin(np.abs(truth_t - seconds(det))))
        if abs(truth_t[i] - seconds(det)) < 1e-3:  # same stamp: the frame's state
            position = np.array([det.position.x, det.position.y, det.position.z])
            rows.append((seconds(det), position - truth_p[i], position, truth_p[i]))
    valid = sum(d.valid for d in detections)
    print(f"{len(detections)} detections, {valid} valid, {len(rows)} paired with the truth of their stamp")
    if not rows:
        raise SystemExit("no detection could be paired with the ground truth")
    error_mm = 1000 * np.array([r[1] for r in rows])
    xy = np.linalg.norm(error_mm[:, :2], axis=1)
    print(f"error (mm) x y z: mean {np.round(error_mm.mean(0), 2)}, sd {np.round(error_mm.std(0), 2)}; "
          f"xy error median {np.median(xy):.2f}, p99 {np.percentile(xy, 99):.2f}, max {xy.max():.2f}")
    for k in np.argsort(xy)[::-1][: args.worst]:
        stamp, _, position, true = rows[k]
        print(f"  t {stamp:8.2f} s: xy error {xy[k]:5.1f} mm, detection {np.round(position, 3)}, "
              f"truth {np.round(true, 3)}")


if __name__ == "__main__":
    main()
