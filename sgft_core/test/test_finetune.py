"""The fine-tuning learner: relabelling, horizon cut, imagined branches, variant configurations, and a short SGFT run
that recovers a policy broken by a dynamics gap on a point-mass task written here (the MuJoCo envs are too slow for a
unit test)."""

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from sgft_core.finetune import METHODS, FinetuneLearner, make_config
from sgft_core.networks import NetworkConfig, Networks, build_networks
from sgft_core.replay import Batch
from sgft_core.sac import critic_regression_loss
from sgft_core.tasks import TaskSpec, get_task

SMALL = NetworkConfig(hidden_dim=32)
PUSH = get_task("push")


def _push_networks(seed: int = 0) -> Networks:
    torch.manual_seed(seed)
    return build_networks(PUSH.obs_dim, PUSH.action_dim, SMALL)


def _push_batch(n: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    obs = rng.uniform([0.3, -0.2, 0.1, -0.2], [0.6, 0.2, 0.4, 0.2], (n, 4)).astype(np.float32)
    action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    next_obs = (obs + 0.01 * rng.normal(size=obs.shape)).astype(np.float32)
    return Batch(obs, action, PUSH.reward(next_obs).astype(np.float32), next_obs, np.zeros(n, np.float32))


class LinearPotential(nn.Module):
    """V(s) = 2·s₀ + s₂: a potential whose values can be computed by hand."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return 2.0 * obs[..., 0] + obs[..., 2]


def test_relabelling_matches_hand_computed_values():
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("sgft"))
    learner.value = LinearPotential()
    obs = torch.tensor([[0.3, 0.0, 0.2, 0.1], [0.3, 0.0, 0.2, 0.1]])
    next_obs = torch.tensor([[0.32, 0.0, 0.25, 0.1], [0.32, 0.0, 0.25, 0.1]])
    reward = torch.tensor([-0.5, -0.5])
    terminal = torch.tensor([0.0, 1.0])
    relabelled = learner.relabel(obs, reward, next_obs, terminal)
    # V(s) = 0.8, V(s') = 0.89: r̄ = −0.5 + 0.99·0.89 − 0.8 = −0.4189; at a terminal s' its potential counts as 0.
    assert relabelled.tolist() == pytest.approx([-0.4189, -1.3], abs=1e-6)
    raw = FinetuneLearner(PUSH, _push_networks(), make_config("sac_finetune"))
    raw.value = LinearPotential()
    assert raw.relabel(obs, reward, next_obs, terminal).tolist() == [-0.5, -0.5]


def _make_target_critic_huge(learner: FinetuneLearner) -> None:
    with torch.no_grad():
        for module in (learner.critic_target, learner.critic):
            module.net[-1].bias.fill_(1e6)


@pytest.mark.parametrize("branches", [0, 5])
def test_horizon_one_never_bootstraps(branches):
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", imagined_branches=branches))
    batch = _push_batch(64).to_torch()
    torch.manual_seed(1)
    rows, target = learner.critic_targets(batch)
    _make_target_critic_huge(learner)
    torch.manual_seed(1)
    rows_after, target_after = learner.critic_targets(batch)
    assert torch.equal(target, target_after)  # no critic term in the target
    assert torch.equal(target, rows.reward)  # H = 1: the target is exactly r̄
    assert target.abs().max() < 100

    # The same check fails for an infinite horizon, so it does detect bootstrapping.
    infinite = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", horizon=None, imagined_branches=branches))
    _make_target_critic_huge(infinite)
    assert infinite.critic_targets(batch)[1].abs().min() > 1e5


def test_value_sim_in_target_adds_back_the_potential_of_the_start_state():
    config = make_config("sgft", reset_critic=False, value_sim_in_target=True)
    learner = FinetuneLearner(PUSH, _push_networks(), config)
    plain = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", reset_critic=False))
    batch = _push_batch(64).to_torch()
    torch.manual_seed(3)
    rows, target = learner.critic_targets(batch)
    torch.manual_seed(3)
    _, plain_target = plain.critic_targets(batch)
    with torch.no_grad():
        value = learner.value(rows.obs)
        # H = 1: r + γ·V_sim(s') on every row (real and imagined), i.e. r̄ + V_sim(s); still no critic term
        torch.testing.assert_close(target, plain_target + value)
        raw = PUSH.reward(rows.next_obs)
        torch.testing.assert_close(target[:64], raw[:64] + config.gamma * (1 - rows.terminal[:64])
                                   * learner.value(rows.next_obs[:64]), rtol=1e-5, atol=1e-4)
    _make_target_critic_huge(learner)
    torch.manual_seed(3)
    assert torch.equal(learner.critic_targets(batch)[1], target)
    with pytest.raises(ValueError, match="finite horizon"):
        make_config("sac_finetune", value_sim_in_target=True)


def test_longer_horizon_adds_imagined_steps_but_no_critic_term():
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", horizon=3))
    batch = _push_batch(32).to_torch()
    torch.manual_seed(2)
    rows, target = learner.critic_targets(batch)
    _make_target_critic_huge(learner)
    torch.manual_seed(2)
    assert torch.equal(learner.critic_targets(batch)[1], target)
    assert not torch.allclose(target, rows.reward)  # steps 2 and 3 contribute imagined shaped rewards


def test_horizon_target_equals_the_rollout_written_out_step_by_step():
    """The kept-critic preset's H = 3 target (V_sim computed once per state and reused along the rollout) against
    the definition: r̄₀ + Σ_{t=1,2} γ^t·alive_t·(r̄_t − α log π_t) + V_sim(s₀), every V_sim evaluated afresh."""
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("sgft_kept_critic"))
    cfg, batch = learner.config, _push_batch(32).to_torch()
    torch.manual_seed(4)
    rows, target = learner.critic_targets(batch)

    torch.manual_seed(4)  # the same draws in the same order: branch noise, then one actor sample per step
    with torch.no_grad():
        value, k = learner.value, cfg.imagined_branches
        mean, log_std = learner.actor(batch.obs)
        branch_action = torch.tanh(mean + log_std.exp() * torch.randn(k, *mean.shape)).reshape(-1, 2)
        obs = torch.cat([batch.obs, batch.obs.repeat(k, 1)])
        action = torch.cat([batch.action, branch_action])
        next_obs = torch.cat([batch.next_obs, learner.dynamics(batch.obs.repeat(k, 1), branch_action)])
        terminal = torch.cat([batch.terminal, PUSH.terminal(next_obs[32:]).float()])
        reward = torch.cat([batch.reward, PUSH.reward(next_obs[32:])])
        expected = reward + cfg.gamma * (1 - terminal) * value(next_obs) - value(obs)
        torch.testing.assert_close(rows.reward, expected)
        torch.testing.assert_close(rows.action, action)
        state, alive = next_obs, 1 - terminal
        for t in (1, 2):
            step_action, log_prob, _ = learner.actor.sample(state)
            step_next = learner.dynamics(state, step_action)
            step_terminal = PUSH.terminal(step_next).float()
            shaped = PUSH.reward(step_next) + cfg.gamma * (1 - step_terminal) * value(step_next) - value(state)
            expected = expected + alive * cfg.gamma**t * (shaped - cfg.temperature * log_prob)
            state, alive = step_next, alive * (1 - step_terminal)
        expected = expected + value(obs)
    torch.testing.assert_close(target, expected, rtol=1e-5, atol=1e-4)


def test_imagined_branches_come_from_the_dynamics_model():
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("sgft"))
    batch = _push_batch(256).to_torch()
    rows, target = learner.critic_targets(batch)
    assert rows.obs.shape == (1536, 4) and rows.action.shape == (1536, 2) and target.shape == (1536,)
    branches = Batch(*(x[256:] for x in rows))
    assert torch.equal(branches.obs, batch.obs.repeat(5, 1))
    with torch.no_grad():
        assert torch.allclose(branches.next_obs, learner.dynamics(branches.obs, branches.action))
        expected = PUSH.reward(branches.next_obs) + 0.99 * learner.value(branches.next_obs) - learner.value(
            branches.obs)
    assert torch.allclose(branches.reward, expected, atol=1e-5)

    torch.manual_seed(3)
    before = learner.imagine_branches(batch.obs)
    with torch.no_grad():
        learner.dynamics.net[-1].bias.add_(0.5)  # perturb the model
    torch.manual_seed(3)
    after = learner.imagine_branches(batch.obs)
    assert torch.equal(before.action, after.action)
    assert (after.next_obs - before.next_obs).abs().min() > 1e-4


def test_branch_action_noise_spreads_branch_actions_around_the_actor_mean():
    batch = _push_batch(256).to_torch()
    narrow = FinetuneLearner(PUSH, _push_networks(), make_config("sgft"))
    with torch.no_grad():
        narrow.actor.log_std_head.bias.fill_(-10.0)  # a near-deterministic actor, as α = 0.01 leaves it
    wide = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", branch_action_noise=0.3))
    wide.actor.load_state_dict(narrow.actor.state_dict())
    with torch.no_grad():
        mean_action = torch.tanh(narrow.actor(batch.obs)[0]).repeat(5, 1)
    narrow_spread = (narrow.imagine_branches(batch.obs).action - mean_action).std()
    wide_branches = wide.imagine_branches(batch.obs)
    assert narrow_spread < 0.01  # exp(LOG_STD_MIN) = 0.0067
    assert 0.2 < (wide_branches.action - mean_action).std() < 0.35
    assert wide_branches.action.abs().max() <= 1.0
    with torch.no_grad():  # still the dynamics model's predictions of those actions
        assert torch.allclose(wide_branches.next_obs, wide.dynamics(wide_branches.obs, wide_branches.action))
    with pytest.raises(ValueError, match="branch_action_noise"):
        make_config("sgft", branch_action_noise=-0.1)


def test_huber_critic_loss_caps_the_pull_of_an_outlier():
    # One imagined "puck off the table" row: r̄ ≈ −V_sim(s) ≈ −75 among errors of a few tenths.
    target = torch.tensor([0.1, -0.2, 0.3, -75.0])
    qs = torch.zeros(2, 4, requires_grad=True)
    squared = critic_regression_loss(qs, target, None)
    assert squared.item() == pytest.approx(2 * (0.01 + 0.04 + 0.09 + 5625.0) / 4)
    (squared_grad,) = torch.autograd.grad(squared, qs)
    huber = critic_regression_loss(qs, target, 1.0)
    # inside ±δ the same e²; outside 2δ|e| − δ² = 149
    assert huber.item() == pytest.approx(2 * (0.01 + 0.04 + 0.09 + 149.0) / 4)
    (huber_grad,) = torch.autograd.grad(huber, qs)
    assert torch.allclose(huber_grad[:, :3], squared_grad[:, :3])  # small errors pull exactly as before
    assert squared_grad[0, 3].item() == pytest.approx(2 * 75.0 / 4)
    assert huber_grad[0, 3].item() == pytest.approx(2 * 1.0 / 4)  # the outlier's pull is capped at 2δ
    with pytest.raises(ValueError, match="critic_huber_delta"):
        make_config("sgft", critic_huber_delta=0.0)


def test_prior_regularization_holds_the_actor_near_the_starting_policy():
    data = _push_batch(64)
    obs = torch.as_tensor(data.obs)
    start = _push_networks().actor.deterministic(obs)

    def drift(weight: float) -> float:
        config = make_config("sgft", prefill_episodes=0, critic_warmup_updates=0, batch_size=64, lr=1e-2,
                             prior_regularization=weight)
        learner = FinetuneLearner(PUSH, _push_networks(), config, seed=0)
        learner.real.add_batch(*data)
        learner.update(30)
        with torch.no_grad():
            return (learner.actor.deterministic(obs) - start).abs().mean().item()

    free, held = drift(0.0), drift(100.0)
    assert free > 0.05  # the critic's gradient alone moves the actor at this learning rate
    assert held < 0.2 * free
    assert make_config("sgft").prior_regularization == 0.0  # the paper's SGFT has no such pull
    with pytest.raises(ValueError, match="prior_regularization"):
        make_config("sgft", prior_regularization=-1.0)


def test_variant_configurations():
    assert set(METHODS) == {"sgft", "sgft_kept_critic", "sac_finetune", "pbrs_sac", "rlpd", "zero_shot", "mpc_sgft"}
    sgft = make_config("sgft")
    assert (sgft.reward, sgft.horizon, sgft.imagined_branches, sgft.utd, sgft.prefill_episodes) == ("shaped", 1, 5, 2,
                                                                                                     20)
    assert sgft.temperature == 0.01 and not sgft.autotune_temperature and sgft.reset_critic and not sgft.fresh_actor
    kept = make_config("sgft_kept_critic")  # the paper's SGFT but for these fields
    assert kept == dataclasses.replace(sgft, method="sgft_kept_critic", reset_critic=False, value_sim_in_target=True,
                                       horizon=3, critic_huber_delta=1.0, critic_warmup_updates=1000)
    sac = make_config("sac_finetune")
    assert (sac.reward, sac.horizon, sac.imagined_branches, sac.reset_critic) == ("raw", None, 0, False)
    pbrs = make_config("pbrs_sac")
    assert (pbrs.reward, pbrs.horizon, pbrs.imagined_branches) == ("shaped", None, 0)
    rlpd = make_config("rlpd")
    assert rlpd.fresh_actor and rlpd.critic_layer_norm and rlpd.num_q >= 10 and rlpd.sim_data_fraction == 0.5
    assert rlpd.utd > sgft.utd and rlpd.reward == "raw" and rlpd.horizon is None
    assert not make_config("zero_shot").trains
    assert make_config("mpc_sgft").acting == "mppi" and make_config("mpc_sgft").update_between_episodes
    with pytest.raises(ValueError, match="unknown fine-tuning method"):
        make_config("td3")
    assert make_config("sgft", batch_size=64).batch_size == 64
    with pytest.raises(ValueError, match="unknown FinetuneConfig field.* seed, uttd; known: method, gamma"):
        make_config("sgft", uttd=1, seed=0)


def test_variants_start_from_the_right_networks():
    pretrained = _push_networks()
    sgft = FinetuneLearner(PUSH, pretrained, make_config("sgft"))
    keep = FinetuneLearner(PUSH, pretrained, make_config("sac_finetune"))
    rlpd = FinetuneLearner(PUSH, pretrained, make_config("rlpd"))
    weight = pretrained.critic.net[0].weight
    assert not torch.equal(sgft.critic.net[0].weight, weight)  # re-initialized
    assert torch.equal(keep.critic.net[0].weight, weight)  # continued
    assert torch.equal(sgft.actor.mean_head.weight, pretrained.actor.mean_head.weight)  # π_sim
    assert not torch.equal(rlpd.actor.mean_head.weight, pretrained.actor.mean_head.weight)  # fresh policy
    assert rlpd.critic.num_q == 10 and any("LayerNorm" in type(m).__name__ for m in rlpd.critic.modules())
    assert torch.equal(rlpd.critic.obs_norm.mean, pretrained.actor.obs_norm.mean)  # fresh nets keep the statistics
    assert not any(p.requires_grad for p in sgft.value.parameters())  # V_sim is frozen


def _feed_episode(learner: FinetuneLearner, data: Batch, start: int, length: int) -> None:
    for i in range(start, start + length):
        learner.add_transition(data.obs[i], data.action[i], data.reward[i], data.next_obs[i], False,
                               truncated=i == start + length - 1)


def test_incremental_accounting_and_training_only_touches_what_it_should():
    config = make_config("sgft", prefill_episodes=2, critic_warmup_updates=3, batch_size=32)
    pretrained = _push_networks()
    learner = FinetuneLearner(PUSH, pretrained, config)
    data = _push_batch(40)
    _feed_episode(learner, data, 0, 5)
    assert learner.updates_due() == 0 and learner.episodes == 1
    _feed_episode(learner, data, 5, 5)
    assert learner.updates_due() == 3  # training starts after the prefill: critic warm-up
    learner.add_transition(data.obs[10], data.action[10], data.reward[10], data.next_obs[10], False)
    assert learner.updates_due() == 5  # + UTD 2
    actor_before = learner.actor_state()
    value_before = copy.deepcopy(learner.value.state_dict())
    learner.update(3)
    assert learner.updates_due() == 2 and learner.policy_version == 0  # warm-up: the actor waits
    assert all(torch.equal(actor_before[k], v) for k, v in learner.actor_state().items())
    losses = learner.update(2)
    assert learner.policy_version == 2 and {"critic_loss", "actor_loss", "dynamics_loss"} <= set(losses)
    assert not all(torch.equal(actor_before[k], v) for k, v in learner.actor_state().items())
    assert all(torch.equal(value_before[k], v) for k, v in learner.value.state_dict().items())
    assert learner.value_sim(data.obs[:3]).shape == (3,) and learner.q_value(data.obs[:3], data.action[:3]).shape == (
        3,)
    assert learner.value_sim(data.obs[0]).shape == ()

    zero_shot = FinetuneLearner(PUSH, pretrained, make_config("zero_shot"))
    _feed_episode(zero_shot, data, 0, 5)
    assert zero_shot.updates_due() == 0

    mpc = FinetuneLearner(PUSH, pretrained, make_config("mpc_sgft"))
    mpc.add_transition(data.obs[0], data.action[0], data.reward[0], data.next_obs[0], False)
    assert mpc.updates_due() == 0  # the dynamics are fine-tuned between episodes
    _feed_episode(mpc, data, 1, 4)
    assert mpc.updates_due() == 10
    action = mpc.act(data.obs[0])
    assert action.shape == (2,) and mpc.planner._previous is not None  # it acted through MPPI
    assert mpc.planner.dynamics is mpc.dynamics  # and plans with the dynamics it fine-tunes
    mpc.end_episode()
    assert mpc.planner._previous is None
    dynamics_before = copy.deepcopy(mpc.dynamics.state_dict())
    assert "critic_loss" not in mpc.update(2)
    assert not all(torch.equal(dynamics_before[k], v) for k, v in mpc.dynamics.state_dict().items())


def test_rlpd_samples_sim_and_real_symmetrically():
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("rlpd", batch_size=64))
    real, sim = _push_batch(50, seed=1), _push_batch(50, seed=2)
    learner.add_sim_data(sim)
    _feed_episode(learner, real, 0, 50)
    batch, n_real = learner._sample()
    assert n_real == 32 and batch.obs.shape == (64, 4)
    real_rows = {tuple(r) for r in real.obs.tolist()}
    assert all(tuple(r) in real_rows for r in batch.obs[:32].tolist())
    assert not any(tuple(r) in real_rows for r in batch.obs[32:].tolist())
    assert "critic_loss" in learner.update(1)


def test_interventions_are_demonstrations_drawn_at_the_demo_fraction():
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", batch_size=64, demo_fraction=0.25))
    data = _push_batch(50, seed=3)
    for i in range(50):  # the operator acted in the first 10 steps
        row = learner.add_transition(data.obs[i], data.action[i], data.reward[i], data.next_obs[i], False,
                                     truncated=i == 49, intervention=i < 10)
        assert row == i
    assert len(learner.real) == 50 and len(learner.demo) == 10  # stored as usual, and as demonstrations
    np.testing.assert_array_equal(learner.demo.all().obs, data.obs[:10])
    batch, n_real = learner._sample()
    assert n_real == 64 and batch.obs.shape == (64, 4)
    demo_rows = {tuple(r) for r in data.obs[:10].tolist()}
    assert all(tuple(r) in demo_rows for r in batch.obs[48:].tolist())  # the last quarter: demonstrations
    # the first three quarters come from all real data: demonstrations there only at their share of it
    assert sum(tuple(r) in demo_rows for r in batch.obs[:48].tolist()) < 30
    assert "critic_loss" in learner.update(1)

    # Off (the default): the flag is taken and ignored, and batches are drawn as before.
    off = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", batch_size=64))
    for i in range(50):
        off.add_transition(data.obs[i], data.action[i], data.reward[i], data.next_obs[i], False, intervention=True)
    assert len(off.demo) == 0 and off._sample()[1] == 64


def test_demonstrations_next_to_rlpd_sim_data():
    learner = FinetuneLearner(PUSH, _push_networks(), make_config("rlpd", batch_size=64, demo_fraction=0.25))
    real, sim = _push_batch(50, seed=1), _push_batch(50, seed=2)
    learner.add_sim_data(sim)
    for i in range(50):
        learner.add_transition(real.obs[i], real.action[i], real.reward[i], real.next_obs[i], False,
                               intervention=i >= 40)
    batch, n_real = learner._sample()
    assert n_real == 32  # real rows (demonstrations included) first, then the sim half
    demo_rows = {tuple(r) for r in real.obs[40:].tolist()}
    real_rows = {tuple(r) for r in real.obs.tolist()}
    assert all(tuple(r) in demo_rows for r in batch.obs[16:32].tolist())
    assert all(tuple(r) in real_rows for r in batch.obs[:16].tolist())
    assert not any(tuple(r) in real_rows for r in batch.obs[32:].tolist())
    with pytest.raises(ValueError, match="demo_fraction"):
        make_config("rlpd", demo_fraction=0.5)
    with pytest.raises(ValueError, match="demo_fraction"):
        make_config("sgft", demo_fraction=1.0)


def test_a_label_moves_the_reward_of_the_episodes_last_transition():
    data = _push_batch(20, seed=4)

    def episode(config):
        learner = FinetuneLearner(PUSH, _push_networks(), config)
        rows = [learner.add_transition(data.obs[i], data.action[i], data.reward[i], data.next_obs[i], False,
                                       truncated=i == 19, intervention=True) for i in range(20)]
        return learner, rows[-1]

    learner, last = episode(make_config("sgft", label_reward=2.0, demo_fraction=0.25))
    raw = float(data.reward[19])
    assert learner.label_episode(last, success=True, perceived=False)  # the operator saw a success
    assert learner.real.reward[last] == pytest.approx(raw + 2.0)
    assert learner.demo.reward[19] == learner.real.reward[last]
    assert learner.label_episode(last, success=False, perceived=False)  # changed their mind: the perceived outcome
    assert learner.real.reward[last] == pytest.approx(raw) and learner.demo.reward[19] == pytest.approx(raw)
    assert learner.label_episode(last, success=False, perceived=True)
    assert learner.real.reward[last] == pytest.approx(raw - 2.0)
    np.testing.assert_array_equal(learner.real.reward[:19], data.reward[:19])  # the rest of the episode untouched
    assert not learner.label_episode(20, success=True, perceived=False)  # no such row

    recorded, last = episode(make_config("sgft"))  # label_reward 0: recorded, rewards untouched
    assert recorded.label_episode(last, success=True, perceived=False)
    np.testing.assert_array_equal(recorded.real.reward[:20], data.reward)

    small = FinetuneLearner(PUSH, _push_networks(), make_config("sgft", label_reward=1.0, replay_capacity=8))
    for i in range(20):
        small.add_transition(data.obs[i], data.action[i], data.reward[i], data.next_obs[i], False)
    assert not small.label_episode(5, success=True, perceived=False)  # overwritten in the ring buffer
    assert small.label_episode(19, success=True, perceived=False)
    assert small.real.reward[19 % 8] == pytest.approx(float(data.reward[19]) + 1.0)
    with pytest.raises(ValueError, match="label_reward"):
        make_config("sgft", label_reward=-1.0)


# --------------------------------------------------------------------------------- a short fine-tuning run
# Reach task with a point mass, goal at the origin: obs = position, action = step; the episode ends (success) within
# GOAL_RADIUS. The "real" robot's controller turns every commanded step by 100°, so π_sim (head straight for the
# goal) drifts sideways and away, and never arrives.
STEP = 0.15
GOAL_RADIUS = 0.1
GAP_ANGLE = math.radians(100)
HORIZON = 15


def _distance(obs):
    return (obs[..., 0] ** 2 + obs[..., 1] ** 2) ** 0.5


def _reached(obs):
    return _distance(obs) < GOAL_RADIUS


POINT = TaskSpec(
    name="point", obs_names=("x", "y"), action_names=("dx", "dy"), action_kind="cartesian",
    max_delta=np.array([STEP, STEP]), episode_length=HORIZON, workspace_low=np.array([-1.0, -1.0, 0.0]),
    workspace_high=np.array([1.0, 1.0, 0.1]), obs_low=np.array([-1.0, -1.0]), obs_high=np.array([1.0, 1.0]),
    reward_fn=lambda obs: -_distance(obs) + 1.0 * _reached(obs), success_fn=_reached, terminal_fn=_reached,
)


def _point_step(obs: np.ndarray, action: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    turned = np.array([c * action[0] - s * action[1], s * action[0] + c * action[1]])
    return np.clip(obs + STEP * turned, -1.0, 1.0).astype(np.float32)


def _pretrained_point_networks() -> Networks:
    """Stand-in for sim pretraining, by regression: π_sim heads for the goal, V_sim is the sim return of doing so,
    the dynamics model knows the sim (no turn)."""
    torch.manual_seed(0)
    nets = build_networks(2, 2, NetworkConfig(hidden_dim=64))
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.uniform(-1, 1, (4096, 2)), dtype=torch.float32)

    def sim_policy(state: torch.Tensor) -> torch.Tensor:
        distance = _distance(state).clamp_min(1e-6)[:, None]
        return -state / distance * torch.clamp(distance / STEP, max=0.95)

    value, state, alive = torch.zeros(len(obs)), obs.clone(), torch.ones(len(obs))
    for t in range(HORIZON):  # discounted sim return of π_sim, stopping at the goal
        state = state + STEP * sim_policy(state)
        value += alive * 0.99**t * POINT.reward(state)
        alive = alive * ~_reached(state)
    action = torch.as_tensor(rng.uniform(-1, 1, (4096, 2)), dtype=torch.float32)
    next_obs = obs + STEP * action
    for module, loss_fn in (
        (nets.actor, lambda: ((torch.tanh(nets.actor(obs)[0]) - sim_policy(obs)) ** 2).mean()),
        (nets.value, lambda: ((nets.value(obs) - value) ** 2).mean()),
        (nets.dynamics, lambda: nets.dynamics.loss(obs, action, next_obs)),
    ):
        optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
        for _ in range(300):
            optimizer.zero_grad()
            loss_fn().backward()
            optimizer.step()
    with torch.no_grad():  # a fairly confident π_sim
        nets.actor.log_std_head.bias.fill_(-1.5)
        nets.actor.log_std_head.weight.zero_()
    return nets


def _run_episode(learner: FinetuneLearner, obs: np.ndarray, deterministic: bool, learn: bool) -> bool:
    for t in range(HORIZON):
        action = learner.act(obs, deterministic=deterministic)
        next_obs = _point_step(obs, action, GAP_ANGLE)
        terminal = bool(POINT.terminal(next_obs))
        if learn:
            learner.add_transition(obs, action, float(POINT.reward(next_obs)), next_obs, terminal,
                                   truncated=t == HORIZON - 1)
            learner.update(learner.updates_due())
        obs = next_obs
        if terminal:
            break
    return bool(POINT.success(obs))


def _success_rate(learner: FinetuneLearner, episodes: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    starts = rng.uniform(-0.8, 0.8, (episodes, 2)).astype(np.float32)
    return float(np.mean([_run_episode(learner, start, deterministic=True, learn=False) for start in starts]))


def test_sgft_recovers_a_policy_broken_by_a_dynamics_gap():
    torch.set_num_threads(1)
    nets = _pretrained_point_networks()
    config = make_config("sgft", batch_size=64, prefill_episodes=4, critic_warmup_updates=100)
    learner = FinetuneLearner(POINT, nets, config, seed=0)
    zero_shot = _success_rate(learner, 30, seed=100)
    assert zero_shot <= 0.2
    rng = np.random.default_rng(1)
    for _ in range(40):  # ≈ 500 real transitions, ≈ 1000 updates
        _run_episode(learner, rng.uniform(-0.8, 0.8, 2).astype(np.float32), deterministic=False, learn=True)
    assert _success_rate(learner, 30, seed=100) >= zero_shot + 0.4


def test_network_config_describes_the_trained_networks():
    pretrained = build_networks(PUSH.obs_dim, PUSH.action_dim, NetworkConfig(hidden_dim=32, num_layers=3))
    kept = FinetuneLearner(PUSH, pretrained, make_config("sac_finetune"))
    assert kept.network_config == NetworkConfig(hidden_dim=32, num_layers=3)
    rlpd = FinetuneLearner(PUSH, pretrained, make_config("rlpd"))
    assert rlpd.network_config == NetworkConfig(hidden_dim=32, num_layers=3, num_q=10, critic_layer_norm=True)
    assert rlpd.critic.num_q == 10


def test_state_dict_round_trip_restores_acting_and_progress():
    config = make_config("rlpd", prefill_episodes=1, batch_size=16, utd=2)
    learner = FinetuneLearner(PUSH, _push_networks(), config, seed=1)
    data = _push_batch(40)
    _feed_episode(learner, data, 0, 20)
    _feed_episode(learner, data, 20, 10)
    learner.update(learner.updates_due())
    state = learner.state_dict()
    assert state["progress"]["updates_done"] == 20 and state["progress"]["policy_version"] == 20

    # a restarted learner: the same transitions re-added (owing their updates again), then the state loaded
    resumed = FinetuneLearner(PUSH, _push_networks(), config, seed=1)
    _feed_episode(resumed, data, 0, 20)
    _feed_episode(resumed, data, 20, 10)
    assert resumed.updates_due() == 20
    resumed.load_state_dict(state)
    assert resumed.updates_due() == 0 and resumed.updates_done == 20 and resumed.policy_version == 20
    assert resumed.alpha == learner.alpha != config.temperature  # RLPD autotunes α
    np.testing.assert_array_equal(resumed.act(data.obs[:8], deterministic=True),
                                  learner.act(data.obs[:8], deterministic=True))
    np.testing.assert_array_equal(resumed.q_value(data.obs[:8], data.action[:8]),
                                  learner.q_value(data.obs[:8], data.action[:8]))
    assert all(torch.equal(a, b) for a, b in zip(resumed.critic_target.parameters(), learner.critic.parameters()))

    # a checkpoint of a critic with another ensemble size leaves this learner's own critic in place
    other = FinetuneLearner(PUSH, _push_networks(), make_config("sgft"), seed=1)
    critic_before = copy.deepcopy(other.critic.state_dict())
    other.load_state_dict(state)
    assert all(torch.equal(critic_before[k], v) for k, v in other.critic.state_dict().items())
    np.testing.assert_array_equal(other.act(data.obs[:8], deterministic=True),
                                  learner.act(data.obs[:8], deterministic=True))
