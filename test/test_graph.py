"""The whole graph, started by run_graph as separate processes over DDS, against the simulated "real" push robot.

Checks what only the assembled graph can show: perception's detections match the simulator's ground truth within
1 cm, the commands that reach the robot stay inside the task's box, the policy keeps controlling when the learner is
SIGKILLed, and every transition the policy published before that is in the learner's durable store.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sgft_testing import (
    RERUN_MULTIPROCESS,
    isolate_domain,
    spin_until,
    start_episode,
    start_graph,
    stop_graph,
)

pytestmark = RERUN_MULTIPROCESS  # (why: sgft_testing)

isolate_domain()

import rclpy  # noqa: E402
from geometry_msgs.msg import PointStamped, PoseStamped  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402

from sgft_core.checkpoint import save_checkpoint  # noqa: E402
from sgft_core.networks import NetworkConfig, build_networks  # noqa: E402
from sgft_core.tasks import get_task  # noqa: E402
from sgft_interfaces import COMMAND_QOS, ROBOT_STATE_QOS, SENSOR_QOS, TRANSITION_QOS, Services, Topics  # noqa: E402
from sgft_learner.transition_store import TransitionStore  # noqa: E402
from sgft_msgs.msg import ObjectDetection, Transition  # noqa: E402
from sgft_msgs.srv import ResetEpisode, StartEpisode  # noqa: E402

SPEC = get_task("push")


def _stamp(msg) -> float:
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


@pytest.fixture()  # per test: a rerun must start fresh processes
def graph():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = NetworkConfig(hidden_dim=64, num_layers=2)
        save_checkpoint(tmp / "push.safetensors", build_networks(SPEC.obs_dim, SPEC.action_dim, config), "push",
                        config, seed=0)
        sets = [f"sgft_policy.checkpoint={tmp / 'push.safetensors'}",
                f"sgft_learner.checkpoint={tmp / 'push.safetensors'}", f"sgft_learner.run_dir={tmp / 'run'}",
                "sgft_sim_robot.time_scale=1.0", "sgft_learner.torch_threads=1"]
        proc = start_graph("push", tmp / "logs", sets)
        yield proc, tmp
        if proc.poll() is None:
            stop_graph(proc, tmp / "logs")


def test_detections_commands_and_stored_transitions(graph):
    proc, tmp = graph
    n_checked = 0
    rclpy.init()
    node = rclpy.create_node("graph_test")
    detections: list[ObjectDetection] = []
    truth: list[PointStamped] = []
    commands: list[PoseStamped] = []
    transitions: list[Transition] = []
    node.create_subscription(ObjectDetection, Topics.OBJECT_DETECTION, detections.append, SENSOR_QOS)
    node.create_subscription(PointStamped, Topics.SIM_OBJECT_TRUTH, truth.append, ROBOT_STATE_QOS)
    node.create_subscription(PoseStamped, Topics.CARTESIAN_TARGET, commands.append, COMMAND_QOS)
    node.create_subscription(Transition, Topics.TRANSITIONS, transitions.append, TRANSITION_QOS)
    reset = node.create_client(ResetEpisode, Services.RESET_EPISODE)
    start = node.create_client(StartEpisode, Services.START_EPISODE)
    try:
        assert reset.wait_for_service(timeout_sec=90), "the simulated robot did not come up"
        assert start.wait_for_service(timeout_sec=60), "the policy node did not come up"
        future = reset.call_async(ResetEpisode.Request(seed=3))
        assert spin_until(node, future.done, 30) and future.result().success
        assert spin_until(node, lambda: len(detections) >= 3, 60), "no detections"
        started = start_episode(node, start)  # the policy refuses until its own inputs are fresh
        assert started.accepted, started.message
        assert spin_until(node, lambda: len(transitions) >= 15, 120), f"only {len(transitions)} transitions"
        # the learner dies (SIGKILL) mid-training: the policy keeps controlling, nothing hangs
        n_checked = len(transitions)  # these have a second to reach the store before the kill
        spin_until(node, lambda: False, 1.0)
        learner = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "sgft_learner.learner_node"],
                                 capture_output=True, text=True).stdout.split()
        assert len(learner) == 1, learner
        subprocess.run(["kill", "-KILL", learner[0]], check=True)
        n_commands = len(commands)
        assert spin_until(node, lambda: len(commands) >= n_commands + 5, 30), "commands stopped with the learner"
    finally:
        node.destroy_node()
        rclpy.shutdown()
        context = stop_graph(proc, tmp / "logs")

    # perception vs ground truth, matched by sim time
    truth_t = np.array([_stamp(t) for t in truth])
    truth_p = np.array([[t.point.x, t.point.y, t.point.z] for t in truth])
    errors = []
    for det in detections:
        if not det.valid:
            continue
        i = int(np.argmin(np.abs(truth_t - _stamp(det))))
        if abs(truth_t[i] - _stamp(det)) < 0.05:
            errors.append((np.linalg.norm([det.position.x, det.position.y, det.position.z] - truth_p[i]),
                           det.num_points, det.position.x, det.position.y, truth_p[i][0], truth_p[i][1]))
    assert len(errors) >= 3, context
    assert max(e[0] for e in errors) < 0.01, f"detection errors (error, points, det xy, truth xy) {np.round(errors, 3)}"

    # commands inside the box, at the task's height
    for cmd in commands:
        p = np.array([cmd.pose.position.x, cmd.pose.position.y])
        assert np.all(p >= SPEC.workspace_low[:2] - 1e-6) and np.all(p <= SPEC.workspace_high[:2] + 1e-6), p
        assert cmd.pose.position.z == pytest.approx(SPEC.ee_height)

    # every transition the policy published is in the learner's store, intact
    stored = [deserialize_message(p, Transition) for p in TransitionStore(tmp / "run" / "transitions.log")]
    key = {(t.episode_id, t.step): list(t.obs) + list(t.action) + [t.reward] for t in stored}
    for t in transitions[:n_checked]:
        assert key.get((t.episode_id, t.step)) == list(t.obs) + list(t.action) + [t.reward], (t.episode_id, t.step)
