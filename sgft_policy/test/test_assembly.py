"""Observation and command assembly from the latest inputs (no ROS graph: messages are built in process)."""

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState

from sgft_core.command import task_envelope
from sgft_core.fr3 import JOINT_NAMES
from sgft_core.tasks import get_task
from sgft_msgs.msg import ObjectDetection
from sgft_policy.assembly import (
    Commander,
    Detection,
    Inputs,
    Joints,
    ObservationAssembler,
    Pose,
    command_msg,
    detection_from_msg,
    hold_target,
    joint_trajectory_msg,
    joints_from_msg,
    pose_from_msg,
    pose_target_msg,
)
from sgft_policy.stats import LoopStats

PUSH, HAMMER, INSERT = get_task("push"), get_task("hammer"), get_task("insert")
DOWN = (1.0, 0.0, 0.0, 0.0)
Q = [0.0, 0.3, 0.0, -2.2, 0.0, 2.47, 0.785]


def pose(xyz, stamp=10.0, orientation=DOWN) -> Pose:
    return Pose(np.array(xyz, dtype=float), orientation, stamp)


def joints(q=Q, stamp=10.0) -> Joints:
    return Joints(dict(zip(JOINT_NAMES, q, strict=True)), dict.fromkeys(JOINT_NAMES, 0.0), stamp)


def detection(xyz=(0.4, 0.0, 0.02), stamp=10.0, valid=True, reason="") -> Detection:
    return Detection(np.array(xyz), valid, reason, stamp)


def test_messages_become_inputs():
    msg = PoseStamped()
    msg.pose.position.x, msg.pose.orientation.w = 0.4, 1.0
    assert pose_from_msg(msg, 3.0).position.tolist() == [0.4, 0.0, 0.0]
    assert pose_from_msg(msg, 3.0).orientation_xyzw == (0.0, 0.0, 0.0, 1.0)
    js = joints_from_msg(JointState(name=list(JOINT_NAMES), position=Q), 3.0)
    assert js.positions["fr3_joint6"] == 2.47 and js.velocities == {}
    with pytest.raises(ValueError, match="7 names and 6 positions"):
        joints_from_msg(JointState(name=list(JOINT_NAMES), position=Q[:6]), 3.0)
    det = ObjectDetection(valid=False, reason="no points")
    parsed = detection_from_msg(det, 3.0)
    assert (parsed.valid, parsed.reason, parsed.stamp, parsed.position.shape) == (False, "no points", 3.0, (3,))


def test_observation_or_the_reason_to_hold():
    observer = ObservationAssembler(PUSH, max_input_age=0.5)
    inputs = Inputs()
    assert observer.observe(inputs, 10.0) == (None, "robot pose stale or missing")
    inputs.pose = pose([0.4, 0.0, 0.02], stamp=9.0)
    assert observer.observe(inputs, 10.0)[1] == "robot pose stale or missing"
    inputs.pose = pose([0.4, 0.0, 0.02])
    assert observer.observe(inputs, 10.0)[1] == "object detection stale or missing"
    inputs.detection = detection(valid=False)
    assert observer.observe(inputs, 10.0)[1] == "object detection invalid: no reason given"
    inputs.detection = detection((5.0, 0.0, 0.0))
    assert observer.observe(inputs, 10.0)[1].startswith("observation non-finite or out of bounds")
    inputs.detection = detection()
    obs, reason = observer.observe(inputs, 10.2)
    assert reason == "" and obs.tolist() == pytest.approx([0.4, 0.0, 0.4, 0.0])


def test_joint_tasks_need_the_joint_state_and_their_offsets_apply():
    observer = ObservationAssembler(HAMMER, 0.5, {"goal_x": 0.5, "goal_z": 0.11}, {"fr3_joint6": np.pi / 2})
    inputs = Inputs(pose=pose([0.5, 0.0, 0.2]), detection=detection((0.5, 0.0, 0.15)))
    assert observer.observe(inputs, 10.0)[1] == "joint state stale or missing"
    inputs.joints = joints()
    obs, _ = observer.observe(inputs, 10.0)
    assert obs[5] == pytest.approx(2.47 - np.pi / 2)


def test_a_held_object_comes_from_the_pose_and_needs_no_detection():
    observer = ObservationAssembler(INSERT, 0.5, {"hole_x": 0.5, "hole_y": 0.0, "hole_z": 0.01},
                                    held_offset=np.array([0.0, 0.0, 0.09]))
    assert not observer.uses_detection
    obs, _ = observer.observe(Inputs(pose=pose([0.5, 0.0, 0.2])), 10.0)
    assert obs[3:6].tolist() == pytest.approx([0.5, 0.0, 0.11])  # pointing down: the leg tip 9 cm below
    bad = Inputs(pose=pose([0.5, 0.0, 0.2], orientation=(0.0, 0.0, 0.0, 2.0)))
    assert observer.observe(bad, 10.0)[1].startswith("robot pose: ")


def test_inputs_behind_a_tick():
    observer = ObservationAssembler(PUSH, 0.5)
    tick_ns = 10_000_000_000
    assert observer.inputs_behind(Inputs(), tick_ns, 0.2)
    fresh = Inputs(pose=pose([0.4, 0.0, 0.02], 10.0), detection=detection(stamp=9.98))
    assert not observer.inputs_behind(fresh, tick_ns, 0.2)
    assert observer.inputs_behind(Inputs(pose=pose([0.4, 0.0, 0.02], 9.98), detection=detection()), tick_ns, 0.2)
    # a detection from before the previous tick shows the object before the last command took effect
    assert observer.inputs_behind(Inputs(pose=fresh.pose, detection=detection(stamp=9.79)), tick_ns, 0.2)
    hammer = ObservationAssembler(HAMMER, 0.5, {"goal_x": 0.5, "goal_z": 0.1})
    assert hammer.inputs_behind(Inputs(pose=fresh.pose, detection=fresh.detection), tick_ns, 0.2)


def test_cartesian_commands_are_bounded_and_stamped():
    commander = Commander(PUSH, task_envelope(PUSH))
    target = commander.target(np.array([1.0, -5.0]), Inputs(pose=pose([0.67, 0.0, 0.05])))
    assert target.tolist() == pytest.approx([0.68, -0.04, PUSH.ee_height])
    msg = pose_target_msg(target, np.array(DOWN), 12_200_000_000, "fr3_link0")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 200_000_000, "fr3_link0")
    assert (msg.pose.position.x, msg.pose.orientation.x, msg.pose.orientation.w) == (pytest.approx(0.68), 1.0, 0.0)


def test_joint_commands_hold_the_other_joints_where_the_episode_began():
    commander = Commander(HAMMER, task_envelope(HAMMER))
    first = commander.target(np.array([1.0, 0.0, 0.0]), Inputs(pose=pose([0.5, 0, 0.2]), joints=joints()))
    assert first[1] == pytest.approx(0.45) and first[[0, 2, 4, 6]].tolist() == [Q[i] for i in (0, 2, 4, 6)]
    moved = [q + 0.1 for q in Q]  # the arm sagged: the held joints keep their first targets
    second = commander.target(np.zeros(3), Inputs(pose=pose([0.5, 0, 0.2]), joints=joints(moved)))
    assert second[[0, 2, 4, 6]].tolist() == [Q[i] for i in (0, 2, 4, 6)] and second[1] == pytest.approx(0.4)
    commander.reset()
    third = commander.target(np.zeros(3), Inputs(pose=pose([0.5, 0, 0.2]), joints=joints(moved)))
    assert third.tolist() == pytest.approx(moved)
    partial = Joints({"fr3_joint1": 0.0}, {}, 10.0)
    assert commander.target(np.zeros(3), Inputs(pose=pose([0.5, 0, 0.2]), joints=partial)) is None
    msg = joint_trajectory_msg(third, 1_000_000_000, "fr3_link0", 0.2)
    assert list(msg.joint_names) == list(JOINT_NAMES) and len(msg.points) == 1
    assert msg.points[0].time_from_start.nanosec == 200_000_000 and msg.points[0].time_from_start.sec == 0


def test_loop_statistics():
    stats = LoopStats(0.2)
    assert stats.timing_stats()["period_median_ms"] == pytest.approx(200.0)
    for wall in (0.0, 0.2, 0.4, 0.61):
        stats.tick(wall, running=True)
    stats.tick(5.0, running=False)  # between episodes: not a loop period
    stats.detection_ages.extend([0.02, 0.02])
    report = stats.timing_stats()
    assert report["period_median_ms"] == pytest.approx(200.0) and report["detection_age_median_ms"] == 20.0
    assert "tick_lateness_median_ms" not in report
    counts = [stats.reject("joint_state") for _ in range(200)]
    assert [n for n in counts if stats.worth_logging(n)] == [1, 100, 200]
    assert stats.timing_stats()["rejections"] == {"joint_state": 200}


def test_the_hold_target_is_the_measured_pose_never_a_step_towards_the_box():
    # push: measured x, y (here outside the box: the stop does not step back into it), z at the task's height
    target, why = hold_target(PUSH, Inputs(pose=pose([0.75, 0.1, 0.05])), 10.1, 0.5)
    assert why == "" and target.tolist() == pytest.approx([0.75, 0.1, PUSH.ee_height])
    target, _ = hold_target(INSERT, Inputs(pose=pose([0.5, 0.0, 0.2])), 10.1, 0.5)
    assert target.tolist() == pytest.approx([0.5, 0.0, 0.2])
    moved = [q + 0.1 for q in Q]  # all 7 measured joints, not the episode's held ones
    target, _ = hold_target(HAMMER, Inputs(pose=pose([0.5, 0, 0.2]), joints=joints(moved)), 10.1, 0.5)
    assert target.tolist() == pytest.approx(moved)
    msg = command_msg(HAMMER, target, np.array(DOWN), 1_000_000_000, "fr3_link0", 0.2)
    assert list(msg.points[0].positions) == pytest.approx(moved)
    msg = command_msg(PUSH, np.array([0.4, 0.0, 0.02]), np.array(DOWN), 1_000_000_000, "fr3_link0", 0.2)
    assert msg.pose.position.x == pytest.approx(0.4)


def test_no_hold_target_from_an_old_or_implausible_measurement():
    assert hold_target(PUSH, Inputs(), 10.0, 0.5) == (None, "robot pose stale or missing")
    assert hold_target(PUSH, Inputs(pose=pose([0.4, 0.0, 0.02], stamp=9.0)), 10.0, 0.5)[1] == \
        "robot pose stale or missing"
    jumped = Inputs(pose=pose([0.4, 0.0, 0.02]), pose_implausible=(9.9, "moved 0.5 m"))
    assert hold_target(PUSH, jumped, 10.0, 0.5)[0] is None
    assert hold_target(HAMMER, Inputs(pose=pose([0.5, 0, 0.2])), 10.0, 0.5)[1] == "joint state stale or missing"
    partial = Inputs(pose=pose([0.5, 0, 0.2]), joints=Joints({"fr3_joint1": 0.0}, {}, 10.0))
    assert hold_target(HAMMER, partial, 10.0, 0.5)[0] is None
    assert hold_target(PUSH, Inputs(pose=pose([np.nan, 0.0, 0.02])), 10.0, 0.5)[0] is None
