"""Property-based checks of the safety envelope: no target leaves the box or exceeds the step limit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgft_core.safety import SafetyEnvelope

pytestmark = pytest.mark.faults

ENVELOPE = SafetyEnvelope(low=np.array([0.3, -0.3, 0.05]), high=np.array([0.7, 0.3, 0.4]),
                          max_step=np.array([0.03, 0.03, 0.02]))

any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
inside = st.tuples(st.floats(0.3, 0.7), st.floats(-0.3, 0.3), st.floats(0.05, 0.4))
anywhere = st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(-5, 5))


@settings(max_examples=500, deadline=None)
@given(current=inside, delta=st.tuples(any_float, any_float, any_float))
def test_from_inside_the_box_targets_stay_inside_and_within_one_step(current, delta):
    target = ENVELOPE.bound(np.array(current), np.array(delta))
    assert target is not None and np.all(np.isfinite(target))
    assert ENVELOPE.contains(target)
    assert np.all(np.abs(target - np.array(current)) <= ENVELOPE.max_step + 1e-12)


@settings(max_examples=500, deadline=None)
@given(current=anywhere, delta=st.tuples(any_float, any_float, any_float))
def test_from_outside_the_box_the_step_limit_wins_and_moves_towards_the_box(current, delta):
    current = np.array(current)
    target = ENVELOPE.bound(current, np.array(delta))
    assert np.all(np.abs(target - current) <= ENVELOPE.max_step + 1e-12)
    distance = lambda p: np.linalg.norm(np.maximum(ENVELOPE.low - p, 0) + np.maximum(p - ENVELOPE.high, 0))  # noqa: E731
    assert distance(target) <= distance(current) + 1e-12


def test_non_finite_delta_holds_and_non_finite_state_commands_nothing():
    current = np.array([0.5, 0.0, 0.2])
    np.testing.assert_allclose(ENVELOPE.bound(current, np.array([np.nan, 1.0, 0.0])), current)
    assert ENVELOPE.bound(np.array([np.nan, 0.0, 0.2]), np.zeros(3)) is None


def test_hand_computed_clip():
    target = ENVELOPE.bound(np.array([0.69, 0.0, 0.2]), np.array([0.05, -0.01, -1.0]))
    np.testing.assert_allclose(target, [0.7, -0.01, 0.18])


@pytest.mark.parametrize("low,high,step", [
    ([0, 0], [1], [0.1, 0.1]), ([0.0], [0.0], [0.1]), ([0.0], [1.0], [0.0]), ([0.0], [np.inf], [0.1]),
])
def test_invalid_envelopes_are_rejected(low, high, step):
    with pytest.raises(ValueError):
        SafetyEnvelope(np.array(low), np.array(high), np.array(step))
