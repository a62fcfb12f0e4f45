"""The simulated robot node: its command path in process (the proxy's action scale is applied to the commanded
change against the state the command was computed from, not at the delayed moment it takes effect), and its camera
timing over DDS."""

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped

from sgft_sim.robot_node import SimRobotNode, SimRobotParameters


@pytest.fixture
def node(request):
    task = getattr(request, "param", "push")
    rclpy.init(args=["--ros-args", "-p", "time_scale:=0.05", "-p", "camera_rate_hz:=0.1", "-p", f"task:={task}"])
    robot = SimRobotNode()
    robot.running = False  # stop the sim thread: the test steps the env itself
    robot.thread.join(timeout=5.0)
    yield robot
    robot.destroy_node()
    rclpy.shutdown()


def test_parameters_are_validated_and_derived():
    p = SimRobotParameters.from_values(SimRobotParameters.defaults())
    assert (p.state_period, p.camera_steps, p.idle_time_scale, p.cameras) == (pytest.approx(0.02), 10, 4.0,
                                                                              ("camera1",))
    assert p.control_steps(0.2) == 10
    with pytest.raises(ValueError, match="control period"):
        p.control_steps(0.205)
    for overrides, word in (({"time_scale": 100.0}, "time_scale"), ({"idle_time_scale": 0.01}, "idle_time_scale"),
                            ({"command_sync_timeout_s": -1.0}, "command_sync_timeout_s"),
                            ({"camera_rate_hz": 7.0}, "camera_rate_hz"), ({"cameras": ["camera9"]}, "cameras"),
                            ({"cameras": []}, "cameras")):
        with pytest.raises(ValueError, match=word):
            SimRobotParameters.from_values({**SimRobotParameters.defaults(), **overrides})


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


def test_a_late_command_is_scaled_against_the_state_it_was_computed_from(node):
    """A command stamped at an earlier state step (the policy's tick) that reaches the sim after the arm has moved
    on is scaled against the position published at its stamp, not against the current one."""
    then = node.env.ee_position()
    node.history.append((50, then.copy(), node.env.joint_state()[1]))
    node.env.set_ee_target(then + np.array([0.05, 0.0, 0.0]))
    node.env.simulate(0.2)  # the arm moves on meanwhile
    assert np.linalg.norm(node.env.ee_position() - then) > 0.01
    msg = _target(then + np.array([0.02, 0.01, 0.0]))
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1, 10_000_000  # 1.01 s = step 50 at 50 Hz
    node.sim_time = 1.2  # where the sim's clock is when the late command arrives
    node._on_command(msg)
    (_, (_, scaled)), = node.pending
    np.testing.assert_allclose(scaled, then + 2.5 * np.array([0.02, 0.01, 0.0]))


@pytest.mark.parametrize("node", ["hammer"], indirect=True)
def test_joint_targets_in_fr3_readings_are_scaled_in_the_mjcfs_and_unnamed_joints_keep_theirs(node):
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from sgft_core.fr3 import MJCF_JOINT_ZERO_OFFSET

    scale = node.proxy.action_scale
    q, held = node.env.joint_state()[1], node.env.arm.joint_targets()
    names = ["fr3_joint2", "fr3_joint4", "fr3_joint6", "fr3_gripper"]  # a joint of another controller is ignored
    commanded = q[[1, 3, 5]] + MJCF_JOINT_ZERO_OFFSET[[1, 3, 5]] + np.array([0.05, -0.05, 0.1])
    msg = JointTrajectory(joint_names=names, points=[JointTrajectoryPoint(positions=[*commanded.tolist(), 0.04])])
    node._on_command(msg)
    (_, (kind, targets)), = node.pending
    assert kind == "joint"
    expected = held.copy()
    expected[[1, 3, 5]] = q[[1, 3, 5]] + scale * np.array([0.05, -0.05, 0.1])
    np.testing.assert_allclose(targets, expected, atol=1e-12)


def test_negative_and_future_stamps_are_ignored_not_fatal(node):
    """A peer's command or detection with a negative stamp (rclpy's Time raises on it) or one far ahead of the sim's
    clock (it would count as the answer to every later tick) is ignored; a zero stamp is an unstamped command."""
    from sgft_msgs.msg import ObjectDetection

    node.sim_time = 2.0
    for sec in (-3, 3600):
        msg = _target(node.env.ee_position() + np.array([0.01, 0.0, 0.0]))
        msg.header.stamp.sec = sec
        node._on_command(msg)
        detection = ObjectDetection()
        detection.header.stamp.sec = sec
        node._on_detection(detection)
    assert node.pending == [] and node.command_stamp_ns == -1 and node.detected_stamps == {}
    node._on_command(_target(node.env.ee_position() + np.array([0.01, 0.0, 0.0])))  # unstamped: accepted
    assert len(node.pending) == 1


def test_a_reset_during_an_episode_aborts_it_first_and_is_refused_until_it_has_ended(node):
    from sgft_interfaces import Services
    from sgft_msgs.msg import EpisodeEvent
    from sgft_msgs.srv import ResetEpisode

    node._on_episode_event(EpisodeEvent(event=EpisodeEvent.STARTED, episode_id=3))
    refused = node._on_reset(ResetEpisode.Request(seed=5), ResetEpisode.Response())
    assert not refused.success and refused.message.startswith(Services.RESET_EPISODE_RUNNING)
    assert node.resets == 0
    node._on_episode_event(EpisodeEvent(event=EpisodeEvent.ABORTED, episode_id=3))
    done = node._on_reset(ResetEpisode.Request(seed=5), ResetEpisode.Response())
    assert done.success and node.resets == 1


def test_bad_targets_are_refused_before_they_are_queued(node):
    node._on_command(_target([np.nan, 0.0, 0.1]))
    bad_frame = _target([0.4, 0.0, 0.02])
    bad_frame.header.frame_id = "camera1_depth_optical_frame"
    node._on_command(bad_frame)
    assert node.pending == []


def _start_sim_with_test_node(tmp_path, name: str, **params):
    """The sim robot node as a process of its own (4x, small clouds, 5 Hz camera) in a DDS domain of this test's,
    and this test's node."""
    from sgft_testing import isolate_domain, start_node

    isolate_domain()
    proc = start_node("sgft_sim.robot_node", {"time_scale": 4.0, "camera_rate_hz": 5.0, "cloud_width": 106,
                                              "cloud_height": 60, **params}, str(tmp_path / "sim.log"))
    rclpy.init()
    return proc, rclpy.create_node(name)


def test_frames_precede_the_control_ticks_and_the_clock_waits_for_their_detections(tmp_path):
    """Over DDS, with this test standing in for perception: each cloud is stamped one state step before a multiple
    of the camera period (5 Hz here, as push.yaml: one state step before each policy tick), and while a detection
    is owed /clock stands still; the sim goes on once it arrives."""
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import PointCloud2

    from sgft_interfaces import SENSOR_QOS, Topics
    from sgft_msgs.msg import ObjectDetection
    from sgft_testing import node_log, spin_until, stop_node

    proc, ros = _start_sim_with_test_node(tmp_path, "sim_sync_test", perception_sync_timeout_s=5.0)
    frames: list[int] = []  # stamps (ns) of the clouds received
    clocks: list[tuple[float, int]] = []  # (wall time, sim ns)
    held = {"stamp": None, "until": 0.0}
    pub = ros.create_publisher(ObjectDetection, Topics.OBJECT_DETECTION, SENSOR_QOS)

    def detect(stamp) -> None:
        out = ObjectDetection(valid=False, reason="test")
        out.header.stamp = stamp
        pub.publish(out)

    def on_cloud(msg: PointCloud2) -> None:
        frames.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        if len(frames) == 6:  # hold this one's detection back for a second of wall time
            held.update(stamp=msg.header.stamp, until=time.monotonic() + 1.0)
        else:
            detect(msg.header.stamp)

    def release() -> None:
        if held["stamp"] is not None and time.monotonic() > held["until"]:
            detect(held["stamp"])
            held["stamp"] = None

    ros.create_subscription(PointCloud2, Topics.CAMERA_CLOUDS[0], on_cloud, SENSOR_QOS)
    ros.create_subscription(Clock, Topics.CLOCK, lambda m: clocks.append(
        (time.monotonic(), m.clock.sec * 1_000_000_000 + m.clock.nanosec)), 10)
    try:
        assert spin_until(ros, lambda: len(frames) >= 10, 60.0, release), node_log(proc)
        step_ns, camera_ns = 20_000_000, 200_000_000
        assert all((stamp + step_ns) % camera_ns == 0 for stamp in frames), frames
        held_stamp = frames[5]
        during = [ns for wall, ns in clocks if held_stamp < ns and wall < held["until"] - 0.1]
        assert not during, f"/clock went on to {during[-1]} ns while the detection of {held_stamp} was owed"
        assert frames[-1] > held_stamp, "the sim did not go on after the detection arrived"
    finally:
        ros.destroy_node()
        rclpy.shutdown()
        stop_node(proc)


def test_during_an_episode_the_clock_waits_at_each_tick_for_the_policys_command(tmp_path):
    """Over DDS, with this test standing in for the policy node: once an episode has STARTED the sim holds /clock at
    each multiple of the control period until a command stamped at that tick arrives (here one is held back for a
    second of wall time); once the episode has FINISHED it runs on with no commands at all. Between episodes it runs
    at idle_time_scale (0.25×, against 4× in episodes), except from a reset until the episode starts (4×: the session
    waits for the reset scene's detection)."""
    # In a process of its own: once in CI the test node's DDS teardown never returned; it must not hang the suite.
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_command_sync_check, args=(str(tmp_path), results))
    child.start()
    try:
        outcome = results.get(timeout=240)
    finally:
        child.join(timeout=20)
        if child.is_alive():
            child.kill()
    assert outcome == "", outcome


def _command_sync_check(tmp_path: str, results) -> None:
    """The DDS part of the test above; puts "" or what failed on `results`."""
    from rosgraph_msgs.msg import Clock

    from sgft_interfaces import COMMAND_QOS, EPISODE_EVENT_QOS, ROBOT_STATE_QOS, Services, Topics
    from sgft_msgs.msg import EpisodeEvent
    from sgft_msgs.srv import ResetEpisode
    from sgft_testing import call, node_log, spin_until, stop_node

    outcome = ""
    proc, ros = _start_sim_with_test_node(Path(tmp_path), "sim_command_sync_test", command_sync_timeout_s=5.0,
                                          idle_time_scale=0.25)
    tick_ns = 200_000_000
    clocks: list[tuple[float, int]] = []  # (wall time, sim ns)
    state = {"pose": None, "tick": None, "commands": 0, "held": None, "until": 0.0}
    command_pub = ros.create_publisher(PoseStamped, Topics.CARTESIAN_TARGET, COMMAND_QOS)
    event_pub = ros.create_publisher(EpisodeEvent, Topics.EPISODE_EVENTS, EPISODE_EVENT_QOS)

    def command(stamp_ns: int) -> None:
        msg = PoseStamped()
        msg.header.frame_id = "fr3_link0"
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.pose.position = state["pose"].pose.position  # stay where the arm is
        command_pub.publish(msg)
        state["commands"] += 1

    def on_clock(msg: Clock) -> None:
        now = msg.clock.sec * 1_000_000_000 + msg.clock.nanosec
        clocks.append((time.monotonic(), now))
        if state["tick"] is None or state["pose"] is None or now % tick_ns or now == state["tick"]:
            return
        state["tick"] = now
        if state["commands"] == 3:  # hold the fourth command back for a second of wall time
            state.update(held=now, until=time.monotonic() + 1.0)
        elif state["held"] is None or state["until"] == 0.0:
            command(now)

    def release() -> None:
        if state["held"] is not None and state["until"] and time.monotonic() > state["until"]:
            command(state["held"])
            state["until"] = 0.0

    ros.create_subscription(PoseStamped, Topics.ROBOT_POSE, lambda m: state.update(pose=m), ROBOT_STATE_QOS)
    ros.create_subscription(Clock, Topics.CLOCK, on_clock, 10)
    try:
        assert spin_until(ros, lambda: state["pose"] is not None and clocks and event_pub.get_subscription_count(),
                          60.0), node_log(proc)

        def clock_rate(seconds: float) -> float:
            """Sim seconds per wall second over the next `seconds`."""
            start = clocks[-1]
            spin_until(ros, lambda: False, seconds)
            return (clocks[-1][1] - start[1]) * 1e-9 / (clocks[-1][0] - start[0])

        idle_rate = clock_rate(2.0)
        assert 0.12 < idle_rate < 0.4, f"sim time ran {idle_rate:.2f}× the wall clock between episodes (idle: 0.25×)"
        reset = ros.create_client(ResetEpisode, Services.RESET_EPISODE)
        assert call(ros, reset, ResetEpisode.Request(seed=3)).success, node_log(proc)
        reset_rate = clock_rate(1.5)
        assert reset_rate > 2.5, f"sim time ran {reset_rate:.2f}× the wall clock after a reset (should hurry: 4×)"
        event_pub.publish(EpisodeEvent(task="push", episode_id=1, event=EpisodeEvent.STARTED))
        state["tick"] = 0  # from now on, answer each tick
        assert spin_until(ros, lambda: state["commands"] >= 8, 60.0, release), node_log(proc)
        held = state["held"]
        reached = next(wall for wall, ns in clocks if ns == held)
        went_on = next(wall for wall, ns in clocks if ns > held)
        assert went_on - reached > 0.8, \
            f"/clock went on {went_on - reached:.2f} s after the tick whose command was held back for 1 s"
        event_pub.publish(EpisodeEvent(task="push", episode_id=1, event=EpisodeEvent.FINISHED))
        state["tick"] = None  # stop answering
        finished_at = clocks[-1][1]
        assert spin_until(ros, lambda: clocks[-1][1] > finished_at + 5 * tick_ns, 10.0), \
            "after the episode finished the sim still waited for commands"
    except AssertionError as err:
        outcome = str(err) or "assertion failed"
    finally:
        stop_node(proc)
        results.put(outcome)  # before the teardown below, which once hung in Fast DDS
        ros.destroy_node()
        rclpy.shutdown()


def test_wall_clock_parameters_force_real_time_and_no_waiting():
    p = SimRobotParameters.from_values({**SimRobotParameters.defaults(), "wall_clock": True, "state_rate_hz": 1000.0,
                                        "camera_rate_hz": 30.0, "cloud_render_every": 3})
    assert (p.time_scale, p.idle_time_scale, p.sync_timeout, p.command_timeout, p.render_every) == (1.0, 1.0, 0.0,
                                                                                                      0.0, 3)
    with pytest.raises(ValueError, match="camera_rate_hz"):  # under sim time frames fall on whole state steps
        SimRobotParameters.from_values({**SimRobotParameters.defaults(), "state_rate_hz": 1000.0,
                                        "camera_rate_hz": 30.0})
    with pytest.raises(ValueError, match="cloud_render_every"):
        SimRobotParameters.from_values({**SimRobotParameters.defaults(), "cloud_render_every": 0})


def test_on_the_wall_clock_the_sim_stamps_with_its_clock_streams_clouds_at_the_camera_rate_and_never_waits(tmp_path):
    """Over DDS, with this test standing in for perception and the policy (answering nothing): no /clock, state and
    clouds stamped with the wall clock, clouds at 30 Hz although a new one is rendered only every third period, and
    during a STARTED episode without a single command the state keeps its real rate; a wall-stamped command is
    taken (not refused as a future stamp) and moves the arm."""
    from sensor_msgs.msg import PointCloud2

    from sgft_interfaces import COMMAND_QOS, EPISODE_EVENT_QOS, ROBOT_STATE_QOS, SENSOR_QOS, Topics
    from sgft_msgs.msg import EpisodeEvent
    from sgft_testing import node_log, spin_until, stop_node

    proc, ros = _start_sim_with_test_node(tmp_path, "sim_wall_clock_test", wall_clock=True, state_rate_hz=500.0,
                                          camera_rate_hz=30.0, cloud_render_every=3)
    poses: list[tuple[int, int, np.ndarray]] = []  # (receipt ns, stamp ns, position)
    clouds: list[tuple[int, int]] = []  # (receipt ns, stamp ns)

    def now_ns() -> int:
        return ros.get_clock().now().nanoseconds

    def ns(stamp) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    ros.create_subscription(PoseStamped, Topics.ROBOT_POSE, lambda m: poses.append(
        (now_ns(), ns(m.header.stamp), np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]))),
        ROBOT_STATE_QOS)
    ros.create_subscription(PointCloud2, Topics.CAMERA_CLOUDS[0], lambda m: clouds.append(
        (now_ns(), ns(m.header.stamp))), SENSOR_QOS)
    command_pub = ros.create_publisher(PoseStamped, Topics.CARTESIAN_TARGET, COMMAND_QOS)
    event_pub = ros.create_publisher(EpisodeEvent, Topics.EPISODE_EVENTS, EPISODE_EVENT_QOS)
    try:
        assert spin_until(ros, lambda: len(clouds) >= 3 and event_pub.get_subscription_count() > 0, 60.0), \
            node_log(proc)
        assert ros.count_publishers(Topics.CLOCK) == 0
        event_pub.publish(EpisodeEvent(task="push", episode_id=1, event=EpisodeEvent.STARTED))
        poses.clear()
        clouds.clear()
        spin_until(ros, lambda: False, 3.0)
        assert poses and clouds, node_log(proc)
        # stamped with the wall clock: close to this process's clock when received
        assert max(abs(r - s) for r, s, _ in poses) < 0.5e9 and max(abs(r - s) for r, s in clouds) < 0.5e9
        # no waiting for the unanswered ticks: the state's stamps advance with the wall clock (a loaded machine may
        # drop some best-effort messages, so the rate is checked loosely)
        span_s = (poses[-1][1] - poses[0][1]) * 1e-9
        assert span_s > 2.0, f"state stamps spanned {span_s:.2f} s over 3 s of wall time"
        assert len(poses) / span_s > 100, f"{len(poses)} poses in {span_s:.2f} s (500 Hz published)"
        stamps = np.array([s for _, s in clouds])
        gaps_ms = np.diff(stamps) * 1e-6
        assert len(clouds) >= 45, f"{len(clouds)} clouds in 3 s (30 Hz published): {gaps_ms.round(1)}"
        assert abs(np.median(gaps_ms) - 1e3 / 30) < 5.0, gaps_ms.round(1)
        start = poses[-1][2]
        msg = _target(start + np.array([0.03, 0.0, 0.0]))
        msg.header.stamp = ros.get_clock().now().to_msg()
        command_pub.publish(msg)
        assert spin_until(ros, lambda: poses[-1][2][0] - start[0] > 0.01, 10.0), \
            f"the arm did not follow a wall-stamped command\n{node_log(proc)}"
        assert "ignoring command" not in node_log(proc)
    finally:
        ros.destroy_node()
        rclpy.shutdown()
        stop_node(proc)
