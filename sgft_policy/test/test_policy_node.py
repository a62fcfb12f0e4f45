"""The policy node as a separate process over DDS, driven by a small kinematic stand-in for robot and camera.

The stand-in moves the end effector to each commanded target at once (or, with `lag`, part of the way, as an
impedance controller trails its target), so every command can be checked against the pose it was computed from:
inside the task's box, within one step of the previous target. The actor is swapped for
an adversarial one (always full throttle) through a real PolicyUpdate to show that weights hot-swap and that the
envelope holds whatever the network says.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sgft_testing import (
    RERUN_MULTIPROCESS,
    call,
    isolate_domain,
    node_log,
    shared_node_fixtures,
    spin_until,
    start_episode,
    start_node,
    stop_node,
)

pytestmark = [RERUN_MULTIPROCESS, pytest.mark.faults]  # (why reruns: sgft_testing)

isolate_domain()

from geometry_msgs.msg import PoseStamped  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from sgft_core.checkpoint import actor_to_bytes, save_checkpoint  # noqa: E402
from sgft_core.networks import NetworkConfig, build_networks  # noqa: E402
from sgft_core.tasks import get_task  # noqa: E402
from sgft_interfaces import (  # noqa: E402
    COMMAND_QOS,
    EPISODE_EVENT_QOS,
    ESTOP_QOS,
    POLICY_UPDATE_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    TRANSITION_QOS,
    Services,
    Topics,
)
from sgft_msgs.msg import EpisodeEvent, Intervention, ObjectDetection, PolicyUpdate, Transition  # noqa: E402
from sgft_msgs.srv import StartEpisode, StopEpisode  # noqa: E402
from sgft_policy.assembly import IMPLAUSIBLE_POSE, time_msg  # noqa: E402

SPEC = get_task("push")
CONFIG = NetworkConfig(hidden_dim=32, num_layers=2)
ARCH = json.dumps(CONFIG.to_dict())
PUCK = np.array([0.35, 0.05, 0.02])


class FakeRobot:
    """Kinematic robot + camera: pose jumps to each target; the puck sits still and is seen while `camera_on`.
    Messages are stamped with `now()` (the test node's clock unless replaced): the policy refuses unstamped ones."""

    def __init__(self, node, start_xy=(0.1, -0.3), lag: float = 1.0) -> None:
        self.node = node
        self.lag = lag  # fraction of the way to each target the arm moves
        self.published: list[np.ndarray] = []  # every pose published, the measurements the policy holds
        self.intervention: tuple[bool, list[float]] | None = None  # what the teleop device sends; None: silent
        self.now = lambda: node.get_clock().now().nanoseconds
        self.last_pose_ns = 0
        self.ee = np.array([*start_xy, SPEC.ee_height])
        self.camera_on = True
        self.commands: list[tuple[float, np.ndarray, np.ndarray]] = []  # (time, pose before, target)
        self.command_stamps: list[float] = []  # header stamps: the policy's clock at its tick
        self.transitions: list[Transition] = []
        self.events: list[EpisodeEvent] = []
        self.pose_pub = node.create_publisher(PoseStamped, Topics.ROBOT_POSE, ROBOT_STATE_QOS)
        self.det_pub = node.create_publisher(ObjectDetection, Topics.OBJECT_DETECTION, SENSOR_QOS)
        self.update_pub = node.create_publisher(PolicyUpdate, Topics.POLICY_UPDATE, POLICY_UPDATE_QOS)
        node.create_subscription(PoseStamped, Topics.CARTESIAN_TARGET, self._on_target, COMMAND_QOS)
        node.create_subscription(Transition, Topics.TRANSITIONS, self.transitions.append, TRANSITION_QOS)
        node.create_subscription(EpisodeEvent, Topics.EPISODE_EVENTS, self.events.append, EPISODE_EVENT_QOS)
        self.start = node.create_client(StartEpisode, Services.START_EPISODE)
        self.stop = node.create_client(StopEpisode, Services.STOP_EPISODE)
        self.estop = node.create_client(SetBool, Services.SET_ESTOP)
        self.pause = node.create_client(SetBool, Services.PAUSE_EPISODE)
        self.intervention_pub = node.create_publisher(Intervention, Topics.INTERVENTION, COMMAND_QOS)
        self._last_publish = 0.0

    def _on_target(self, msg: PoseStamped) -> None:
        target = np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z])
        self.commands.append((time.monotonic(), self.ee.copy(), target))
        self.command_stamps.append(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec)
        self.ee = self.ee + self.lag * (target - self.ee)

    def publish(self) -> None:
        now = time.monotonic()
        if now - self._last_publish < 0.02:
            return
        self._last_publish = now
        self.last_pose_ns = self.now()
        self.pose_pub.publish(pose_msg(self.ee, self.last_pose_ns))
        self.published.append(self.ee.copy())
        if self.intervention is not None:
            active, action = self.intervention
            msg = Intervention(active=active, action=[float(v) for v in action])
            msg.header.stamp = time_msg(self.last_pose_ns)
            self.intervention_pub.publish(msg)
        if self.camera_on:
            self.det_pub.publish(detection_msg(PUCK, self.last_pose_ns))

    def run(self, seconds: float) -> None:
        spin_until(self.node, lambda: False, seconds, self.publish)


def pose_msg(xyz, stamp_ns: int) -> PoseStamped:
    pose = PoseStamped()
    pose.header.frame_id, pose.header.stamp = "fr3_link0", time_msg(stamp_ns)
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in xyz)
    return pose


def detection_msg(xyz, stamp_ns: int) -> ObjectDetection:
    det = ObjectDetection(valid=True, num_points=500, confidence=1.0, num_cameras=1)
    det.header.frame_id, det.header.stamp = "fr3_link0", time_msg(stamp_ns)
    det.position.x, det.position.y, det.position.z = (float(v) for v in xyz)
    return det


def adversarial_update(version: int, direction: float) -> PolicyUpdate:
    """An actor whose mean saturates the tanh: always ±1 on every axis, the largest step it can ask for."""
    networks = build_networks(SPEC.obs_dim, SPEC.action_dim, CONFIG)
    with torch.no_grad():
        networks.actor.mean_head.weight.zero_()
        networks.actor.mean_head.bias.fill_(50.0 * direction)
        networks.actor.log_std_head.bias.fill_(-50.0)
    data, sha = actor_to_bytes(networks.actor, SPEC.name, CONFIG)
    return PolicyUpdate(task=SPEC.name, version=version, architecture=ARCH, weights=list(data), sha256=sha)


def bad_updates(first_version: int) -> list[PolicyUpdate]:
    """Wrong sha256, NaN weights (correctly signed), another task's network, wrong shapes."""
    wrong_sha = adversarial_update(first_version, +1.0)
    wrong_sha.sha256 = "0" * 64
    networks = build_networks(SPEC.obs_dim, SPEC.action_dim, CONFIG)
    with torch.no_grad():
        networks.actor.mean_head.weight.fill_(float("nan"))
    data, sha = actor_to_bytes(networks.actor, SPEC.name, CONFIG)
    nan = PolicyUpdate(task="push", version=first_version + 1, architecture=ARCH, weights=list(data), sha256=sha)
    hammer = get_task("hammer")
    other = build_networks(hammer.obs_dim, hammer.action_dim, CONFIG)
    data, sha = actor_to_bytes(other.actor, "hammer", CONFIG)
    other_task = PolicyUpdate(task="hammer", version=first_version + 2, architecture=ARCH, weights=list(data),
                              sha256=sha)
    relabelled = PolicyUpdate(task="push", version=first_version + 3, architecture=ARCH, weights=list(data),
                              sha256=sha)  # shapes
    return [wrong_sha, nan, other_task, relabelled]


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        save_checkpoint(path / "push.safetensors", build_networks(SPEC.obs_dim, SPEC.action_dim, CONFIG),
                        SPEC.name, CONFIG, seed=0)
        yield path


ros_node, ros = shared_node_fixtures("policy_node_test")  # each test (or rerun) gets the module's node, left clean


def _policy(workdir: Path, name: str, state: str | None = None, **params):
    """A policy node; nodes given the same `state` share e-stop and episode files (one robot, restarted)."""
    state = state or name
    return start_node("sgft_policy.policy_node", {
        "task": "push", "checkpoint": str(workdir / "push.safetensors"),
        "estop_state_file": str(workdir / f"{state}_estop"),
        "episode_state_file": str(workdir / f"{state}_episode.json"),
        "max_input_age_s": 0.3, "stats_period_s": 1.0, **params,
    }, str(workdir / f"{name}.log"))


def test_commands_stay_in_envelope_and_weights_hot_swap(workdir, ros):
    proc = _policy(workdir, "policy_envelope")
    robot = FakeRobot(ros)
    try:
        robot.run(1.0)
        response = start_episode(ros, robot.start, step=robot.publish)
        assert response.accepted, response.message
        robot.run(2.0)
        # full throttle towards +x +y: the robot must stop at the box's corner, one bounded step at a time
        robot.update_pub.publish(adversarial_update(version=7, direction=+1.0))
        robot.run(4.0)
        t_v8 = time.monotonic()
        robot.update_pub.publish(adversarial_update(version=8, direction=-1.0))
        robot.run(2.5)
        # bad updates are refused, whatever their version: the version stays 8
        for bad in bad_updates(first_version=9):
            robot.update_pub.publish(bad)
            robot.run(0.3)
        robot.run(0.5)
    finally:
        stop_node(proc)
    log = node_log(proc)
    assert len(robot.commands) >= 30, log
    low, high, step = SPEC.workspace_low[:2], SPEC.workspace_high[:2], SPEC.max_delta
    for _, before, target in robot.commands:
        assert np.all(np.abs(target[:2] - before[:2]) <= step + 1e-6), (before, target)
        # the start pose lies outside the box: until the robot is inside, it may only move towards it
        if np.all(before[:2] >= low) and np.all(before[:2] <= high):
            assert np.all(target[:2] >= low - 1e-6) and np.all(target[:2] <= high + 1e-6), target
        assert target[2] == pytest.approx(SPEC.ee_height)
    versions = [t.policy_version for t in robot.transitions]
    assert 0 in versions and 7 in versions and 8 in versions and 9 not in versions, versions
    corner = [target for t, _, target in robot.commands if t < t_v8][-1]
    np.testing.assert_allclose(corner[:2], high, atol=1e-6)  # version 7 drove it into the +x +y corner
    assert versions[-1] == 8, versions
    # the loop-timing report says how old the detections the commands were computed from were (fresh here)
    timing = json.loads(log.rsplit("loop timing ", 1)[1].splitlines()[0])
    assert 0.0 <= timing["detection_age_median_ms"] <= timing["detection_age_p99_ms"] <= 300.0, timing
    assert "rejected policy_update_hash (#1)" in log and "sha256" in log
    for kind in ("hash", "malformed", "task"):  # each kind logged once, then only counted
        assert log.count(f"rejected policy_update_{kind} ") == 1, log
    steps = [(t.episode_id, t.step) for t in robot.transitions]
    assert steps == sorted(set(steps)), "a transition was duplicated or reordered"
    for t in robot.transitions:
        assert len(t.obs) == SPEC.obs_dim and len(t.next_obs) == SPEC.obs_dim and len(t.action) == SPEC.action_dim
        assert t.reward == pytest.approx(float(SPEC.reward(np.array(t.next_obs))), abs=1e-5)


def test_a_huge_version_is_refused_and_the_genuine_next_update_still_applies(workdir, ros):
    proc = _policy(workdir, "policy_versions")
    robot = FakeRobot(ros)
    try:
        robot.run(1.0)
        response = start_episode(ros, robot.start, step=robot.publish)
        assert response.accepted, response.message
        robot.run(1.0)
        robot.update_pub.publish(adversarial_update(version=2**32 - 1, direction=+1.0))  # would lock out the rest
        robot.run(1.0)
        robot.update_pub.publish(adversarial_update(version=1, direction=-1.0))
        robot.run(2.0)
    finally:
        stop_node(proc)
    log = node_log(proc)
    versions = [t.policy_version for t in robot.transitions]
    assert 2**32 - 1 not in versions and versions[-1] == 1, versions
    assert "rejected policy_update_version_jump (#1)" in log, log
    timing = json.loads(log.rsplit("loop timing ", 1)[1].splitlines()[0])
    assert timing["rejections"].get("policy_update_version_jump") == 1, timing


def test_stale_camera_holds_and_estop_survives_restart(workdir, ros):
    proc = _policy(workdir, "policy_hold", state="hold")
    robot = FakeRobot(ros, start_xy=(0.3, 0.0))
    try:
        # no detection yet: the start is refused with the reason instead of starting an episode that holds
        robot.camera_on = False
        robot.run(1.0)
        # asked again while the starting node still lacks the fake robot's pose, which it would miss first
        refused = start_episode(ros, robot.start, step=robot.publish, retry_while="not ready: robot pose")
        assert not refused.accepted and refused.message == "not ready: object detection stale or missing", refused
        robot.camera_on = True
        assert start_episode(ros, robot.start, step=robot.publish).accepted
        robot.run(1.5)
        robot.camera_on = False
        robot.run(0.6)  # max_input_age 0.3 s + one period
        n_at_hold = len(robot.commands)
        robot.run(1.5)
        assert len(robot.commands) == n_at_hold, "commands continued with a stale camera"
        holds = [e for e in robot.events if e.event == EpisodeEvent.HOLDING]
        assert holds and "detection" in holds[0].reason
        robot.camera_on = True
        robot.run(1.0)
        assert any(e.event == EpisodeEvent.RESUMED for e in robot.events)
        assert len(robot.commands) > n_at_hold
        # e-stop: commands stop within one control period
        call(ros, robot.estop, SetBool.Request(data=True), step=robot.publish)
        t_stop = time.monotonic()
        robot.run(1.0)
        late = [c for c in robot.commands if c[0] > t_stop + 0.2 + 0.05]
        assert not late, f"{len(late)} commands after the e-stop"
        assert any(e.event == EpisodeEvent.ABORTED and "e-stop" in e.reason for e in robot.events)
    finally:
        stop_node(proc)
    # restarted, the node still refuses to move until the e-stop is cleared
    proc = _policy(workdir, "policy_restart", state="hold")
    try:
        robot.run(1.0)
        refused = call(ros, robot.start, StartEpisode.Request(), timeout_s=30, step=robot.publish)
        assert not refused.accepted and "e-stop" in refused.message
        call(ros, robot.estop, SetBool.Request(data=False), step=robot.publish)
        assert start_episode(ros, robot.start, step=robot.publish).accepted
    finally:
        stop_node(proc)


def test_out_of_range_parameters_are_refused(workdir):
    proc = start_node("sgft_policy.policy_node", {
        "task": "push", "checkpoint": str(workdir / "push.safetensors"), "control_rate_hz": 500.0,
    }, str(workdir / "policy_bad_param.log"))
    assert proc.wait(timeout=30) == 2
    stop_node(proc)
    assert "control_rate_hz" in node_log(proc)
    proc = start_node("sgft_policy.policy_node", {
        "task": "push", "checkpoint": str(workdir / "push.safetensors"), "max_step": [0.5, 0.5],
    }, str(workdir / "policy_bad_step.log"))
    assert proc.wait(timeout=30) == 2
    stop_node(proc)
    assert "max_step" in node_log(proc)


def test_bad_calibration_offsets_are_refused(workdir):
    """A held object's offset (insert's leg tip) is x, y, z in metres, joint zero offsets one angle per arm joint:
    two numbers, millimetres or six angles stop the node with what is wrong."""
    for name, param, value, message in (("short", "held_object_offset", [0.0, 0.09], "3 finite values"),
                                        ("mm", "held_object_offset", [0.0, 0.0, 90.0], "metres"),
                                        ("joints", "joint_zero_offsets", [0.0] * 6, "one per arm joint")):
        proc = start_node("sgft_policy.policy_node", {
            "task": "push", "checkpoint": str(workdir / "push.safetensors"), param: value,
        }, str(workdir / f"policy_bad_{name}.log"))
        assert proc.wait(timeout=30) == 2
        stop_node(proc)
        log = node_log(proc)
        assert "refusing to start" in log and param in log and message in log, log


def test_killed_policy_node_sends_nothing_and_its_episode_is_aborted_on_restart(workdir, ros):
    robot = FakeRobot(ros, start_xy=(0.35, 0.0))
    since = time.time()  # latched events of earlier tests' nodes may still reach this fresh subscription
    proc = _policy(workdir, "policy_kill")
    try:
        robot.run(1.0)
        started = start_episode(ros, robot.start, step=robot.publish)
        assert started.accepted
        robot.update_pub.publish(adversarial_update(version=5, direction=+1.0))  # latched for the next node
        robot.run(1.5)
    finally:
        stop_node(proc, sig="kill")
    n_commands = len(robot.commands)
    robot.run(1.0)
    assert len(robot.commands) == n_commands, "targets arrived after the policy node died"
    ended = [e for e in robot.events if e.event in (EpisodeEvent.FINISHED, EpisodeEvent.ABORTED)
             and e.episode_id == started.episode_id and e.header.stamp.sec + 1e-9 * e.header.stamp.nanosec >= since]
    assert not ended, [(e.episode_id, e.event, e.reason) for e in ended]

    proc = _policy(workdir, "policy_kill")  # same state files: the same robot's policy node, restarted
    try:
        assert spin_until(ros, lambda: any(e.event == EpisodeEvent.ABORTED and e.episode_id == started.episode_id
                                           for e in robot.events), 30, robot.publish), node_log(proc)
        aborted = next(e for e in robot.events if e.event == EpisodeEvent.ABORTED)
        assert "restarted" in aborted.reason and not aborted.success
        again = start_episode(ros, robot.start, step=robot.publish)
        assert again.accepted and again.episode_id == started.episode_id + 1  # numbering continues
        robot.run(1.5)
        new = [t for t in robot.transitions if t.episode_id == again.episode_id]
        assert new and all(t.policy_version == 5 for t in new), "the restarted node missed the latched weights"
    finally:
        stop_node(proc)


def test_sim_time_stall_and_clock_jump_give_no_burst_of_commands(workdir, ros):
    """Ticks on multiples of the period of sim time; /clock stalls for 2 s, then jumps 10 s ahead: no command while
    time stands still, none in a burst after."""
    from rosgraph_msgs.msg import Clock

    clock_pub = ros.create_publisher(Clock, Topics.CLOCK, 10)
    sim = {"t": 100.0, "running": True}
    robot = FakeRobot(ros, start_xy=(0.35, 0.0))
    base_publish = robot.publish

    def publish_with_clock():
        now = time.monotonic()
        if now - robot._last_publish < 0.02:
            return
        if sim["running"]:
            sim["t"] += now - sim.get("wall", now)
        sim["wall"] = now
        stamp = Clock()
        stamp.clock.sec, stamp.clock.nanosec = int(sim["t"]), int((sim["t"] % 1) * 1e9)
        clock_pub.publish(stamp)
        base_publish()

    robot.publish = publish_with_clock
    robot.now = lambda: round(sim["t"] * 1e9)  # state stamped in sim time, as the simulated robot does
    proc = start_node("sgft_policy.policy_node", {
        "task": "push", "checkpoint": str(workdir / "push.safetensors"), "use_sim_time": True,
        "estop_state_file": str(workdir / "estop_clock"), "episode_state_file": str(workdir / "clock_episode.json"),
    }, str(workdir / "policy_clock.log"))
    try:
        robot.run(1.5)
        assert start_episode(ros, robot.start, step=robot.publish).accepted, node_log(proc)
        robot.run(1.5)
        assert len(robot.commands) >= 4, node_log(proc)
        # ticks fall on multiples of the period of sim time, which began at 100.0 s plus however long the node
        # took to start: a phase fixed at timer creation would sit anywhere in [0, period)
        period = 1.0 / 5.0  # the node's default control_rate_hz
        phase = np.array(robot.command_stamps) % period
        assert np.median(np.minimum(phase, period - phase)) < 0.03, f"tick phases {phase.round(3)}"
        sim["running"] = False  # the simulator stalls
        robot.run(0.3)
        n_stalled = len(robot.commands)
        robot.run(2.0)
        assert len(robot.commands) == n_stalled, "commands while sim time stood still"
        t_stalled = sim["t"]
        sim["t"] += 10.0  # then jumps ahead by 10 s
        sim["running"] = True
        t_resume = time.monotonic()
        robot.run(1.5)
        window = time.monotonic() - t_resume
        stamps = np.array(robot.command_stamps[n_stalled:])
        assert len(stamps) > 0, "the loop did not resume after the stall"
        # a catch-up would command the 50 ticks the jump skipped; checked on the commands' sim-time stamps, so a
        # loaded machine that delivers two commands close together in wall time does not fail it
        assert stamps.min() >= t_stalled + 10.0 - 0.05, f"commands for skipped ticks: stamps {stamps.round(2)}"
        ticks = np.floor(stamps / period + 1e-6)
        assert len(set(ticks)) == len(ticks), f"two commands in one tick: stamps {stamps.round(3)}"
        # one tick on the jump itself, then one per period of sim time (which runs at wall speed here)
        assert len(stamps) <= window / period + 2, f"{len(stamps)} commands in {window:.2f} s after the jump"
    finally:
        stop_node(proc)


def test_a_future_stamped_detection_does_not_keep_the_episode_going_once_perception_stops(workdir, ros):
    """A detection stamped 10 s ahead would never go stale: with perception dead the policy would act on a frozen
    object. It is refused, so the last real detection ages and the robot holds."""
    proc = _policy(workdir, "policy_future", state="future")
    robot = FakeRobot(ros, start_xy=(0.3, 0.0))
    try:
        robot.run(1.0)
        assert start_episode(ros, robot.start, step=robot.publish).accepted, node_log(proc)
        robot.run(1.0)
        robot.camera_on = False  # perception dies, after one last detection from the future
        robot.det_pub.publish(detection_msg(PUCK, robot.now() + 10_000_000_000))
        robot.run(0.6)  # max_input_age 0.3 s + one period
        n_at_hold = len(robot.commands)
        robot.run(1.5)
        assert len(robot.commands) == n_at_hold, "commands continued on a future-stamped detection"
    finally:
        stop_node(proc)
    holds = [e for e in robot.events if e.event == EpisodeEvent.HOLDING]
    assert holds and "object detection stale" in holds[-1].reason, [e.reason for e in holds]
    assert "rejected detection_stamp (#1)" in node_log(proc)


def test_a_false_on_the_estop_topic_does_not_clear_the_estop(workdir, ros):
    """Any peer can publish on /sgft/estop: it can only engage the stop; clearing takes the set_estop service."""
    proc = _policy(workdir, "policy_estop_topic", state="estop_topic")
    robot = FakeRobot(ros, start_xy=(0.3, 0.0))
    estop_pub = ros.create_publisher(Bool, Topics.ESTOP, ESTOP_QOS)
    try:
        robot.run(1.0)
        assert call(ros, robot.estop, SetBool.Request(data=True), step=robot.publish).success
        estop_pub.publish(Bool(data=False))
        robot.run(1.0)
        refused = call(ros, robot.start, StartEpisode.Request(), step=robot.publish)
        assert not refused.accepted and "e-stop" in refused.message, refused
        assert call(ros, robot.estop, SetBool.Request(data=False), step=robot.publish).message == "cleared"
        assert start_episode(ros, robot.start, step=robot.publish).accepted
    finally:
        stop_node(proc)
    assert "rejected estop_topic_clear (#1)" in node_log(proc)


def test_a_pose_jumping_half_a_metre_in_20_ms_makes_the_policy_hold(workdir, ros):
    """No FR3 moves 0.5 m in 20 ms (25 m/s; its limit is 3 m/s): the spoofed pose is refused and the robot holds
    until poses have been plausible for max_input_age; no command is computed from the jumped pose."""
    proc = _policy(workdir, "policy_jump", state="jump")
    robot = FakeRobot(ros, start_xy=(0.3, 0.0))
    try:
        robot.run(1.0)
        assert start_episode(ros, robot.start, step=robot.publish).accepted, node_log(proc)
        robot.run(1.0)
        robot.pose_pub.publish(pose_msg(robot.ee + [0.5, 0.0, 0.0], robot.last_pose_ns + 20_000_000))
        robot.run(1.5)
    finally:
        stop_node(proc)
    log = node_log(proc)
    holds = [e.reason for e in robot.events if e.event == EpisodeEvent.HOLDING]
    assert IMPLAUSIBLE_POSE in holds, (holds, log)
    assert any(e.event == EpisodeEvent.RESUMED for e in robot.events), "did not resume on plausible poses"
    assert "rejected robot_pose_jump (#1)" in log, log
    for _, before, target in robot.commands:  # every target one bounded step from the real pose
        assert np.all(np.abs(target[:2] - before[:2]) <= SPEC.max_delta + 1e-6), (before, target)


def test_thirty_concurrent_start_and_stop_callers_all_get_an_answer(workdir, ros):
    proc = _policy(workdir, "policy_burst", state="burst")
    robot = FakeRobot(ros, start_xy=(0.3, 0.0))
    try:
        robot.run(1.0)
        clients = [ros.create_client(StartEpisode, Services.START_EPISODE) if i % 2 == 0
                   else ros.create_client(StopEpisode, Services.STOP_EPISODE) for i in range(30)]
        assert spin_until(ros, lambda: all(c.service_is_ready() for c in clients), 30, robot.publish)
        futures = [c.call_async(StartEpisode.Request() if i % 2 == 0 else StopEpisode.Request(reason="burst"))
                   for i, c in enumerate(clients)]
        spin_until(ros, lambda: all(f.done() for f in futures), 30, robot.publish)
        answered = [f.done() for f in futures]
        assert all(answered), f"{answered.count(False)} of 30 callers got no answer; {node_log(proc)}"
        starts = [f.result() for f in futures[::2]]
        assert all(r.accepted or r.message for r in starts)
    finally:
        stop_node(proc)


def is_measured(robot: FakeRobot, target: np.ndarray) -> bool:
    """A hold target: exactly a pose the arm published (the policy's latest), at the task's height."""
    return target[2] == pytest.approx(SPEC.ee_height) and any(
        np.allclose(target[:2], pose[:2], atol=1e-9) for pose in robot.published)


def test_estop_commands_the_measured_pose_once_within_a_period_then_nothing(workdir, ros):
    """The arm trails its targets (lag): the last target lies ahead of it. The e-stop sends the pose it is at, so the
    controller stops pulling it on, and no command after."""
    proc = _policy(workdir, "policy_estop_hold", state="estop_hold")
    robot = FakeRobot(ros, start_xy=(0.3, 0.0), lag=0.5)
    try:
        robot.run(1.0)
        assert start_episode(ros, robot.start, step=robot.publish).accepted, node_log(proc)
        robot.update_pub.publish(adversarial_update(version=1, direction=+1.0))  # full steps: far ahead of the arm
        robot.run(1.2)
        n = len(robot.commands)
        t_call = time.monotonic()
        assert call(ros, robot.estop, SetBool.Request(data=True), step=robot.publish).success
        robot.run(1.0)
    finally:
        stop_node(proc)
    after = robot.commands[n:]
    assert len(after) == 1, f"{len(after)} commands after the e-stop; {node_log(proc)}"
    t, before, hold = after[0]
    assert t - t_call <= 0.2, f"hold target {t - t_call:.3f} s after the e-stop call"
    assert is_measured(robot, hold) and not np.allclose(hold, robot.commands[n - 1][2]), (hold, before)
    assert any(e.event == EpisodeEvent.ABORTED and "e-stop" in e.reason for e in robot.events)


def test_pause_holds_the_measured_pose_and_resume_continues(workdir, ros):
    proc = _policy(workdir, "policy_pause", state="pause", max_hold_s=0.5)
    robot = FakeRobot(ros, start_xy=(0.3, 0.0), lag=0.5)
    try:
        robot.run(1.0)
        refused = call(ros, robot.pause, SetBool.Request(data=True), step=robot.publish)
        assert not refused.success and refused.message == "no episode is running", refused
        started = start_episode(ros, robot.start, step=robot.publish)
        assert started.accepted, node_log(proc)
        robot.run(1.0)
        n = len(robot.commands)
        assert call(ros, robot.pause, SetBool.Request(data=True), step=robot.publish).message == "paused"
        robot.run(0.3)  # a transition in flight at the pause arrives
        n_transitions = len(robot.transitions)
        robot.run(1.2)  # longer than max_hold_s: a pause is no hold
        paused = robot.commands[n:]
        assert len(paused) == 1 and is_measured(robot, paused[0][2]), paused
        assert len(robot.transitions) == n_transitions, "transitions while paused"
        resumed = call(ros, robot.pause, SetBool.Request(data=False), step=robot.publish)
        assert resumed.success and resumed.message == "resumed", resumed
        robot.run(1.0)
    finally:
        stop_node(proc)
    events = [(e.event, e.reason) for e in robot.events if e.episode_id == started.episode_id]
    assert (EpisodeEvent.HOLDING, "paused by operator") in events, events
    assert (EpisodeEvent.RESUMED, "resumed by operator") in events, events
    assert not any(kind == EpisodeEvent.ABORTED for kind, _ in events), events
    assert len(robot.commands) >= n + 1 + 3, "commands did not continue after the resume"
    assert len(robot.transitions) > n_transitions


def test_an_intervention_is_bounded_by_the_envelope_flagged_and_handed_back(workdir, ros):
    """The operator drives full throttle (3.0 is clipped to 1) into the +x +y corner: every command stays in the box
    and one step from the arm, and the steps are flagged with the operator's action; active=false hands back."""
    proc = _policy(workdir, "policy_intervention", state="intervention")
    robot = FakeRobot(ros, start_xy=(0.55, 0.2))
    try:
        robot.run(1.0)
        started = start_episode(ros, robot.start, step=robot.publish)
        assert started.accepted, node_log(proc)
        robot.run(0.6)
        robot.intervention = (True, [3.0, 1.0])
        robot.run(2.0)
        robot.intervention = (False, [])
        robot.run(0.6)
        robot.intervention = None  # released: silence is no loss
        for action in ([1.0], [float("nan"), 0.0]):  # refused, so not taken over
            bad = Intervention(active=True, action=action)
            bad.header.stamp = time_msg(robot.now())
            robot.intervention_pub.publish(bad)
            robot.run(0.3)
    finally:
        stop_node(proc)
    log = node_log(proc)
    low, high = SPEC.workspace_low[:2], SPEC.workspace_high[:2]
    for _, before, target in robot.commands:
        assert np.all(np.abs(target[:2] - before[:2]) <= SPEC.max_delta + 1e-6), (before, target)
        assert np.all(target[:2] >= low - 1e-6) and np.all(target[:2] <= high + 1e-6), target
    np.testing.assert_allclose(max((c[2] for c in robot.commands), key=lambda t: t.sum())[:2], high, atol=1e-6)
    mine = [t for t in robot.transitions if t.episode_id == started.episode_id]
    flagged = [t for t in mine if t.intervention]
    assert len(flagged) >= 6, [(t.step, t.intervention) for t in mine]
    assert all(list(t.action) == [1.0, 1.0] for t in flagged)
    assert not mine[0].intervention and not mine[-1].intervention, "the policy did not act before and after"
    assert not any(e.event == EpisodeEvent.ABORTED and e.episode_id == started.episode_id for e in robot.events), log
    assert "operator took over" in log and "operator released" in log, log
    assert "rejected intervention_size (#1)" in log and "rejected intervention_nonfinite (#1)" in log, log


def test_a_teleop_device_that_goes_silent_mid_intervention_aborts_the_episode(workdir, ros):
    proc = _policy(workdir, "policy_teleop_lost", state="teleop_lost")
    robot = FakeRobot(ros, start_xy=(0.4, 0.0))
    try:
        robot.run(1.0)
        started = start_episode(ros, robot.start, step=robot.publish)
        assert started.accepted, node_log(proc)
        robot.intervention = (True, [0.0, -0.5])
        robot.run(1.2)
        n_steps = len([t for t in robot.transitions if t.episode_id == started.episode_id])
        robot.intervention = None  # unplugged: no active=false
        t_silent = time.monotonic()
        assert spin_until(ros, lambda: any(e.event == EpisodeEvent.ABORTED for e in robot.events), 2.0,
                          robot.publish), node_log(proc)
        aborted = next(e for e in robot.events if e.event == EpisodeEvent.ABORTED)
        robot.run(0.5)
        n = len(robot.commands)
        hold = robot.commands[n - 1][2]
        assert is_measured(robot, hold), hold
        robot.run(0.6)
        assert len(robot.commands) == n, "commands after the abort"
        # the next episode starts with that active intervention long stale: it is ignored, the policy acts
        again = start_episode(ros, robot.start, step=robot.publish)
        assert again.accepted, again.message
        robot.run(1.0)
    finally:
        stop_node(proc)
    assert aborted.episode_id == started.episode_id and "teleoperation lost" in aborted.reason, aborted
    assert robot.commands[n - 1][0] >= t_silent
    flagged = [t for t in robot.transitions if t.episode_id == started.episode_id and t.intervention]
    assert len(flagged) >= n_steps - 1 >= 3, "the steps before the loss were not kept"
    assert not any(e.event == EpisodeEvent.ABORTED and e.episode_id == again.episode_id for e in robot.events)
    assert [t for t in robot.transitions if t.episode_id == again.episode_id and not t.intervention]


def test_with_a_per_episode_publisher_no_target_publisher_exists_between_episodes(workdir, ros):
    """crisp's controller ignores a topic with two publishers: with command_publisher_per_episode the policy's
    publisher exists only from an episode's start until shortly after its end, so the reset server can home the
    arm on the same topic meanwhile."""
    proc = _policy(workdir, "policy_per_episode", command_publisher_per_episode=True)
    robot = FakeRobot(ros, start_xy=(0.3, 0.0))
    topic = Topics.CARTESIAN_TARGET
    try:
        robot.run(1.5)
        assert ros.count_publishers(topic) == 0
        assert start_episode(ros, robot.start, step=robot.publish).accepted
        assert spin_until(ros, lambda: ros.count_publishers(topic) == 1, 5.0, robot.publish)
        assert spin_until(ros, lambda: bool(robot.commands), 5.0, robot.publish)
        assert call(ros, robot.stop, StopEpisode.Request(reason="test"), step=robot.publish).stopped
        assert spin_until(ros, lambda: ros.count_publishers(topic) == 0, 5.0, robot.publish)
    finally:
        stop_node(proc)
