import os

os.environ.setdefault("MUJOCO_GL", "osmesa")  # off-screen rendering without a display; must precede mujoco import

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sgft_sim
from sgft_core.checkpoint import load_checkpoint
from sgft_core.fr3 import MJCF_JOINT_ZERO_OFFSET, joint_indices
from sgft_core.safety import SafetyEnvelope
from sgft_core.seeds import HELD_OUT_EVAL_SEED
from sgft_core.tasks import get_task
from sgft_sim.benchmark import DEFAULT_CHECKPOINT_DIR
from sgft_sim.proxies import PROXIES, SIM


@pytest.fixture(scope="module", params=["push", "hammer", "insert"])
def env(request):
    env = sgft_sim.make_env(request.param, seed=0)
    yield env
    env.close()


def test_randomization_ranges_respected(env):
    seen = {name: [] for name in env.PARAM_RANGES}
    for i in range(30):
        _, info = env.reset(seed=100 + i)
        for name, (low, high) in env.PARAM_RANGES.items():
            assert low <= info["params"][name] <= high
            seen[name].append(info["params"][name])
    for name, (low, high) in env.PARAM_RANGES.items():
        assert np.ptp(seen[name]) > 0.3 * (high - low), f"{name} is not randomized"


def test_same_seed_same_trajectory(env):
    actions = np.random.default_rng(1).uniform(-1, 1, size=(8, env.action_space.shape[0]))
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=7)
        trajectory = [obs] + [env.step(a)[0] for a in actions]
        runs.append(np.array(trajectory))
    np.testing.assert_array_equal(runs[0], runs[1])
    obs_other, _ = env.reset(seed=8)
    assert not np.array_equal(obs_other, runs[0][0])


def test_workspace_box_respected_under_random_actions(env):
    spec = env.task
    rng = np.random.default_rng(2)
    env.reset(seed=3)
    for _ in range(spec.episode_length):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, size=spec.action_dim))
        assert np.all(env.ee_position() >= spec.workspace_low - 0.01)
        assert np.all(env.ee_position() <= spec.workspace_high + 0.01)
        assert obs.dtype == np.float32 and obs.shape == (spec.obs_dim,)
        assert reward == pytest.approx(float(spec.reward(obs)))
        if terminated:
            break
    assert truncated or terminated


def test_robot_interface(env):
    env.reset(seed=0)
    names, q, dq = env.joint_state()
    assert names == tuple(f"fr3_joint{i}" for i in range(1, 8)) and q.shape == (7,) and dq.shape == (7,)
    if env.task.action_kind == "cartesian":
        target = env.ee_position() + np.array([0.03, 0.0, 0.0])
        env.set_ee_target(target)
        env.simulate(0.4)
        assert np.linalg.norm(env.ee_position()[:2] - target[:2]) < 0.01


def test_check_env():
    env = sgft_sim.make_env("push", seed=0)
    check_env(env, skip_render_check=True)
    env.close()


def test_proxies_differ_from_sim_in_their_knobs():
    for task, proxies in PROXIES.items():
        real = proxies["real"]
        assert not real.randomize_params and not real.randomize_initial_pose
        assert real.action_scale != SIM.action_scale and real.stiffness_scale != SIM.stiffness_scale
        assert real.hold_periods == (0.6, 1.4) and SIM.hold_periods is None
        env = sgft_sim.make_env(task, "real", seed=0)
        kp = env.model.actuator_gainprm[env.arm.actuator_ids, 0]
        sim_kp = sgft_sim.make_env(task, "sim", seed=0).model.actuator_gainprm[env.arm.actuator_ids, 0]
        np.testing.assert_allclose(kp, sim_kp * real.stiffness_scale)
        first, first_info = env.reset(seed=1)
        second, second_info = env.reset(seed=2)
        if not real.reset_jitter:
            np.testing.assert_allclose(first, second, atol=2e-3)  # fixed parameters and initial pose
        for name, value in first_info["params"].items():  # fixed, up to the reset jitter a person's placement adds
            jitter = real.reset_jitter.get(name, 0.0)
            nominal = real.params.get(name, value)
            assert abs(value - nominal) <= jitter and abs(second_info["params"][name] - nominal) <= jitter
            assert (value != second_info["params"][name]) == (jitter > 0)
        holds = set()
        for _ in range(5):
            env.step(np.zeros(env.action_space.shape))
            holds.add(round(env.last_hold_periods, 6))
            assert 0.6 <= env.last_hold_periods <= 1.4
        assert len(holds) > 1


def test_command_delay_latency_runs_the_previous_action_on_then_scales_against_the_observed_state():
    """The simulated robot node's timing in the env: observations every period, the new target only after a delay,
    computed from the state the action was chosen on (not the one the arm moved on to meanwhile)."""
    with pytest.raises(ValueError, match="latency_model"):
        sgft_sim.make_env("push", "real", latency_model="late")
    rng = np.random.default_rng(0)
    delays = [PROXIES["push"]["real"].command_delay_periods(rng) for _ in range(200)]
    assert 0.0 <= min(delays) < 0.05 and 0.35 < max(delays) <= 0.4  # U(0, (1.4 − 0.6) / 2)
    assert SIM.command_delay_periods(rng) == 0.0
    env = sgft_sim.make_env("push", "real", seed=0, latency_model="command_delay")
    env.reset(seed=3)
    env.step(np.array([1.0, 0.0]))  # the arm now moves towards +x
    observed = env.ee_position().copy()
    real = PROXIES["push"]["real"]
    seed = next(k for k in range(100) if real.command_delay_periods(np.random.default_rng(k)) > 0.25)
    env._rng = np.random.default_rng(seed)  # a delay over a quarter period for the next command
    env.step(np.zeros(2))  # "stay where you were observed"
    assert env.last_hold_periods < 0.75
    np.testing.assert_allclose(env._ee_target[:2], observed[:2], atol=1e-9)
    assert env.ee_position()[0] > observed[0] + 1e-3  # the previous action ran on during the delay
    times = [env.data.time]
    for _ in range(3):
        env.step(np.zeros(2))
        times.append(env.data.time)
    np.testing.assert_allclose(np.diff(times), env.task.control_period, atol=env.model.opt.timestep)


@pytest.mark.parametrize("proxy", ["sim", "real"])
def test_a_command_the_envelope_clips_is_clipped_in_the_env_before_the_proxys_scale(proxy):
    """The env bounds actions with the policy node's envelope: an action pushing out of the box moves only to its
    edge, and the proxy's mis-calibrated controller then scales that change, as the simulated robot node does."""
    env = sgft_sim.make_env("push", proxy, seed=0)
    env.reset(seed=0)
    ee = env.ee_position()
    default = env.envelope
    np.testing.assert_allclose(default.high, env.task.workspace_high[:2])
    env.envelope = SafetyEnvelope(default.low, np.array([ee[0] + 0.01, default.high[1]]), default.max_step)
    env.step(np.array([1.0, 0.5]))  # 4 cm towards +x asked for, 1 cm left in the box; 2 cm in y is inside
    scale = env.proxy.action_scale
    np.testing.assert_allclose(env._ee_target[:2], ee[:2] + scale * np.array([0.01, 0.02]), atol=1e-12)
    env.close()


def test_joint_actions_pass_the_envelope_in_the_fr3_readings_and_other_joints_hold():
    env = sgft_sim.make_env("hammer", "real", seed=0)
    env.reset(seed=0)
    idx = joint_indices(env.task.joint_names)
    q, held = env.arm.q(), env.arm.joint_targets()
    fr3 = q + MJCF_JOINT_ZERO_OFFSET
    default = env.envelope
    np.testing.assert_allclose(default.high, [1.7837, -0.1518, 4.5169])  # FR3 limits of joints 2, 4 and 6
    env.envelope = SafetyEnvelope(default.low, fr3[idx] + 0.02, default.max_step)  # 2 cm·rad of room left
    env.step(np.ones(3))
    targets = env.arm.joint_targets()
    np.testing.assert_allclose(targets[idx], q[idx] + env.proxy.action_scale * 0.02, atol=1e-12)
    others = [i for i in range(7) if i not in idx]
    np.testing.assert_allclose(targets[others], held[others])
    env.close()


def test_push_real_puck_start_jitters_and_the_gripper_start_does_not():
    env = sgft_sim.make_env("push", "real", seed=0)
    starts = np.array([env.reset(seed=seed)[0] for seed in range(20)])
    np.testing.assert_allclose(starts[:, :2], starts[:1, :2].repeat(20, 0), atol=2e-3)  # the robot homes exactly
    puck_offsets = starts[:, 2:] - np.array([0.40, 0.10])
    assert np.abs(puck_offsets).max() <= 0.021 and puck_offsets.std(0).min() > 0.005
    env.close()


def _puck_mass_and_friction(proxy: str) -> tuple[float, float]:
    env = sgft_sim.make_env("push", proxy, seed=0)
    env.reset(seed=0)
    dof = env.model.jnt_dofadr[env.model.joint("puck_x").id]
    mass, friction = float(env.model.body_mass[env.model.body("puck").id]), float(env.model.dof_frictionloss[dof])
    env.close()
    return mass, friction


def test_push_real_puck_is_heavier_and_grippier_and_slippery_puck_lighter_and_slipperier():
    sim_mass, sim_friction = _puck_mass_and_friction("sim")
    real_mass, real_friction = _puck_mass_and_friction("real")
    slippery_mass, slippery_friction = _puck_mass_and_friction("slippery")
    assert real_mass == pytest.approx(2.0 * sim_mass) and real_friction > 2.0 * sim_friction  # μ·m·g: both grow
    assert slippery_mass < sim_mass and slippery_friction < 0.2 * sim_friction


def test_scripted_push_succeeds_in_sim():
    env = sgft_sim.make_env("push", seed=0)
    successes = 0
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        for _ in range(get_task("push").episode_length):
            ee, puck = obs[:2], obs[2:]
            target = puck - np.array([0.035, 0.0])
            if abs(ee[1] - puck[1]) > 0.01 and ee[0] > puck[0] - 0.06:
                target = np.array([puck[0] - 0.07, puck[1]])  # go around, behind the puck
            elif abs(ee[1] - puck[1]) <= 0.01 and ee[0] < puck[0] - 0.03:
                target = np.array([min(puck[0], 0.515), puck[1]])  # push until the puck sits at 55 cm
            obs, _, terminated, _, info = env.step(np.clip((target - ee) / 0.04, -1, 1))
            if terminated:
                break
        successes += info["success"]
    assert successes == 3


@pytest.mark.parametrize(("proxy", "width", "height"), [("sim", 424, 240), ("deformable", 424, 240)])
def test_point_cloud_finds_the_puck(proxy, width, height):
    env = sgft_sim.make_env("push", proxy, seed=0)
    env.reset(seed=4)
    try:
        for camera in ("camera1", "camera2"):
            cloud = env.point_cloud(camera, width=width, height=height)
            assert cloud.xyz.dtype == np.float32 and cloud.rgb.dtype == np.uint8
            assert cloud.xyz.shape == cloud.rgb.shape and np.all(cloud.xyz[:, 2] > 0)  # optical z looks forward
            rgb = cloud.rgb.astype(int)
            orange = (rgb[:, 0] > 150) & (rgb[:, 1] < 0.6 * rgb[:, 0]) & (rgb[:, 2] < 60)
            assert orange.sum() > 20
            points = cloud.in_base_frame()[orange]
            # the visible surface of the puck: its xy centre lies within the radius, the top at its height
            top = points[points[:, 2] > 0.025]
            centre = env.object_position()
            assert np.linalg.norm(np.median(top[:, :2], axis=0) - centre[:2]) < 0.01
            assert abs(np.median(top[:, 2]) - 0.03) < 0.01
    finally:
        env.close()


def test_point_cloud_leaves_out_the_arm_but_keeps_the_tool():
    env = sgft_sim.make_env("push", seed=0)
    env.reset(seed=4)
    try:
        clouds = {arm: env.point_cloud("camera1", width=212, height=120, render_arm=arm) for arm in (False, True)}
        high = {arm: int((cloud.in_base_frame()[:, 2] > 0.3).sum()) for arm, cloud in clouds.items()}
        assert high[False] == 0 and high[True] > 50  # only the arm's links rise above 30 cm
        points = clouds[False].in_base_frame()
        near_finger = np.linalg.norm(points[:, :2] - env.ee_position()[:2], axis=1) < 0.012
        assert (near_finger & (points[:, 2] > 0.035)).sum() > 3  # the finger above the puck's top is still there
    finally:
        env.close()


def _scripted_push(obs: np.ndarray, gain: float = 1.0, stop_x: float = 0.515) -> np.ndarray:
    """Go behind the puck, then push it along +x until it is expected to come to rest near the goal."""
    ee, puck = obs[:2], obs[2:]
    target = puck - np.array([0.035, 0.0])
    if abs(ee[1] - puck[1]) > 0.01 and ee[0] > puck[0] - 0.06:
        target = np.array([puck[0] - 0.07, puck[1]])  # go around, behind the puck
    elif abs(ee[1] - puck[1]) <= 0.01 and ee[0] < puck[0] - 0.03:
        target = np.array([min(puck[0], stop_x), puck[1]])
    return gain * np.clip((target - ee) / 0.04, -1, 1)


def test_deformable_push_is_deterministic_and_tracks_the_soft_body():
    env = sgft_sim.make_env("push", "deformable", seed=0)
    segments = [env.model.body(f"soft_segment{i}").id for i in range(8)]
    runs = []
    for _ in range(2):
        noise = np.random.default_rng(3).uniform(-0.3, 0.3, size=(12, 2))
        obs, _ = env.reset(seed=5)
        trajectory = [obs]
        for step_noise in noise:
            obs = env.step(np.clip(_scripted_push(obs) + step_noise, -1, 1))[0]
            trajectory.append(obs)
            centroid = env.data.xpos[segments].mean(axis=0)
            np.testing.assert_allclose(env.object_position(), centroid)
            np.testing.assert_allclose(obs[2:], centroid[:2], atol=1e-6)
            assert np.all(np.isfinite(env.data.qpos)) and abs(centroid[2] - 0.015) < 1e-6  # flat, no explosion
        runs.append(np.array(trajectory))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.ptp(runs[0][:, 2], axis=0) > 0.02  # the pushes did move it
    env.close()


def test_deformable_push_dents_and_moves_the_soft_puck():
    env = sgft_sim.make_env("push", "deformable", seed=0)
    dents = [env.model.jnt_qposadr[env.model.joint(f"soft_radial{i}").id] for i in range(8)]
    obs, _ = env.reset(seed=0)
    start, deepest = obs[2:].copy(), 0.0
    for _ in range(env.task.episode_length):
        obs, _, terminated, _, info = env.step(_scripted_push(obs, gain=0.3, stop_x=0.50))
        deepest = max(deepest, -float(env.data.qpos[dents].min()))
        assert env.ee_position()[0] < obs[2] - 0.01  # the finger stays behind the centroid: it never passes through
        assert not terminated
    assert obs[2] - start[0] > 0.1 and info["success"]  # a gentle scripted push brings it to the goal
    assert deepest > 5e-4  # and the near side was dented on the way (a rigid body would not)
    env.close()


def _insert_episode(env, seed: int, gain: float, xy_tolerance: float) -> bool:
    """Scripted insertion: bring the leg tip 4 cm above the hole, descend once it is within xy_tolerance of it."""
    obs, _ = env.reset(seed=seed)
    for _ in range(env.task.episode_length):
        leg, hole = obs[3:6], obs[6:9]
        above = np.linalg.norm(leg[:2] - hole[:2]) < xy_tolerance
        target = hole + np.array([0.0, 0.0, 0.0 if above else 0.04])
        obs, _, _, _, info = env.step(np.clip(gain * (target - leg) / env.task.max_delta, -1, 1))
        if info["success"]:
            return True
    return False


def test_insert_real_defeats_the_sim_script_but_an_adapted_one_solves_it():
    sim, real = sgft_sim.make_env("insert", "sim", seed=0), sgft_sim.make_env("insert", "real", seed=0)
    assert all(_insert_episode(sim, seed, gain=1.0, xy_tolerance=0.004) for seed in range(2))
    assert not any(_insert_episode(real, seed, gain=1.0, xy_tolerance=0.004) for seed in range(2))
    # slower steps (the real controller is softer, mis-scaled and late) and a looser "above the hole" test
    assert all(_insert_episode(real, seed, gain=0.2, xy_tolerance=0.01) for seed in range(2))


def test_hammer_real_is_solvable_by_a_closed_loop_script():
    env = sgft_sim.make_env("hammer", "real", seed=0)
    ids = [env.arm.joint_ids.tolist().index(env.model.joint(n).id) for n in env.task.joint_names]
    successes = 0
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        lifted = False
        for _ in range(env.task.episode_length):
            ee, nail_z, nail_x = obs[:3], obs[9], obs[10]
            lifted = lifted or (abs(ee[0] - nail_x) < 0.005 and abs(ee[2] - nail_z - 0.05) < 0.01)
            target = np.array([nail_x, nail_z + (-0.03 if lifted else 0.05)])  # above the nail, then through it
            q = env.arm.q()
            jac = np.zeros((2, 3))  # d(ee x, z)/d(q2, q4, q6) by finite differences
            for k, joint in enumerate(ids):
                dq = q.copy()
                dq[joint] += 1e-4
                jac[:, k] = (env.arm.forward_ee(dq)[[0, 2]] - env.arm.forward_ee(q)[[0, 2]]) / 1e-4
            delta = np.linalg.lstsq(jac, target - ee[[0, 2]], rcond=None)[0]
            obs, _, _, _, info = env.step(np.clip(delta / env.task.max_delta, -1, 1))
            if info["success"]:
                break
        successes += info["success"]
    assert successes == 2


def test_observation_offset_moves_only_the_perceived_quantity():
    real = PROXIES["hammer"]["real"]
    assert SIM.observation_offset == {} and real.observation_offset["goal_x"] < -0.02
    calibrated = sgft_sim.make_env("hammer", "real", seed=0, observation_offset={})
    biased = sgft_sim.make_env("hammer", "real", seed=0)
    obs_calibrated, _ = calibrated.reset(seed=3)
    obs_biased, _ = biased.reset(seed=3)
    # goal_x (the nail's x) is off by the offset; the nail, the hammer and the rest are where they were
    goal_x = biased.task.obs_names.index("goal_x")
    assert obs_biased[goal_x] - obs_calibrated[goal_x] == pytest.approx(real.observation_offset["goal_x"], abs=1e-6)
    assert obs_calibrated[goal_x] == pytest.approx(calibrated.params["nail_x"])
    others = np.arange(len(obs_biased)) != goal_x
    np.testing.assert_array_equal(obs_biased[others], obs_calibrated[others])
    np.testing.assert_array_equal(biased.object_position(), calibrated.object_position())
    calibrated.close()
    biased.close()
    with pytest.raises(ValueError, match="not in hammer's observation"):
        sgft_sim.make_env("hammer", "real", observation_offset={"nail_y": 0.01})


def _hammer_policy_episode(env, actor, seed: int, adapted: bool) -> tuple[bool, np.ndarray]:
    """π_sim on one episode; adapted: once a strike is seen to land beside the nail (the hammer's face below the nail
    head's top, which only happens beside it), aim 2 cm further out by shifting the nail x π_sim is given."""
    obs, _ = env.reset(seed=seed)
    shift = 0.0
    for _ in range(env.task.episode_length):
        if adapted and obs[2] < obs[9] - 0.01:
            shift = 0.02
        seen = obs.copy()
        seen[10] += shift
        obs, _, _, _, info = env.step(actor.act(seen, deterministic=True))
    return bool(info["success"]), obs


def test_hammer_real_defeats_the_sim_policy_but_an_adapted_one_solves_it():
    actor = load_checkpoint(DEFAULT_CHECKPOINT_DIR / "hammer.safetensors", "hammer").networks.actor.eval()
    sim, real = sgft_sim.make_env("hammer", "sim", seed=0), sgft_sim.make_env("hammer", "real", seed=0)
    seeds = [HELD_OUT_EVAL_SEED, HELD_OUT_EVAL_SEED + 1]  # the evaluation's first two episodes
    assert all(_hammer_policy_episode(sim, actor, seed, adapted=False)[0] for seed in seeds)
    for seed in seeds:
        # the nail is perceived 2.8 cm short of where it is: π_sim strikes the block beside the head and stays there,
        # the nail up (no reward) and the hammer's face below the head's top, both in the observation
        success, obs = _hammer_policy_episode(real, actor, seed, adapted=False)
        assert not success and obs[9] - obs[11] > 0.02 and obs[2] < obs[9] - 0.01
        assert _hammer_policy_episode(real, actor, seed, adapted=True)[0]
    assert all(_hammer_policy_episode(sim, actor, seed, adapted=True)[0] for seed in seeds)  # never triggers in sim
    sim.close()
    real.close()


def _push_episode(env, seed: int, gain: float) -> bool:
    obs, _ = env.reset(seed=seed)
    for _ in range(env.task.episode_length):
        obs, _, terminated, _, info = env.step(_scripted_push(obs, gain=gain))
        if terminated:
            return False
    return bool(info["success"])


def test_push_real_defeats_the_sim_script_but_smaller_steps_solve_it():
    sim, real = sgft_sim.make_env("push", "sim", seed=0), sgft_sim.make_env("push", "real", seed=0)
    assert all(_push_episode(sim, seed, gain=1.0) for seed in range(2))
    # the real controller moves 2.5× further than commanded: the sim-tuned script mostly overshoots the goal (with the
    # puck put back within ±2 cm, now and then the overshoot lands in it: 2 of these 8 here, and seed 1 succeeded on
    # one machine and failed on another with the same pinned wheels, so count them, never name them), while 0.4×
    # steps solve every episode
    assert sum(_push_episode(real, seed, gain=1.0) for seed in range(8)) <= 3
    assert all(_push_episode(real, seed, gain=0.4) for seed in range(8))
