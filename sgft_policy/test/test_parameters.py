"""Validation of the policy node's parameters, without starting a node."""

import numpy as np
import pytest

from sgft_core.fr3 import JOINT_HIGH, JOINT_LOW
from sgft_policy.parameters import PARAMETERS, ParameterError, PolicyParameters


def values(**overrides):
    p = PolicyParameters.defaults()
    p["checkpoint"] = "push.safetensors"  # only validated as a name here
    p.update(overrides)
    return p


def test_defaults_give_the_tasks_envelope():
    p = PolicyParameters.from_values(values())
    assert p.spec.name == "push" and p.period == pytest.approx(0.2) and p.base_frame == "fr3_link0"
    np.testing.assert_allclose(p.envelope.high, p.spec.workspace_high[:2])
    assert p.constants == {} and p.held_offset is None and p.joint_zero_offsets["fr3_joint6"] == 0.0
    hammer = PolicyParameters.from_values(values(task="hammer", constant_names=["goal_x", "goal_z"],
                                                 constant_values=[0.5, 0.1]))
    np.testing.assert_allclose(hammer.envelope.low, JOINT_LOW[[1, 3, 5]])
    np.testing.assert_allclose(hammer.envelope.high, JOINT_HIGH[[1, 3, 5]])
    assert all(isinstance(doc, str) and doc for _, doc in PARAMETERS.values())


def test_a_tighter_box_and_step_are_taken():
    p = PolicyParameters.from_values(values(workspace_high=[0.5, 0.2, 0.3], max_step=[0.01, 0.01]))
    np.testing.assert_allclose(p.envelope.high, [0.5, 0.2])
    np.testing.assert_allclose(p.envelope.max_step, [0.01, 0.01])


@pytest.mark.parametrize("overrides,word", [
    ({"control_rate_hz": 500.0}, "control_rate_hz"),
    ({"max_input_age_s": 0.0}, "max_input_age_s"),
    ({"checkpoint": ""}, "checkpoint"),
    ({"constant_names": ["goal_x"], "constant_values": [0.1, 0.2]}, "differ in length"),
    ({"joint_zero_offsets": [0.0] * 6}, "one per arm joint"),
    ({"ee_orientation_xyzw": [1.0, 1.0, 0.0, 0.0]}, "unit quaternion"),
    ({"task": "stack"}, "unknown task"),
    ({"task": "hammer"}, "needs constants"),
    ({"held_object_offset": [0.0, 0.0, 90.0]}, "metres"),
    ({"max_step": [0.5, 0.5]}, "max_step"),
    ({"workspace_high": [0.9, 0.35, 0.3]}, "exceeds"),
    ({"intervention_timeout_s": 0.0}, "intervention_timeout_s"),
    ({"intervention_timeout_s": 60.0}, "intervention_timeout_s"),
])
def test_bad_values_are_refused_with_the_parameter_named(overrides, word):
    with pytest.raises(ParameterError, match=word):
        PolicyParameters.from_values(values(**overrides))


def test_an_intervention_is_fresh_for_one_control_period_unless_told():
    assert PolicyParameters.from_values(values(control_rate_hz=10.0)).intervention_timeout == pytest.approx(0.1)
    assert PolicyParameters.from_values(values(intervention_timeout_s=0.5)).intervention_timeout == 0.5
