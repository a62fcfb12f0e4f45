import numpy as np
import pytest

from sgft_core.observation import assemble_observation, observation_sources
from sgft_core.tasks import get_task


def test_push_observation_order():
    obs = assemble_observation(get_task("push"), ee_position=np.array([0.3, 0.1, 0.02]),
                               object_position=np.array([0.4, -0.05, 0.02]))
    np.testing.assert_allclose(obs, [0.3, 0.1, 0.4, -0.05], rtol=1e-6)
    assert obs.dtype == np.float32


def test_hammer_observation_uses_joints_object_and_constants():
    spec = get_task("hammer")
    q = {f"fr3_joint{i}": 0.1 * i for i in range(1, 8)}
    dq = {f"fr3_joint{i}": -0.01 * i for i in range(1, 8)}
    obs = assemble_observation(spec, np.array([0.5, 0.0, 0.3]), q, dq, np.array([0.6, 0.0, 0.05]),
                               constants={"goal_x": 0.6, "goal_z": 0.01})
    expected = [0.5, 0.0, 0.3, 0.2, 0.4, 0.6, -0.02, -0.04, -0.06, 0.05, 0.6, 0.01]
    np.testing.assert_allclose(obs, expected, rtol=1e-6)
    assert observation_sources(spec)["constants"] == ["goal_x", "goal_z"]


def test_missing_inputs_are_named():
    with pytest.raises(ValueError, match="object"):
        assemble_observation(get_task("push"), np.zeros(3))
    with pytest.raises(ValueError, match="hole_x"):
        assemble_observation(get_task("insert"), np.zeros(3), object_position=np.zeros(3))
