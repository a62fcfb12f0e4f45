"""The action → bounded command mapping shared by the policy node, the simulated robot and the Gym env."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgft_core.command import action_step, command_target, scale_command, task_envelope
from sgft_core.fr3 import JOINT_HIGH, JOINT_LOW, JOINT_NAMES
from sgft_core.safety import SafetyEnvelope
from sgft_core.tasks import get_task

PUSH, HAMMER, INSERT = get_task("push"), get_task("hammer"), get_task("insert")
HAMMER_IDX = [JOINT_NAMES.index(n) for n in HAMMER.joint_names]
Q = np.array([0.0, 0.3, 0.0, -2.2, 0.0, 2.47, 0.785])  # FR3 readings


def test_the_tasks_default_envelopes():
    push = task_envelope(PUSH)
    np.testing.assert_allclose(push.low, PUSH.workspace_low[:2])
    np.testing.assert_allclose(push.high, PUSH.workspace_high[:2])
    np.testing.assert_allclose(push.max_step, PUSH.max_delta)
    insert = task_envelope(INSERT)
    np.testing.assert_allclose(insert.low, INSERT.workspace_low)
    hammer = task_envelope(HAMMER)
    np.testing.assert_allclose(hammer.low, JOINT_LOW[HAMMER_IDX])
    np.testing.assert_allclose(hammer.high, JOINT_HIGH[HAMMER_IDX])
    np.testing.assert_allclose(hammer.max_step, HAMMER.max_delta)
    nan = [float("nan")] * 3
    defaulted = task_envelope(PUSH, [float("nan")], nan, nan)  # the parameters' "use the task's" values
    for field in ("low", "high", "max_step"):
        np.testing.assert_array_equal(getattr(defaulted, field), getattr(push, field))


def test_an_envelope_may_only_tighten_the_tasks():
    tight = task_envelope(PUSH, max_step=[0.01, 0.02], workspace_low=[0.3, -0.2, 0.0],
                          workspace_high=[0.5, 0.2, 0.3])
    np.testing.assert_allclose(tight.max_step, [0.01, 0.02])
    np.testing.assert_allclose(tight.high, [0.5, 0.2])
    for kwargs, word in (({"max_step": [0.5, 0.5]}, "max_step"), ({"max_step": [0.01]}, "max_step"),
                         ({"max_step": [0.0, 0.01]}, "max_step"),
                         ({"workspace_high": [0.9, 0.35, 0.3]}, "exceeds"),
                         ({"workspace_low": [0.3, 0.0]}, "3 entries")):
        with pytest.raises(ValueError, match=word):
            task_envelope(PUSH, **kwargs)


def test_action_step_clips_and_holds_on_nan():
    np.testing.assert_allclose(action_step(PUSH, np.array([2.0, -0.5])), [0.04, -0.02])
    np.testing.assert_allclose(action_step(PUSH, np.array([np.nan, np.inf])), [0.0, 0.04])
    with pytest.raises(ValueError, match="shape"):
        action_step(PUSH, np.zeros(3))


def test_cartesian_target_inside_the_box_and_planar_height():
    ee = np.array([0.4, 0.0, 0.05])
    target = command_target(PUSH, task_envelope(PUSH), np.array([0.5, -1.0]), ee)
    np.testing.assert_allclose(target, [0.42, -0.04, PUSH.ee_height])
    target = command_target(INSERT, task_envelope(INSERT), np.array([1.0, 0.0, -1.0]), np.array([0.5, 0.0, 0.2]))
    np.testing.assert_allclose(target, [0.53, 0.0, 0.17])


def test_at_the_box_edge_an_action_pushing_out_is_clipped_before_the_scale():
    ee = np.array([0.67, 0.0, 0.02])  # 1 cm inside push's x high of 0.68
    target = command_target(PUSH, task_envelope(PUSH), np.array([1.0, 0.0]), ee)
    np.testing.assert_allclose(target[:2], [0.68, 0.0])
    # a controller that moves 2.5x what it is asked for moves 2.5x the clipped change
    scaled = command_target(PUSH, task_envelope(PUSH), np.array([1.0, 0.0]), ee, action_scale=2.5)
    np.testing.assert_allclose(scaled[:2], [0.67 + 2.5 * 0.01, 0.0])


def test_outside_the_box_the_target_comes_back_by_at_most_one_step():
    ee = np.array([0.80, 0.0, 0.02])
    target = command_target(PUSH, task_envelope(PUSH), np.array([1.0, 0.0]), ee)
    np.testing.assert_allclose(target[:2], [0.76, 0.0])


def test_non_finite_measured_state_gives_no_target():
    assert command_target(PUSH, task_envelope(PUSH), np.zeros(2), np.array([np.nan, 0.0, 0.02])) is None
    q = Q.copy()
    q[HAMMER_IDX[0]] = np.nan
    assert command_target(HAMMER, task_envelope(HAMMER), np.zeros(3), np.zeros(3), q) is None
    q = Q.copy()
    q[0] = np.nan  # a held joint the target would carry
    assert command_target(HAMMER, task_envelope(HAMMER), np.zeros(3), np.zeros(3), q) is None


def test_joint_target_moves_the_tasks_joints_and_holds_the_others():
    hold = Q + 0.01
    target = command_target(HAMMER, task_envelope(HAMMER), np.array([1.0, -1.0, 0.5]), np.zeros(3), Q, hold)
    expected = hold.copy()
    expected[HAMMER_IDX] = Q[HAMMER_IDX] + np.array([0.15, -0.15, 0.125])
    np.testing.assert_allclose(target, expected)
    # without a hold the other joints keep their measured positions
    target = command_target(HAMMER, task_envelope(HAMMER), np.zeros(3), np.zeros(3), Q)
    np.testing.assert_allclose(target, Q)
    with pytest.raises(ValueError, match="joint positions"):
        command_target(HAMMER, task_envelope(HAMMER), np.zeros(3), np.zeros(3))


def test_joint_targets_stop_at_the_fr3_limits():
    q = Q.copy()
    q[3] = JOINT_HIGH[3] - 0.05  # joint 4, 5 cm below its limit of −0.1518
    target = command_target(HAMMER, task_envelope(HAMMER), np.array([0.0, 1.0, 0.0]), np.zeros(3), q)
    assert target[3] == pytest.approx(JOINT_HIGH[3])


def test_scale_command():
    np.testing.assert_allclose(scale_command(np.array([1.0, 2.0]), np.array([2.0, 2.0]), 2.5), [3.5, 2.0])
    np.testing.assert_allclose(scale_command(np.array([1.0]), np.array([3.0]), 1.0), [3.0])


ACTIONS = st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3))


@settings(max_examples=300, deadline=None)
@given(action=ACTIONS, ee=st.tuples(st.floats(0.2, 0.8), st.floats(-0.5, 0.5), st.floats(0.0, 0.4)),
       scale=st.floats(0.3, 3.0))
def test_the_graph_and_the_env_compute_the_same_target(action, ee, scale):
    """The policy node (scale 1) and the simulated robot scaling what it receives against the same measured state
    give what the env computes in one call with the proxy's scale."""
    ee = np.array(ee)
    for spec in (PUSH, INSERT):
        a = np.array(action[: spec.action_dim])
        envelope = task_envelope(spec)
        sent = command_target(spec, envelope, a, ee)
        env = command_target(spec, envelope, a, ee, action_scale=scale)
        robot = scale_command(ee, sent, scale)
        np.testing.assert_allclose(robot[: spec.action_dim], env[: spec.action_dim], atol=1e-12)


@settings(max_examples=300, deadline=None)
@given(action=ACTIONS, ee=st.tuples(st.floats(0.2, 0.8), st.floats(-0.5, 0.5), st.floats(0.0, 0.4)))
def test_same_targets_as_bounding_the_scaled_action_directly(action, ee):
    """What the policy node sent before this module existed: clip(action) · max_delta through the envelope."""
    ee = np.array(ee)
    for spec in (PUSH, INSERT):
        a = np.array(action[: spec.action_dim])
        envelope = task_envelope(spec)
        before = envelope.bound(ee[: spec.action_dim], np.clip(a, -1.0, 1.0) * spec.max_delta)
        target = command_target(spec, envelope, a, ee)
        np.testing.assert_array_equal(target[: spec.action_dim], before)


def test_a_custom_envelope_is_respected():
    box = SafetyEnvelope(np.array([0.3, -0.1]), np.array([0.41, 0.1]), PUSH.max_delta)
    target = command_target(PUSH, box, np.array([1.0, 1.0]), np.array([0.4, 0.09, 0.02]))
    np.testing.assert_allclose(target[:2], [0.41, 0.1])
