"""The episode recorder: over DDS as its own process with a fake graph publishing one short episode, and its bag
writing and salvage in process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from sgft_testing import (
    RERUN_MULTIPROCESS,
    isolate_domain,
    node_log,
    shared_node_fixtures,
    spin_until,
    start_node,
    stop_node,
)

isolate_domain()

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from sgft_bringup.recorder import EpisodeBag, Stream, salvage, sgft_typestore, unfinished_bags  # noqa: E402
from sgft_core.fr3 import JOINT_NAMES  # noqa: E402
from sgft_core.tasks import get_task  # noqa: E402
from sgft_interfaces import (  # noqa: E402
    COMMAND_QOS,
    EPISODE_EVENT_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    TRANSITION_QOS,
    Topics,
)
from sgft_msgs.msg import EpisodeEvent, ObjectDetection, Transition  # noqa: E402

ros_node, ros = shared_node_fixtures("test_recorder")
SPEC = get_task("push")
IMAGE_TOPIC = "/camera1/camera1/color/image_raw"
IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def stamped(msg, t_ns: int):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 10**9)
    msg.header.frame_id = "fr3_link0"
    return msg


def transition(episode: int, step: int, t_ns: int, rng: np.random.Generator) -> Transition:
    obs = rng.uniform([0.3, -0.2, 0.35, -0.2], [0.5, 0.2, 0.5, 0.2]).astype(np.float32)
    next_obs = obs + rng.normal(0, 0.01, 4).astype(np.float32)
    return stamped(Transition(task="push", episode_id=episode, step=step, obs=obs.tolist(),
                              action=rng.uniform(-1, 1, 2).astype(np.float32).tolist(),
                              reward=float(SPEC.reward(next_obs)), next_obs=next_obs.tolist()), t_ns)


def event(episode: int, kind: int, t_ns: int, steps: int = 0) -> EpisodeEvent:
    return stamped(EpisodeEvent(task="push", episode_id=episode, event=kind, steps=steps), t_ns)


def pose(t_ns: int, x: float) -> PoseStamped:
    msg = stamped(PoseStamped(), t_ns)
    msg.pose.position.x, msg.pose.orientation.w = x, 1.0
    return msg


def image(t_ns: int, width: int = 8, height: int = 6, data: bytes | None = None) -> Image:
    data = bytes(range(3 * width * height)) if data is None else data
    return stamped(Image(width=width, height=height, encoding="rgb8", step=3 * width, data=data), t_ns)


def read_bag(bag: Path) -> dict[str, list[tuple[int, bytes, str]]]:
    """topic -> [(log time, raw CDR, msgtype)]"""
    out: dict[str, list] = {}
    with AnyReader([bag]) as reader:
        for connection, timestamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append((timestamp, bytes(raw), connection.msgtype))
    return out


@RERUN_MULTIPROCESS
def test_recorder_records_one_episode_over_dds(ros, tmp_path: Path) -> None:
    out_dir = tmp_path / "recordings"
    proc = start_node("sgft_bringup.recorder", {"output_dir": str(out_dir), "image_every_n": 2,
                                                 "state_rate_hz": 50.0, "flush_period_s": 0.2},
                      str(tmp_path / "recorder.log"))
    try:
        pubs = {
            "event": ros.create_publisher(EpisodeEvent, Topics.EPISODE_EVENTS, EPISODE_EVENT_QOS),
            "transition": ros.create_publisher(Transition, Topics.TRANSITIONS, TRANSITION_QOS),
            "pose": ros.create_publisher(PoseStamped, Topics.ROBOT_POSE, ROBOT_STATE_QOS),
            "joints": ros.create_publisher(JointState, Topics.MEASURED_JOINT_STATES, ROBOT_STATE_QOS),
            "detection": ros.create_publisher(ObjectDetection, Topics.OBJECT_DETECTION, SENSOR_QOS),
            "target": ros.create_publisher(PoseStamped, Topics.CARTESIAN_TARGET, COMMAND_QOS),
            "trajectory": ros.create_publisher(JointTrajectory, Topics.JOINT_TRAJECTORY, COMMAND_QOS),
            "image": ros.create_publisher(Image, IMAGE_TOPIC, IMAGE_QOS),
        }
        assert spin_until(ros, lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 30), \
            node_log(proc)
        spin_until(ros, lambda: False, 0.5)  # let the recorder's side of each match settle as well

        def send(name: str, msg) -> None:
            pubs[name].publish(msg)
            spin_until(ros, lambda: False, 0.005)

        rng = np.random.default_rng(3)
        t0 = time.time_ns()
        ms = 1_000_000
        send("event", event(7, EpisodeEvent.STARTED, t0))
        spin_until(ros, lambda: any(out_dir.glob("episode_7_*")), 10)
        sent = []
        for step in range(5):
            tick = t0 + step * 200 * ms
            for k in range(8):  # robot state at 200 Hz: recorded at 50 Hz
                send("pose", pose(tick + k * 5 * ms, 0.4 + 0.001 * k))
                send("joints", stamped(JointState(name=list(JOINT_NAMES), position=[0.1 * k] * 7), tick + k * 5 * ms))
            send("detection", stamped(ObjectDetection(num_points=50, confidence=0.9, valid=True), tick))
            send("target", pose(tick, 0.45))
            point = JointTrajectoryPoint(positions=[0.2] * 7)
            send("trajectory", stamped(JointTrajectory(joint_names=list(JOINT_NAMES), points=[point]), tick))
            msg = transition(7, step, tick, rng)
            sent.append(msg)
            send("transition", msg)
            if step == 2:  # malformed: undecodable bytes, NaN values, an image whose size lies, another episode's
                send("transition", b"\x00\x01\x00\x00garbage")
                bad = transition(7, step, tick, rng)
                bad.obs[0] = float("nan")
                send("transition", bad)
                send("image", image(tick, data=b"short"))
                send("joints", stamped(JointState(name=["a"], position=[0.0, 1.0]), tick + 7 * ms))
                send("transition", transition(99, 0, tick, rng))
            send("image", image(tick))  # six images with the bad one: the 1st, 3rd (bad: skipped), 5th are kept
        spin_until(ros, lambda: False, 0.5)  # the last transitions reach the recorder before the episode ends
        send("event", event(7, EpisodeEvent.FINISHED, t0 + 1000 * ms, steps=5))
        assert spin_until(ros, lambda: any(out_dir.glob("episode_7_*/metadata.yaml")), 15), node_log(proc)
        # it goes on: the next episode has a bag of its own
        send("event", event(8, EpisodeEvent.STARTED, t0 + 1100 * ms))
        send("transition", transition(8, 0, t0 + 1100 * ms, rng))
        spin_until(ros, lambda: False, 0.3)
        send("event", event(8, EpisodeEvent.ABORTED, t0 + 1200 * ms, steps=1))
        assert spin_until(ros, lambda: any(out_dir.glob("episode_8_*/metadata.yaml")), 15), node_log(proc)
        assert proc.poll() is None, node_log(proc)
    finally:
        stop_node(proc)
    log = node_log(proc)

    (bag,) = out_dir.glob("episode_7_*")
    topics = read_bag(bag)
    # every transition of the episode, byte for byte, at its header stamp
    recorded = [deserialize_message(raw, Transition) for _, raw, _ in topics[Topics.TRANSITIONS]]
    assert recorded == sent, log
    assert [t for t, _, _ in topics[Topics.TRANSITIONS]] == [
        m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in sent]
    assert [deserialize_message(raw, EpisodeEvent).event for _, raw, _ in topics[Topics.EPISODE_EVENTS]] == [
        EpisodeEvent.STARTED, EpisodeEvent.FINISHED]
    assert topics[Topics.TRANSITIONS][0][2] == "sgft_msgs/msg/Transition"
    assert topics[Topics.ROBOT_POSE][0][2] == "geometry_msgs/msg/PoseStamped"
    assert topics[IMAGE_TOPIC][0][2] == "sensor_msgs/msg/Image"
    for topic in (Topics.OBJECT_DETECTION, Topics.CARTESIAN_TARGET, Topics.JOINT_TRAJECTORY):
        assert len(topics[topic]) == 5, (topic, log)
    # state thinned to 50 Hz (best effort: a sample may also be lost, never one kept closer than a period)
    for topic in (Topics.ROBOT_POSE, Topics.MEASURED_JOINT_STATES):
        stamps = [t for t, _, _ in topics[topic]]
        assert 4 <= len(stamps) <= 10, (topic, len(stamps), log)
        assert min(np.diff(stamps)) >= 19 * ms
    assert len(topics[IMAGE_TOPIC]) == 2, log
    assert deserialize_message(topics[IMAGE_TOPIC][0][1], Image).data.tobytes() == image(0).data.tobytes()
    # rosbags decodes our types from the definition stored in the bag
    with AnyReader([bag]) as reader:
        connection = next(c for c in reader.connections if c.topic == Topics.TRANSITIONS)
        first = reader.deserialize(topics[Topics.TRANSITIONS][0][1], connection.msgtype)
    assert first.step == 0 and np.allclose(first.obs, sent[0].obs)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap"
    custom = info["custom_data"]
    assert custom["sgft.end"] == "FINISHED" and custom["sgft.episode_id"] == "7" and custom["sgft.steps"] == "5"
    assert int(custom["sgft.skipped_malformed"]) >= 3, log  # the garbage, the NaN transition, the image (+ joints)
    (second,) = out_dir.glob("episode_8_*")
    assert len(read_bag(second)[Topics.TRANSITIONS]) == 1


def test_killed_recorder_bag_is_salvaged(tmp_path: Path) -> None:
    """What SIGKILL leaves (chunks flushed, no summary, no metadata.yaml) is rewritten into a complete bag holding
    every message up to the last flush."""
    store = sgft_typestore()
    path = tmp_path / "episode_3_20250101T000000"
    bag = EpisodeBag(path, store, 3, flush_period_s=3600.0)
    transitions = Stream(Topics.TRANSITIONS, Transition, lambda m: "", "transition")
    poses = Stream(Topics.ROBOT_POSE, PoseStamped, lambda m: "", "state")
    rng = np.random.default_rng(0)
    sent = [transition(3, i, 10**9 * (i + 1), rng) for i in range(6)]
    for msg in sent[:4]:
        bag.write(transitions, 10**9 * (msg.step + 1), serialize_message(msg))
        bag.write(poses, 10**9 * (msg.step + 1), serialize_message(pose(10**9 * (msg.step + 1), 0.4)))
    bag.flush()
    for msg in sent[4:]:  # after the last flush: lost with the process
        bag.write(transitions, 10**9 * (msg.step + 1), serialize_message(msg))
    bag.writer.storage.bio.flush()  # whatever the OS had of the file when the process died; still no footer
    assert not (path / "metadata.yaml").exists()
    with pytest.raises(Exception):  # noqa: B017 - rosbags cannot open it as it is
        read_bag(path)
    assert unfinished_bags(tmp_path) == [path]

    assert salvage(path, store) == 8
    topics = read_bag(path)
    assert [deserialize_message(raw, Transition) for _, raw, _ in topics[Topics.TRANSITIONS]] == sent[:4]
    assert len(topics[Topics.ROBOT_POSE]) == 4
    assert unfinished_bags(tmp_path) == []
    bag.writer.storage.bio.close()


def test_bag_validation_rejects_malformed_in_process() -> None:
    from sgft_bringup.recorder import cdr_stamp_ns, image_problem, joint_state_problem, recorded_transition_problem

    rng = np.random.default_rng(1)
    good = transition(1, 0, 5 * 10**9 + 7, rng)
    assert cdr_stamp_ns(serialize_message(good)) == 5 * 10**9 + 7
    assert cdr_stamp_ns(b"\x00\x01") is None
    assert recorded_transition_problem(good) == ""
    good.task = "juggle"
    assert "unknown task" in recorded_transition_problem(good)
    assert image_problem(image(1)) == "" and image_problem(image(1, data=b"xx"))
    assert joint_state_problem(JointState(name=["a"], position=[1.0, 2.0]))
