"""The simulated robot node's command path (in process, no DDS peers): the proxy's action scale is applied to the
commanded change against the state at receipt, not at the delayed moment the command takes effect."""

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped

from sgft_sim.robot_node import SimRobotNode


@pytest.fixture
def node():
    rclpy.init(args=["--ros-args", "-p", "time_scale:=0.05", "-p", "camera_rate_hz:=0.1"])
    robot = SimRobotNode()
    robot.running = False  # stop the sim thread: the test steps the env itself
    robot.thread.join(timeout=5.0)
    yield robot
    robot.destroy_node()
    rclpy.shutdown()


def _target(xyz) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = "fr3_link0"
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
    return msg


def test_scale_is_applied_at_receipt_and_the_delay_does_not_amplify_motion(node):
    assert node.proxy.action_scale == pytest.approx(2.5) and node.proxy.hold_periods is not None
    ee = node.env.ee_position()
    commanded = ee + np.array([0.02, 0.01, 0.0])
    node._on_command(_target(commanded))
    (_, (kind, scaled)), = node.pending
    assert kind == "cartesian"
    np.testing.assert_allclose(scaled, ee + 2.5 * (commanded - ee))
    # the arm moves before the delayed command takes effect; the target it gets is still the one scaled at receipt
    node.env.set_ee_target(ee + np.array([0.05, 0.0, 0.0]))
    node.env.simulate(0.1)
    node._apply(node.pending.pop()[1])
    expected = np.clip(ee + 2.5 * (commanded - ee), node.spec.workspace_low, node.spec.workspace_high)
    expected[2] = node.spec.ee_height
    np.testing.assert_allclose(node.env._ee_target, expected)


def test_bad_targets_are_refused_before_they_are_queued(node):
    node._on_command(_target([np.nan, 0.0, 0.1]))
    bad_frame = _target([0.4, 0.0, 0.02])
    bad_frame.header.frame_id = "camera1_depth_optical_frame"
    node._on_command(bad_frame)
    assert node.pending == []
