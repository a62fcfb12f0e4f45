"""The real robot's reset server: the homing steps (pure functions) stay inside the envelope and reach home, and the
node, against a fake robot in this process over DDS, homes the arm, waits for the operator's confirmation, refuses a
reset during an episode, and fails with the reason on a missing confirmation, a controller that does not follow, or
no robot state."""

import math
import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from sgft_bringup.reset_server import (
    SCENE_MARKER_QOS,
    START_SCENE_TOPIC,
    Progress,
    cartesian_waypoint,
    distance,
    home_problem,
    homing_envelope,
    next_target,
    scene_xy,
)
from sgft_core.fr3 import JOINT_HIGH, JOINT_LOW
from sgft_core.tasks import TASKS
from sgft_interfaces import COMMAND_QOS, EPISODE_EVENT_QOS, ROBOT_STATE_QOS, SERVICE_QOS, Services, Topics
from sgft_msgs.msg import EpisodeEvent
from sgft_msgs.srv import ResetEpisode, StopEpisode
from sgft_testing import RERUN_MULTIPROCESS, isolate_domain, node_log, spin_until, start_node, stop_node

PUSH, HAMMER, INSERT = TASKS["push"], TASKS["hammer"], TASKS["insert"]
HOME_JOINTS = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


# ------------------------------------------------------------------------------------------ homing steps
def _simulate(spec, envelope, start, home, retract=None, tolerance=0.005, lag=0.5, steps=400):
    """A robot that covers `lag` of the way to each target per period; every target checked against the envelope and
    the measured state it was computed from. Returns the targets."""
    measured, targets = np.array(start, dtype=float), []
    for _ in range(steps):
        if distance(spec, measured, home) <= tolerance:
            return targets
        goal = cartesian_waypoint(measured, home, retract, 2 * tolerance) if spec.action_kind == "cartesian" \
            else home
        target = next_target(envelope, measured, goal)
        assert envelope.contains(target), target
        assert np.all(np.abs(target - measured) <= envelope.max_step + 1e-12), (target, measured)
        targets.append(target)
        measured = measured + lag * (target - measured)
    raise AssertionError(f"not homed after {steps} steps: at {measured}, home {home}")


def test_cartesian_envelope_is_the_task_box_with_bounded_steps_on_every_axis():
    env = homing_envelope(PUSH, 0.5)
    np.testing.assert_allclose(env.low, PUSH.workspace_low)
    np.testing.assert_allclose(env.max_step, [0.02, 0.02, 0.02])  # push's z: its smallest step
    tight = homing_envelope(INSERT, 1.0, [0.35, -0.2, 0.05], [0.6, 0.2, 0.3])
    np.testing.assert_allclose(tight.high, [0.6, 0.2, 0.3])
    np.testing.assert_allclose(tight.max_step, INSERT.max_delta)
    with pytest.raises(ValueError, match="exceeds"):
        homing_envelope(PUSH, 0.5, [0.0, -0.35, 0.0], [0.68, 0.35, 0.3])
    with pytest.raises(ValueError, match="step_scale"):
        homing_envelope(PUSH, 1.5)


def test_joint_envelope_is_the_fr3_limits_with_the_tasks_steps():
    env = homing_envelope(HAMMER, 0.5)
    np.testing.assert_allclose(env.low, JOINT_LOW)
    np.testing.assert_allclose(env.high, JOINT_HIGH)
    # hammer moves joints 2, 4, 6 (0.15, 0.15, 0.25 rad); the others step at its smallest, 0.15; all halved
    np.testing.assert_allclose(env.max_step, 0.5 * np.array([0.15, 0.15, 0.15, 0.15, 0.15, 0.25, 0.15]))


def test_push_homing_rises_crosses_and_lowers_inside_the_envelope():
    env, home = homing_envelope(PUSH, 0.5), np.array([0.30, 0.0, 0.02])
    targets = np.array(_simulate(PUSH, env, [0.62, 0.30, 0.02], home, retract=0.08))
    assert targets[:, 2].max() == pytest.approx(0.08)  # it rose to the retract height
    first_across = np.argmax(np.abs(targets[:, 0] - 0.62) > 1e-9)
    assert targets[first_across - 1, 2] >= 0.08 - 0.01, "x moved before the finger was up"
    np.testing.assert_allclose(targets[-1], home, atol=0.01)


def test_straight_homing_without_retract_and_from_outside_the_box():
    env, home = homing_envelope(INSERT, 0.5), np.array([0.45, 0.05, 0.22])
    targets = np.array(_simulate(INSERT, env, [0.65, -0.2, 0.05], home))
    assert np.all(np.diff(targets[:, 2]) >= -1e-12)  # straight: z only rises towards home
    # pushed out of the box by hand: the first target moves back towards it by at most one step
    outside = np.array([0.25, 0.0, 0.22])
    target = next_target(env, outside, home)
    assert target[0] == pytest.approx(0.25 + 0.015) and np.all(np.abs(target - outside) <= env.max_step + 1e-12)
    assert next_target(env, np.array([np.nan, 0.0, 0.2]), home) is None


def test_joint_homing_steps_every_joint_within_limits_and_step():
    env = homing_envelope(HAMMER, 0.5)
    start = np.array([0.6, 0.3, -0.4, -1.8, 0.3, 2.4, 1.5])
    targets = np.array(_simulate(HAMMER, env, start, HOME_JOINTS, tolerance=0.01))
    assert len(targets) > 5 and np.all(targets >= JOINT_LOW) and np.all(targets <= JOINT_HIGH)


@pytest.mark.faults
def test_bad_homes_are_named():
    env = homing_envelope(PUSH, 0.5)
    assert home_problem(PUSH, env, [0.30, 0.0, 0.02]) == ""
    assert "no home_position" in home_problem(PUSH, env, None)
    assert "outside push's workspace box" in home_problem(PUSH, env, [0.9, 0.0, 0.02])
    assert "end-effector height" in home_problem(PUSH, env, [0.30, 0.0, 0.10])
    assert "3 finite values" in home_problem(PUSH, env, [0.30, math.nan, 0.02])
    joint_env = homing_envelope(HAMMER, 0.5)
    assert home_problem(HAMMER, joint_env, HOME_JOINTS) == ""
    assert "joint limits" in home_problem(HAMMER, joint_env, [0.0, 0.0, 0.0, 0.0, 0.0, 1.571, 0.785])


@pytest.mark.faults
def test_progress_reports_a_stall_and_restarts_for_a_new_waypoint():
    progress, goal = Progress(stall_s=1.0, epsilon=0.002), np.array([0.3, 0.0, 0.08])
    assert progress.update(goal, 0.10, 0.0) and progress.update(goal, 0.09, 0.5)
    assert progress.update(goal, 0.0899, 1.4)  # within epsilon: no progress, but not yet 1 s
    assert not progress.update(goal, 0.0899, 1.6)
    assert progress.update(goal + 0.1, 0.2, 1.7)  # the next waypoint


def test_scenes_are_indexed_or_refused():
    assert scene_xy([0.4, 0.1, 0.45, -0.1], 1) == (0.45, -0.1)
    assert "no start_scenes" in scene_xy([], 0)
    assert "2 start scenes" in scene_xy([0.4, 0.1, 0.45, -0.1], 2)


# ------------------------------------------------------------------------------- the node over DDS
HOME = (0.30, 0.0, 0.02)
SERVER = {"task": "push", "home_position": list(HOME), "retract_height_m": 0.08, "step_scale": 0.5,
          "control_rate_hz": 10.0, "confirm_timeout_s": 4.0, "stall_timeout_s": 1.5, "state_timeout_s": 0.5,
          "start_scenes": [0.4, 0.1, 0.45, -0.1], "table_height": 0.01}
STEP = 0.02  # push's max_delta × step_scale


class FakeRobot:
    """Publishes the end-effector pose (50 Hz) that follows the received targets with a 0.1 s lag, on the sim
    profile's topics; records each target with the poses published in the second before it arrived."""

    def __init__(self, node):
        self.node = node
        self.pose = np.array(HOME)
        self.target = None
        self.follow, self.publishing = True, True
        self.targets: list[tuple[np.ndarray, np.ndarray]] = []
        self.published: list[tuple[float, np.ndarray]] = []
        self.last = time.monotonic()
        self.pub = node.create_publisher(PoseStamped, Topics.ROBOT_POSE, ROBOT_STATE_QOS)
        self.joints = node.create_publisher(JointState, Topics.MEASURED_JOINT_STATES, ROBOT_STATE_QOS)
        node.create_subscription(PoseStamped, Topics.CARTESIAN_TARGET, self._on_target, COMMAND_QOS)

    def _on_target(self, msg):
        p = msg.pose.position
        self.target = np.array([p.x, p.y, p.z])
        now = time.monotonic()
        recent = np.array([q for t, q in self.published if now - t < 1.0] or [self.pose])
        self.targets.append((self.target, recent))

    def place(self, xyz):
        self.pose, self.target = np.array(xyz, dtype=float), None

    def step(self):
        now = time.monotonic()
        dt = now - self.last
        if dt < 0.02:
            return
        self.last = now
        if self.follow and self.target is not None:
            self.pose = self.pose + (1.0 - math.exp(-dt / 0.1)) * (self.target - self.pose)
        if self.publishing:
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = self.node.get_clock().now().to_msg(), "fr3_link0"
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in self.pose)
            msg.pose.orientation.x = 1.0
            self.pub.publish(msg)
            self.published = [(t, q) for t, q in self.published if now - t < 2.0] + [(now, self.pose.copy())]

    def check_envelope(self):
        """Every target inside push's box and within one step of a pose published just before it arrived."""
        low, high = PUSH.workspace_low, PUSH.workspace_high
        for target, recent in self.targets:
            assert np.all(target >= low - 1e-9) and np.all(target <= high + 1e-9), target
            assert np.min(np.max(np.abs(recent - target), axis=1)) <= STEP + 1e-6, (target, recent[-1])


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    isolate_domain()
    log = tmp_path_factory.mktemp("reset_server") / "reset_server.log"
    server = start_node("sgft_bringup.reset_server", SERVER, str(log))
    rclpy.init()
    node = rclpy.create_node("fake_franka")
    robot = FakeRobot(node)
    stops: list[str] = []

    def on_stop(request, response):
        stops.append(request.reason)
        response.stopped = True
        return response

    node.create_service(StopEpisode, Services.STOP_EPISODE, on_stop, qos_profile=SERVICE_QOS)
    events = node.create_publisher(EpisodeEvent, Topics.EPISODE_EVENTS, EPISODE_EVENT_QOS)
    markers: list[Marker] = []
    node.create_subscription(Marker, START_SCENE_TOPIC, markers.append, SCENE_MARKER_QOS)
    reset = node.create_client(ResetEpisode, Services.RESET_EPISODE)
    confirm = node.create_client(Trigger, Services.CONFIRM_RESET)
    rig = {"node": node, "robot": robot, "reset": reset, "confirm": confirm, "events": events, "stops": stops,
           "markers": markers, "server": server}
    try:
        assert spin_until(node, lambda: reset.service_is_ready() and confirm.service_is_ready(), 60.0, robot.step), \
            node_log(server)
        yield rig
    finally:
        node.destroy_node()
        rclpy.shutdown()
        stop_node(server)


def _request(rig, scene=-1):
    return rig["reset"].call_async(ResetEpisode.Request(scene=scene))


def _answer(rig, future, timeout_s):
    assert spin_until(rig["node"], future.done, timeout_s, rig["robot"].step), node_log(rig["server"])
    return future.result()


def _confirm(rig):
    return _answer(rig, rig["confirm"].call_async(Trigger.Request()), 10.0)


pytestmark = RERUN_MULTIPROCESS


def test_homes_inside_the_envelope_then_waits_for_the_operators_confirmation(rig):
    robot = rig["robot"]
    robot.place([0.55, 0.20, 0.02])
    robot.targets.clear()
    spin_until(rig["node"], lambda: False, 1.0, robot.step)  # the server sees the moved arm
    future = _request(rig, scene=1)
    homed = spin_until(rig["node"], lambda: bool(robot.targets) and np.linalg.norm(robot.pose - HOME) < 0.005, 30.0,
                       robot.step)
    assert homed, f"not homed: at {robot.pose}\n{node_log(rig['server'])}"
    spin_until(rig["node"], lambda: False, 1.5, robot.step)
    assert not future.done(), "answered before the operator confirmed the scene"
    robot.check_envelope()
    assert max(t[2] for t, _ in robot.targets) == pytest.approx(0.08), "the finger rose before crossing"
    assert rig["markers"] and rig["markers"][-1].action == Marker.ADD
    marker = rig["markers"][-1]
    assert (marker.pose.position.x, marker.pose.position.y) == pytest.approx((0.45, -0.1))
    assert marker.header.frame_id == "fr3_link0"
    assert "set up scene 1: object at (0.450, -0.100)" in node_log(rig["server"])
    assert _confirm(rig).success
    answer = _answer(rig, future, 10.0)
    assert answer.success and "scene 1" in answer.message, answer.message
    assert not _confirm(rig).success, "nothing waits for a confirmation any more"


@pytest.mark.faults
def test_a_reset_without_confirmation_fails_after_the_timeout(rig):
    rig["robot"].place(HOME)
    started = time.monotonic()
    answer = _answer(rig, _request(rig), 15.0)
    assert not answer.success and "did not confirm" in answer.message, answer.message
    assert time.monotonic() - started >= SERVER["confirm_timeout_s"] - 0.5


def test_a_reset_during_an_episode_is_refused_and_the_policy_asked_to_stop_it(rig):
    node, robot = rig["node"], rig["robot"]
    rig["events"].publish(EpisodeEvent(event=EpisodeEvent.STARTED, episode_id=7))
    spin_until(node, lambda: False, 1.0, robot.step)
    try:
        answer = _answer(rig, _request(rig), 10.0)
        assert not answer.success and answer.message.startswith(Services.RESET_EPISODE_RUNNING), answer.message
        assert spin_until(node, lambda: bool(rig["stops"]), 5.0, robot.step)
    finally:
        rig["events"].publish(EpisodeEvent(event=EpisodeEvent.ABORTED, episode_id=7))
        spin_until(node, lambda: False, 1.0, robot.step)


@pytest.mark.faults
def test_a_controller_that_does_not_follow_fails_the_reset_and_nothing_leaves_the_envelope(rig):
    robot = rig["robot"]
    robot.place([0.50, -0.10, 0.02])
    robot.follow = False
    robot.targets.clear()
    try:
        spin_until(rig["node"], lambda: False, 1.0, robot.step)
        answer = _answer(rig, _request(rig), 20.0)
        assert not answer.success and "not answering" in answer.message, answer.message
        assert robot.targets
        robot.check_envelope()
    finally:
        robot.follow = True


@pytest.mark.faults
def test_no_robot_state_fails_the_reset(rig):
    robot = rig["robot"]
    robot.place([0.50, 0.0, 0.02])
    robot.publishing = False
    try:
        spin_until(rig["node"], lambda: False, 1.0, robot.step)
        answer = _answer(rig, _request(rig), 10.0)
        assert not answer.success and "no robot state" in answer.message, answer.message
    finally:
        robot.publishing = True
