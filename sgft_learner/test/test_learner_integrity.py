"""The learner's integrity in-process: the rollback after a non-finite batch, and a LearnerNode called directly (no
peer process) for the duplicate rule across a restart and the store's replay skipping what the checks reject."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sgft_testing import isolate_domain

isolate_domain()

import rclpy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402

from sgft_core.checkpoint import save_checkpoint  # noqa: E402
from sgft_core.finetune import FinetuneLearner, make_config  # noqa: E402
from sgft_core.networks import NetworkConfig, build_networks  # noqa: E402
from sgft_core.tasks import get_task  # noqa: E402
from sgft_learner.rollback import LastGood, finite  # noqa: E402
from sgft_learner.transition_store import TransitionStore, labelled, read_labels  # noqa: E402
from sgft_msgs.msg import Transition  # noqa: E402
from sgft_msgs.srv import LabelEpisode  # noqa: E402

SPEC = get_task("push")
CONFIG = NetworkConfig(hidden_dim=32, num_layers=2)
SMALL = {"prefill_episodes": 1, "batch_size": 16, "critic_warmup_updates": 0, "imagined_branches": 2}


def transition(episode: int, step: int, rng: np.random.Generator, **fields) -> Transition:
    obs = rng.uniform([0.3, -0.2, 0.35, -0.2], [0.5, 0.2, 0.5, 0.2]).astype(np.float32)
    next_obs = obs + rng.normal(0, 0.01, 4).astype(np.float32)
    msg = Transition(task="push", episode_id=episode, step=step, obs=obs.tolist(),
                     action=rng.uniform(-1, 1, 2).astype(np.float32).tolist(),
                     reward=float(SPEC.reward(next_obs)), next_obs=next_obs.tolist(),
                     truncated=step == SPEC.episode_length - 1)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


def feed(learner: FinetuneLearner, msg: Transition) -> None:
    learner.add_transition(np.array(msg.obs), np.array(msg.action), msg.reward, np.array(msg.next_obs),
                           msg.terminal, msg.truncated)


def actor_weights(learner: FinetuneLearner) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in learner.actor.state_dict().items()}


def test_a_non_finite_batch_rolls_back_to_the_last_good_networks_and_optimizers():
    rng = np.random.default_rng(0)
    learner = FinetuneLearner(SPEC, build_networks(4, 2, CONFIG), make_config("sgft", **SMALL), network_config=CONFIG)
    for s in range(SPEC.episode_length):
        feed(learner, transition(1, s, rng))
    assert finite(learner.update(4))
    good = LastGood(learner)
    weights = actor_weights(learner)
    # what a 1e30 transition did before the checks: straight into the replay buffer
    learner.real.add(np.full(4, 1e30, np.float32), np.zeros(2, np.float32), 0.0, np.full(4, 1e30, np.float32), False)
    losses = learner.update(4)
    assert not finite(losses)
    assert not all(torch.isfinite(v).all() for v in learner.actor.state_dict().values())
    assert good.restore() == 4
    for name, value in learner.actor.state_dict().items():
        assert torch.equal(value, weights[name]), name
    # with the bad row gone, training goes on from the restored state (Adam's moments were restored too)
    learner.real.obs[len(learner.real) - 1] = learner.real.obs[0]
    learner.real.next_obs[len(learner.real) - 1] = learner.real.next_obs[0]
    assert finite(learner.update(8))


@pytest.fixture()
def run(tmp_path):
    checkpoint = tmp_path / "push.safetensors"
    save_checkpoint(checkpoint, build_networks(SPEC.obs_dim, SPEC.action_dim, CONFIG), "push", CONFIG, seed=0)
    nodes = []

    def start(**finetune):
        from sgft_learner.learner_node import LearnerNode

        args = ["--ros-args", "-p", "task:=push", "-p", f"checkpoint:={checkpoint}", "-p", f"run_dir:={tmp_path}",
                "-p", "torch_threads:=1", "-p", "heatmap_period_s:=0.0", "-p", "publish_every_updates:=4"]
        for key, value in (SMALL | finetune).items():
            args += ["-p", f"finetune.{key}:={value}"]
        rclpy.init(args=args)
        node = LearnerNode()
        nodes.append(node)
        return node

    def stop(node):
        nodes.remove(node)
        node.destroy_node()
        rclpy.shutdown()

    yield start, stop, tmp_path
    for node in list(nodes):
        stop(node)


def test_duplicates_are_not_stored_even_across_a_restart(run):
    start, stop, run_dir = run
    rng = np.random.default_rng(1)
    node = start()
    first = [transition(7, s, rng) for s in range(5)]
    for msg in first:
        node._on_transition(msg)
    node._on_transition(transition(7, 4, rng))  # the same (episode, step), another stamp: a peer's copy
    node._on_transition(transition(7, 2, rng))  # out of order
    node._on_transition(transition(7, 5, rng, obs=[1e30, 0.0, 0.45, 0.0]))  # rejected: does not move the last step
    assert node.store.records == 5
    assert node.rejections["duplicate"] == 2 and node.rejections["obs_bounds"] == 1
    assert node.stats["rejected"] == 1
    stop(node)

    node = start()
    for msg in first:  # the policy node's transient-local replay after our restart
        node._on_transition(msg)
    node._on_transition(transition(7, 3, rng))  # a new stamp does not make an old step new
    assert node.store.records == 5 and node.rejections["duplicate"] == 6
    node._on_transition(transition(7, 5, rng))
    assert node.store.records == 6
    stop(node)


def test_stored_records_the_checks_reject_are_not_fed_on_resume(run):
    start, stop, run_dir = run
    rng = np.random.default_rng(2)
    store = TransitionStore(run_dir / "transitions.log")  # as an older learner left it: it stored anything finite
    records = [transition(1, 0, rng), transition(1, 1, rng, obs=[1e30, 0.0, 0.45, 0.0]), transition(1, 1, rng),
               transition(1, 1, rng), transition(1, 2, rng, reward=1e30)]
    for msg in records:
        store.append(serialize_message(msg))
    store.close()
    node = start()
    assert node.learner.transitions == 2 and node.skipped_on_resume == 3
    assert node.steps.last == {1: 1}
    stop(node)


def test_the_node_rolls_back_a_nan_batch_and_stops_when_the_data_is_to_blame(run):
    start, stop, run_dir = run
    rng = np.random.default_rng(3)
    node = start()
    for s in range(SPEC.episode_length):
        node._on_transition(transition(1, s, rng))
    for s in range(10):
        node._on_transition(transition(2, s, rng))
    deadline = time.monotonic() + 30
    while node.learner.updates_due() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.learner.updates_done > 0 and not node.fault
    node.learner.real.add(np.full(4, 1e30, np.float32), np.zeros(2, np.float32), 0.0, np.full(4, 1e30, np.float32),
                          False)  # past the checks, as the old code let it in
    for s in range(10, 15):
        node._on_transition(transition(2, s, rng))  # owes updates: the next batch samples the bad row sometime
    while not node.fault and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "rolled back" in node.fault and "training stopped: 1 of" in node.fault, node.fault
    assert "training resumes" not in node.fault
    for name, value in node.learner.actor.state_dict().items():
        assert torch.isfinite(value).all(), name
    assert all(np.isfinite(v) for v in node.losses.values())
    # the store has no 1e30 row: it came in around the checks
    assert all(np.abs(np.array(m.obs)).max() < 10 for m in map(_load, TransitionStore(run_dir / "transitions.log")))
    stop(node)


def _load(payload: bytes) -> Transition:
    from rclpy.serialization import deserialize_message

    return deserialize_message(payload, Transition)


def _label(node, episode_id: int, success: bool) -> LabelEpisode.Response:
    return node._on_label(LabelEpisode.Request(episode_id=episode_id, success=success), LabelEpisode.Response())


def test_labels_reach_the_learner_and_hold_after_a_restart(run):
    start, stop, run_dir = run
    rng = np.random.default_rng(4)
    finished = [transition(1, s, rng, intervention=s < 10) for s in range(SPEC.episode_length)]
    running = [transition(2, s, rng) for s in range(5)]
    node = start(label_reward=2.0, demo_fraction=0.25)
    for msg in finished + running:
        node._on_transition(msg)
    assert len(node.learner.demo) == 10  # the operator's steps, kept as demonstrations too
    last = len(finished) - 1
    raw = float(node.learner.real.reward[last])
    response = _label(node, 1, True)  # perceived as failed (no success flag), the operator saw a success
    assert response.accepted and "labelled success (perceived: failure)" in response.message
    assert node.learner.real.reward[last] == pytest.approx(raw + 2.0)
    for episode_id, why in ((9, "episode 9 is not in the store"), (2, "episode 2 is still running")):
        response = _label(node, episode_id, True)
        assert not response.accepted and why in response.message, response.message
    stop(node)

    node = start(label_reward=2.0, demo_fraction=0.25)  # replays the store, then the labels
    assert node.labels == {1: True} and len(node.learner.demo) == 10
    assert node.learner.real.reward[last] == pytest.approx(raw + 2.0)
    assert not _label(node, 2, False).accepted
    assert _label(node, 1, False).accepted  # a later label replaces the earlier one
    assert node.learner.real.reward[last] == pytest.approx(raw)
    stop(node)

    assert read_labels(TransitionStore(run_dir / "labels.log")) == {1: False}
    stored = [_load(p) for p in TransitionStore(run_dir / "transitions.log")]
    assert [m.success for m in labelled(stored, {1: True}) if m.episode_id == 1][-1]
    assert not any(m.success for m in labelled(stored, {1: False}))
    assert sum(m.intervention for m in stored) == 10
