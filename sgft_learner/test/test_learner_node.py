"""The learner node as a separate process over DDS: durable store, rejections, weights out, SIGKILL and resume,
and a full disk (a real 64 KiB tmpfs when this machine lets us mount one)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from sgft_testing import (
    RERUN_MULTIPROCESS,
    call,
    isolate_domain,
    node_log,
    shared_node_fixtures,
    spin_until,
    start_node,
    stop_node,
)

pytestmark = [RERUN_MULTIPROCESS, pytest.mark.faults]  # (why reruns: sgft_testing)

isolate_domain()

import rclpy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from sgft_core.checkpoint import save_checkpoint  # noqa: E402
from sgft_core.networks import NetworkConfig, build_networks  # noqa: E402
from sgft_core.tasks import get_task  # noqa: E402
from sgft_interfaces import POLICY_UPDATE_QOS, SERVICE_QOS, STATUS_QOS, TRANSITION_QOS, Services, Topics  # noqa: E402
from sgft_learner.transition_store import TransitionStore, labelled, read_labels  # noqa: E402
from sgft_msgs.msg import LearnerStatus, PolicyUpdate, Transition  # noqa: E402
from sgft_msgs.srv import LabelEpisode  # noqa: E402

SPEC = get_task("push")
CONFIG = NetworkConfig(hidden_dim=32, num_layers=2)
# Small and quick: train after one episode, tiny batches; the algorithm itself is tested in sgft_core.
FINETUNE = {"finetune.prefill_episodes": 1, "finetune.batch_size": 16, "finetune.critic_warmup_updates": 0,
            "finetune.imagined_branches": 2}


def transition(episode: int, step: int, rng: np.random.Generator, **fields) -> Transition:
    obs = rng.uniform([0.3, -0.2, 0.35, -0.2], [0.5, 0.2, 0.5, 0.2]).astype(np.float32)
    next_obs = obs + rng.normal(0, 0.01, 4).astype(np.float32)
    msg = Transition(task="push", episode_id=episode, step=step, obs=obs.tolist(),
                     action=rng.uniform(-1, 1, 2).astype(np.float32).tolist(),
                     reward=float(SPEC.reward(next_obs)), next_obs=next_obs.tolist(),
                     truncated=step == SPEC.episode_length - 1)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)  # a zero stamp is rejected
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


class Peer:
    def __init__(self, node) -> None:
        self.node = node
        self.status: list[LearnerStatus] = []
        self.updates: list[PolicyUpdate] = []
        self.heatmaps: list[MarkerArray] = []
        self.pub = node.create_publisher(Transition, Topics.TRANSITIONS, TRANSITION_QOS)
        node.create_subscription(LearnerStatus, Topics.LEARNER_STATUS, self.status.append, STATUS_QOS)
        node.create_subscription(PolicyUpdate, Topics.POLICY_UPDATE, self.updates.append, POLICY_UPDATE_QOS)
        node.create_subscription(MarkerArray, Topics.VALUE_HEATMAP, self.heatmaps.append, STATUS_QOS)

    def wait_for_learner(self) -> None:
        assert spin_until(self.node, lambda: self.pub.get_subscription_count() > 0 and self.status, 30)

    def latest(self) -> LearnerStatus:
        return self.status[-1]

    def send(self, messages: list[Transition], period: float = 0.005) -> None:
        for msg in messages:
            self.pub.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=period)


ros_node, ros = shared_node_fixtures("learner_node_test")  # each test (or rerun) gets the module's node, left clean


@pytest.fixture()
def workdir():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        save_checkpoint(path / "push.safetensors", build_networks(SPEC.obs_dim, SPEC.action_dim, CONFIG), "push",
                        CONFIG, seed=0)
        yield path


def _learner(workdir: Path, run_dir: Path, name: str, **params):
    return start_node("sgft_learner.learner_node", {
        "task": "push", "checkpoint": str(workdir / "push.safetensors"), "run_dir": str(run_dir),
        **FINETUNE, "status_period_s": 0.2, "publish_every_updates": 5,
        "checkpoint_every_updates": 20, "torch_threads": 1, "heatmap_period_s": 0.5, "heatmap_cells": 8, **params,
    }, str(workdir / f"{name}.log"))


def check_heatmap(heatmap: MarkerArray, cells: int, last_obs: list[float]) -> None:
    """V_sim and Q as CUBE_LISTs in the base frame whose cells tile the workspace's xy rectangle, colors in range,
    and the puck they are drawn for where the latest transition left it."""
    assert [m.ns for m in heatmap.markers] == ["value_sim", "q_current", "object"]
    low, high = SPEC.workspace_low, SPEC.workspace_high
    puck = heatmap.markers[2]
    assert puck.type == Marker.SPHERE and puck.header.frame_id == "fr3_link0"
    np.testing.assert_allclose([puck.pose.position.x, puck.pose.position.y], last_obs[2:4], atol=1e-6)
    for marker in heatmap.markers[:2]:
        assert marker.type == Marker.CUBE_LIST and marker.header.frame_id == "fr3_link0"
        xy = np.array([[p.x, p.y] for p in marker.points])
        assert xy.shape == (cells * cells, 2) and len(marker.colors) == cells * cells
        np.testing.assert_allclose([xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max()],
                                   [low[0], high[0], low[1], high[1]], atol=1e-6)
        # neighbouring cells touch in both directions (the y range is wider than the x range)
        np.testing.assert_allclose([marker.scale.x, marker.scale.y],
                                   (high[:2] - low[:2]) / (cells - 1), rtol=1e-6)
        rgb = np.array([[c.r, c.g, c.b] for c in marker.colors])
        assert np.all((rgb >= 0) & (rgb <= 1)) and np.ptp(rgb) > 0, "one color for all cells: no value shown"


def test_status_comes_on_sim_time_without_a_clock(workdir, ros):
    """Under use_sim_time with no /clock (a simulator not up yet, or stalled) the learner still reports."""
    proc = _learner(workdir, workdir / "run_no_clock", "learner_no_clock", use_sim_time=True)
    peer = Peer(ros)
    try:
        assert spin_until(ros, lambda: len(peer.status) >= 3, 60), node_log(proc)
    finally:
        stop_node(proc)


def test_status_says_caught_up_as_soon_as_the_owed_updates_are_done(workdir, ros):
    """A session waits for "not training" between episodes: that status comes when the last owed update is done, not
    at the next status period (a minute here, so any status within it is one the trainer asked for)."""
    rng = np.random.default_rng(1)
    prefill = [transition(1, s, rng) for s in range(SPEC.episode_length)]  # prefill_episodes 1: owes no updates
    episode = [transition(2, s, rng) for s in range(SPEC.episode_length)]  # owes 2 each (UTD 2)
    proc = _learner(workdir, workdir / "run_caught_up", "learner_caught_up", status_period_s=60.0,
                    heatmap_period_s=0.0)
    peer = Peer(ros)
    try:
        assert spin_until(ros, lambda: peer.pub.get_subscription_count() > 0, 30), node_log(proc)
        peer.send(prefill + episode)
        assert spin_until(ros, lambda: any(s.gradient_updates == 2 * len(episode) for s in peer.status), 30), \
            f"no caught-up status within 30 s: {[s.gradient_updates for s in peer.status]}\n{node_log(proc)}"
        status = next(s for s in peer.status if s.gradient_updates == 2 * len(episode))
        assert not status.training and not status.fault
        assert status.transitions_received == len(prefill) + len(episode)
    finally:
        stop_node(proc)


def test_store_rejections_weights_and_resume_after_sigkill(workdir, ros):
    rng = np.random.default_rng(0)
    run_dir = workdir / "run"
    good = [transition(1, s, rng) for s in range(SPEC.episode_length)]
    good += [transition(2, s, rng) for s in range(20)]
    bad = [transition(3, 0, rng, task="hammer"), transition(3, 1, rng, obs=[0.1, 0.2]),
           transition(3, 2, rng, reward=float("nan")), transition(3, 3, rng, action=[3.0, 0.0])]
    proc = _learner(workdir, run_dir, "learner1")
    peer = Peer(ros)
    try:
        peer.wait_for_learner()
        peer.send(good[:30] + bad + good[30:])
        # the weights too: their subscription matches apart from the status's, so a status can say version > 0
        # before any PolicyUpdate has reached this peer, or only the latched version 0 (π_sim) has
        assert spin_until(ros, lambda: peer.latest().transitions_stored >= len(good)
                          and peer.latest().policy_version > 0
                          and any(u.version > 0 for u in peer.updates), 60), node_log(proc)
        status = peer.latest()
        assert status.transitions_received == len(good) + len(bad)
        assert status.transitions_rejected == len(bad)
        assert status.gradient_updates > 0 and not status.fault
        version_before = max(u.version for u in peer.updates)
        assert version_before > 0
        peer.heatmaps.clear()  # one drawn after the last transition arrived
        assert spin_until(ros, lambda: peer.heatmaps, 10), "no value heatmap after the first transitions"
        check_heatmap(peer.heatmaps[-1], cells=8, last_obs=good[-1].next_obs)
    finally:
        stop_node(proc, sig="kill")  # SIGKILL mid-training
    stored = list(TransitionStore(run_dir / "transitions.log"))
    assert len(stored) == len(good), "the store lost or gained transitions"
    assert node_log(proc).count("rejected transition") == len(bad), "rejections must be logged once per kind"

    peer.status.clear()
    proc = _learner(workdir, run_dir, "learner2")
    try:
        peer.wait_for_learner()
        more = [transition(4, s, rng) for s in range(10)]
        peer.send(more)
        assert spin_until(ros, lambda: peer.latest().transitions_stored == len(good) + len(more), 30), node_log(proc)
        assert spin_until(ros, lambda: peer.latest().policy_version >= version_before, 30)
        assert "stored transitions" in node_log(proc)
    finally:
        stop_node(proc)


def test_a_huge_transition_is_rejected_and_training_goes_on(workdir, ros):
    """Finite but absurd values (1e30) passed the old checks, turned the losses NaN and stayed in the store: now it
    is rejected and counted, never stored, and training goes on with genuine transitions."""
    rng = np.random.default_rng(5)
    run_dir = workdir / "run_huge"
    first = [transition(1, s, rng) for s in range(SPEC.episode_length)] + [transition(2, s, rng) for s in range(10)]
    huge = [transition(2, 10, rng, obs=[1e30, 1e30, 1e30, 1e30], next_obs=[1e30, 1e30, 1e30, 1e30]),
            transition(2, 10, rng, reward=1e30)]
    later = [transition(2, s, rng) for s in range(10, SPEC.episode_length)]  # the rest of the episode
    proc = _learner(workdir, run_dir, "learner_huge")
    peer = Peer(ros)
    try:
        peer.wait_for_learner()
        peer.send(first + huge)
        assert spin_until(ros, lambda: peer.latest().transitions_rejected == len(huge)
                          and peer.latest().transitions_stored == len(first), 30), node_log(proc)
        updates = peer.latest().gradient_updates
        peer.send(later)
        assert spin_until(ros, lambda: peer.latest().transitions_stored == len(first) + len(later)
                          and peer.latest().gradient_updates > updates and not peer.latest().training, 60), \
            node_log(proc)
        status = peer.latest()
        assert not status.fault and np.isfinite([status.critic_loss, status.actor_loss]).all()
    finally:
        stop_node(proc)
    stored = [deserialize_message(p, Transition) for p in TransitionStore(run_dir / "transitions.log")]
    assert len(stored) == len(first) + len(later)
    assert max(np.abs(m.obs).max() for m in stored) < 2 and max(abs(m.reward) for m in stored) < 10
    log = node_log(proc)
    assert "rejected transition (obs_bounds" in log and "rejected transition (reward_bounds" in log


def test_label_service_refuses_unknown_and_running_episodes_and_its_label_survives_sigkill(workdir, ros):
    rng = np.random.default_rng(6)
    run_dir = workdir / "run_labels"
    finished = [transition(1, s, rng, intervention=s < 10) for s in range(SPEC.episode_length)]
    running = [transition(2, s, rng) for s in range(5)]
    proc = _learner(workdir, run_dir, "learner_labels", **{"finetune.demo_fraction": 0.25})
    peer = Peer(ros)
    client = ros.create_client(LabelEpisode, Services.LABEL_EPISODE, qos_profile=SERVICE_QOS)

    def label(episode_id: int, success: bool) -> LabelEpisode.Response:
        return call(ros, client, LabelEpisode.Request(episode_id=episode_id, success=success), timeout_s=20)

    try:
        peer.wait_for_learner()
        peer.send(finished + running)
        assert spin_until(ros, lambda: peer.latest().transitions_stored == len(finished) + len(running), 30), \
            node_log(proc)
        for episode_id, why in ((9, "episode 9 is not in the store"), (2, "episode 2 is still running")):
            response = label(episode_id, True)
            assert not response.accepted and why in response.message, response.message
        response = label(1, True)
        assert response.accepted and "labelled success (perceived: failure)" in response.message, response.message
    finally:
        stop_node(proc, sig="kill")  # acknowledged means durable
    assert read_labels(TransitionStore(run_dir / "labels.log")) == {1: True}

    proc = _learner(workdir, run_dir, "learner_labels2", **{"finetune.demo_fraction": 0.25})
    try:
        peer.status.clear()
        peer.wait_for_learner()
        assert spin_until_log(proc, "1 labelled episodes", 30), node_log(proc)
        assert "(10 demonstrations)" in node_log(proc)
        assert not label(2, True).accepted  # still running after the restart
    finally:
        stop_node(proc)
    stored = [deserialize_message(p, Transition) for p in TransitionStore(run_dir / "transitions.log")]
    ends = [m for m in labelled(stored, read_labels(TransitionStore(run_dir / "labels.log"))) if m.truncated]
    assert [(m.episode_id, m.success) for m in ends] == [(1, True)]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_stops_training_and_loses_nothing(workdir, ros):
    run_dir = workdir / "small_disk"
    if not _mount_tmpfs(run_dir, "96k"):
        pytest.skip("cannot mount a tmpfs here (needs root): the full-disk fault is not provoked")
    rng = np.random.default_rng(1)
    proc = _learner(workdir, run_dir, "learner_full")
    peer = Peer(ros)
    try:
        peer.wait_for_learner()
        messages = [transition(1 + i // SPEC.episode_length, i % SPEC.episode_length, rng) for i in range(600)]
        peer.send(messages)
        assert spin_until(ros, lambda: bool(peer.latest().fault), 30), node_log(proc)
        status = peer.latest()
        assert "No space left" in status.fault and not status.training
        stored_at_fault = status.transitions_stored
        assert 0 < stored_at_fault < len(messages)
        # free space: the held transitions are written in order and training resumes
        (run_dir / "learner.safetensors").unlink(missing_ok=True)
        subprocess.run(["mount", "-o", "remount,size=4m", str(run_dir)], check=True)
        assert spin_until(ros, lambda: peer.latest().transitions_stored == len(messages) and not peer.latest().fault,
                          30), node_log(proc)
    finally:
        stop_node(proc)
        subprocess.run(["umount", "-l", str(run_dir)], capture_output=True)
    log = node_log(proc)
    assert log.count("training stopped") == 1 and "training resumes" in log


def test_finetune_parameters_are_typed_and_validated(workdir):
    """FinetuneConfig fields are `finetune.<field>` parameters: "none" sets an optional field to None, and an unknown
    field or a wrong type refuses the start (exit code 2) with the parameter's name."""
    proc = _learner(workdir, workdir / "run_params", "learner_params", **{"finetune.horizon": "none",
                                                                         "finetune.actor_lr": 1e-4})
    try:
        assert spin_until_log(proc, "for push:", 60), node_log(proc)
        assert "'horizon': None" in node_log(proc) and "'actor_lr': 0.0001" in node_log(proc)
    finally:
        stop_node(proc)
    for name, params, message in (
            ("unknown", {"finetune.horizn": 1}, "unknown parameter(s) finetune.horizn"),
            ("type", {"finetune.utd": 2.5}, "finetune.utd must be of type int"),
            ("optional", {"finetune.horizon": "short"}, "finetune.horizon: expected int or 'none'"),
            ("json", {"config_overrides": "{}"}, "config_overrides")):
        proc = _learner(workdir, workdir / f"run_{name}", f"learner_{name}", **params)
        try:
            assert proc.wait(timeout=60) == 2, node_log(proc)
            assert message in node_log(proc), node_log(proc)
        finally:
            stop_node(proc)


def spin_until_log(proc, text: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if text in node_log(proc):
            return True
        time.sleep(0.2)
    return text in node_log(proc)
