"""Which robot state and detection messages the policy node takes (no ROS graph: messages are built in process)."""

import math
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState

from sgft_core.fr3 import JOINT_NAMES
from sgft_core.tasks import get_task
from sgft_msgs.msg import ObjectDetection
from sgft_policy.assembly import IMPLAUSIBLE_POSE, Inputs, ObservationAssembler
from sgft_policy.episode import Episode, EventKind
from sgft_policy.parameters import ParameterError, PolicyParameters
from sgft_policy.validation import (
    InputGate,
    PoseMotion,
    Rejection,
    detection_problem,
    joints_problem,
    object_box,
    pose_problem,
    stamp_seconds,
)
from sgft_policy.weights import RefusalLog

PUSH, HAMMER = get_task("push"), get_task("hammer")
Q = [0.0, 0.3, 0.0, -2.2, 0.0, 2.47, 0.785]
S = 1_000_000_000
NOW = 100 * S


def stamp(seconds: float) -> TimeMsg:
    ns = round(seconds * 1e9)
    return TimeMsg(sec=ns // S, nanosec=ns % S)


def pose(xyz=(0.4, 0.0, 0.2), t=100.0, frame="fr3_link0", q=(1.0, 0.0, 0.0, 0.0)) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp(t), frame
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = q
    return msg


def detection(xyz=(0.4, 0.0, 0.02), t=100.0, frame="fr3_link0", **fields) -> ObjectDetection:
    msg = ObjectDetection(valid=True, num_points=300, confidence=0.8, num_cameras=1)
    for name, value in fields.items():
        setattr(msg, name, value)
    msg.header.stamp, msg.header.frame_id = stamp(t), frame
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in xyz)
    return msg


def gate(inputs: Inputs, spec=PUSH) -> InputGate:
    low, high = object_box(spec, [math.nan] * 3, [math.nan] * 3)
    return InputGate(spec, inputs, "fr3_link0", 0.1, 3.0, low, high)


def test_stamps_negative_zero_malformed_or_from_the_future_are_refused():
    assert stamp_seconds(stamp(99.5), NOW, 0.1, "robot_pose") == pytest.approx(99.5)
    assert stamp_seconds(stamp(100.05), NOW, 0.1, "robot_pose") == pytest.approx(100.05)  # within the tolerance
    for bad in (TimeMsg(sec=-1), TimeMsg(), TimeMsg(sec=5, nanosec=S), stamp(100.2)):
        rejection = stamp_seconds(bad, NOW, 0.1, "detection")
        assert isinstance(rejection, Rejection) and rejection.kind == "detection_stamp", bad
    # under sim time before the first /clock the node's clock reads 0: the future is not known yet
    assert stamp_seconds(stamp(100.2), 0, 0.1, "detection") == pytest.approx(100.2)


def test_poses_are_checked_for_frame_finiteness_reach_and_a_unit_quaternion():
    assert pose_problem(pose(), "fr3_link0") is None
    assert pose_problem(pose(frame="base"), "fr3_link0").kind == "robot_pose_frame"
    assert pose_problem(pose(frame=""), "fr3_link0").kind == "robot_pose_frame"
    assert pose_problem(pose((math.nan, 0.0, 0.2)), "fr3_link0").kind == "robot_pose_nonfinite"
    assert pose_problem(pose(q=(0.0, 0.0, 0.0, math.inf)), "fr3_link0").kind == "robot_pose_nonfinite"
    assert pose_problem(pose((1e300, 0.0, 0.2)), "fr3_link0").kind == "robot_pose_range"
    assert pose_problem(pose(q=(0.0, 0.0, 0.0, 2.0)), "fr3_link0").kind == "robot_pose_quaternion"
    assert pose_problem(pose(q=(0.0, 0.0, 0.0, 0.0)), "fr3_link0").kind == "robot_pose_quaternion"


def test_joint_states_are_checked_for_sizes_names_finiteness_and_limits():
    names = list(JOINT_NAMES)
    assert joints_problem(names, Q, [0.0] * 7, []) is None
    assert joints_problem(names, Q, [], []) is None  # velocities and efforts may be left out
    assert joints_problem(names, Q[:6], [], []).kind == "joint_state_size"
    assert joints_problem(names, Q, [0.0] * 3, []).kind == "joint_state_size"
    assert joints_problem(names, Q, [], [0.0]).kind == "joint_state_size"
    assert joints_problem([], [], [], []).kind == "joint_state_size"
    assert joints_problem(["j"] * 100, [0.0] * 100, [], []).kind == "joint_state_size"
    assert joints_problem(names[:6] + ["fr3_joint1"], Q, [], []).kind == "joint_state_names"
    assert joints_problem(names[:6] + [""], Q, [], []).kind == "joint_state_names"
    assert joints_problem(names, Q[:6] + [math.nan], [], []).kind == "joint_state_nonfinite"
    assert joints_problem(names, Q, [math.inf] * 7, []).kind == "joint_state_nonfinite"
    assert joints_problem(names, Q[:3] + [0.5] + Q[4:], [], []).kind == "joint_state_range"  # joint 4 is ≤ -0.15
    assert joints_problem(names, Q, [0.0] * 6 + [50.0], []).kind == "joint_state_range"
    assert joints_problem(["fr3_finger_joint1"], [0.04], [], []) is None  # not an arm joint: finite is enough


def test_the_object_box_defaults_to_the_tasks_observation_bounds():
    low, high = object_box(PUSH, [math.nan] * 3, [math.nan] * 3)
    assert low.tolist() == [-1.0, -1.0, -math.inf] and high.tolist() == [1.5, 1.0, math.inf]  # push sees no puck z
    low, high = object_box(HAMMER, [math.nan] * 3, [math.nan] * 3)
    assert low.tolist() == [-math.inf, -math.inf, -0.1] and high[2] == 0.3
    low, high = object_box(PUSH, [0.0, -0.4, math.nan], [0.7, 0.4, 0.1])
    assert low.tolist() == [0.0, -0.4, -math.inf] and high.tolist() == [0.7, 0.4, 0.1]
    for bad_low, bad_high in (([0.0, 0.0], [1.0] * 3), ([math.inf] * 3, [math.nan] * 3), ([2.0] * 3, [math.nan] * 3)):
        with pytest.raises(ValueError, match="object_box"):
            object_box(PUSH, bad_low, bad_high)


def test_detections_are_checked_for_frame_position_points_and_confidence():
    low, high = object_box(PUSH, [math.nan] * 3, [math.nan] * 3)
    assert detection_problem(detection(), "fr3_link0", low, high) is None
    assert detection_problem(detection(frame="camera1_depth_optical_frame"), "fr3_link0", low, high).kind \
        == "detection_frame"
    assert detection_problem(detection((math.nan, 0.0, 0.0)), "fr3_link0", low, high).kind == "detection_position"
    assert detection_problem(detection((3.0, 0.0, 0.0)), "fr3_link0", low, high).kind == "detection_position"
    assert detection_problem(detection(num_points=0), "fr3_link0", low, high).kind == "detection_points"
    for confidence in (math.nan, -0.1, 1.5):
        assert detection_problem(detection(confidence=confidence), "fr3_link0", low, high).kind \
            == "detection_confidence"
    assert detection_problem(detection(reason="x" * 5000), "fr3_link0", low, high).kind == "detection_reason"
    # an invalid detection's position is meaningless (NaN is fine): it is taken, and makes the robot hold
    occluded = detection((math.nan, math.nan, math.nan), valid=False, num_points=0, confidence=0.0, reason="occluded")
    assert detection_problem(occluded, "fr3_link0", low, high) is None


def test_a_pose_faster_than_the_robot_is_refused_but_a_jump_after_a_long_gap_is_taken():
    motion = PoseMotion(max_speed=3.0, max_future_s=0.1)
    assert motion.check(np.array([0.4, 0.0, 0.2]), 100.0, 100.0) is None
    assert motion.check(np.array([0.45, 0.0, 0.2]), 100.02, 100.02) is None  # 2.5 m/s
    assert motion.check(np.array([0.95, 0.0, 0.2]), 100.04, 100.04).kind == "robot_pose_jump"  # 0.5 m in 20 ms
    assert motion.check(np.array([0.45, 0.0, 0.2]), 100.02, 100.04).kind == "robot_pose_out_of_order"
    # the reference stays the last accepted pose, and Δt grows with its age: the same place is fine 0.2 s later
    assert motion.check(np.array([0.95, 0.0, 0.2]), 100.2, 100.2) is None
    # state resumes after 10 s with the arm moved by hand: taken
    assert motion.check(np.array([0.3, 0.3, 0.5]), 110.2, 110.2) is None
    # a restarted simulator's clock went back: the old reference is forgotten, not every pose refused
    assert motion.check(np.array([0.3, 0.0, 0.5]), 1.0, 1.0) is None


def test_an_implausible_pose_makes_the_observation_hold_for_max_input_age():
    inputs = Inputs()
    g, observer = gate(inputs), ObservationAssembler(PUSH, max_input_age=0.3)
    assert g.pose(pose(t=100.0), NOW) is None and g.detection(detection(t=100.0), NOW) is None
    assert observer.observe(inputs, 100.0)[1] == ""
    spoofed = g.pose(pose((0.9, 0.0, 0.2), t=100.02), NOW + S // 50)
    assert spoofed.kind == "robot_pose_jump" and inputs.pose.position[0] == 0.4  # never taken
    assert observer.observe(inputs, 100.02) == (None, IMPLAUSIBLE_POSE)
    assert g.pose(pose(t=100.04), NOW + S // 25) is None
    assert observer.observe(inputs, 100.1)[1] == IMPLAUSIBLE_POSE
    assert g.pose(pose(t=100.3), NOW + 3 * S // 10) is None and g.detection(detection(t=100.3), NOW + 3 * S // 10) \
        is None
    assert observer.observe(inputs, 100.35)[1] == ""  # plausible for max_input_age: resumed


def test_a_future_stamped_detection_is_refused_so_a_dead_perception_goes_stale():
    inputs = Inputs()
    g, observer = gate(inputs), ObservationAssembler(PUSH, max_input_age=0.3)
    assert g.pose(pose(t=100.0), NOW) is None and g.detection(detection(t=100.0), NOW) is None
    assert g.detection(detection(t=110.0), NOW).kind == "detection_stamp"
    assert g.pose(pose(t=100.5), NOW + S // 2) is None
    assert observer.observe(inputs, 100.5)[1] == "object detection stale or missing"


def test_gate_takes_valid_joint_states_and_refuses_unstamped_ones():
    inputs = Inputs()
    g = gate(inputs, HAMMER)
    msg = JointState(name=list(JOINT_NAMES), position=Q, velocity=[0.1] * 7)
    assert g.joints(msg, NOW).kind == "joint_state_stamp"  # never stamped
    msg.header.stamp = stamp(99.9)
    assert g.joints(msg, NOW) is None and inputs.joints.positions["fr3_joint6"] == 2.47
    assert inputs.joints.stamp == pytest.approx(99.9)


def test_the_estop_topic_can_only_engage(tmp_path: Path):
    events = []

    class Log:
        def info(self, message): pass

        def warning(self, message): pass

        def error(self, message): pass

    episode = Episode(tmp_path / "estop", tmp_path / "episode.json", 5.0, lambda *e: events.append(e), Log())
    assert not episode.estop_from_topic(False, "/sgft/estop") and not episode.estop
    assert episode.estop_from_topic(True, "/sgft/estop") and episode.estop
    assert not episode.estop_from_topic(False, "/sgft/estop") and episode.estop  # ignored
    assert (tmp_path / "estop").read_text() == "engaged\n"
    episode.set_estop(False, "/sgft/set_estop")  # the service clears it
    assert not episode.estop
    assert episode.start(False, lambda: "")[0]
    assert episode.stop("x" * 100_000)[0]
    assert events[-1][0] is EventKind.ABORTED and len(events[-1][1]) == 200


def test_new_parameters_have_defaults_and_are_validated():
    values = PolicyParameters.defaults()
    values["checkpoint"] = "push.safetensors"  # only validated as a name here
    p = PolicyParameters.from_values(values)
    assert p.max_stamp_future == 0.1 and p.max_ee_speed == 3.0
    assert p.robot_pose_topic == "/franka_robot_state_broadcaster/current_pose"
    assert p.joint_state_topic == "/franka_robot_state_broadcaster/measured_joint_states"
    assert p.object_low[:2].tolist() == [-1.0, -1.0]
    for name, bad in (("max_stamp_future_s", 0.0), ("max_stamp_future_s", 5.0), ("max_ee_speed_mps", 0.0),
                      ("max_ee_speed_mps", 100.0), ("robot_pose_topic", ""), ("joint_state_topic", ""),
                      ("object_box_low", [2.0, 2.0, 2.0])):
        with pytest.raises(ParameterError, match=name.split("_low")[0]):
            PolicyParameters.from_values(dict(values, **{name: bad}))


def test_refusals_of_any_kind_share_the_log():
    lines: list[str] = []
    counts: dict[str, int] = {}

    def count(kind: str) -> int:
        counts[kind] = counts.get(kind, 0) + 1
        return counts[kind]

    log = RefusalLog(count, lines.append, interval=10.0)
    assert log.refuse("robot_pose_jump", "0.5 m in 20 ms", now=0.0)
    assert not log.refuse("robot_pose_jump", "again", now=1.0)
    assert log.refuse("detection_stamp", "future", now=1.0)
    assert counts == {"robot_pose_jump": 2, "detection_stamp": 1}
    assert lines[0] == "rejected robot_pose_jump (#1): 0.5 m in 20 ms"
