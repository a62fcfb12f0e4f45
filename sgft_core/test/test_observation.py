import dataclasses

import numpy as np
import pytest

from sgft_core.observation import (
    assemble_observation,
    held_object_position,
    observation_sources,
    parse_held_object_offset,
)
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


def test_joint_zero_offsets_shift_positions_not_velocities():
    """The robot reports FR3 readings; a policy trained on the simulator's MJCF (joint 6 counted from π/2 away) sees
    the reading minus the offset."""
    spec = get_task("hammer")
    q = {f"fr3_joint{i}": 0.1 * i for i in range(1, 8)}
    dq = {f"fr3_joint{i}": -0.01 * i for i in range(1, 8)}
    obs = assemble_observation(spec, np.array([0.5, 0.0, 0.3]), q, dq, np.array([0.6, 0.0, 0.05]),
                               constants={"goal_x": 0.6, "goal_z": 0.01}, joint_zero_offsets={"fr3_joint6": np.pi / 2})
    np.testing.assert_allclose(obs[3:9], [0.2, 0.4, 0.6 - np.pi / 2, -0.02, -0.04, -0.06], rtol=1e-6)


def test_missing_inputs_are_named():
    with pytest.raises(ValueError, match="object"):
        assemble_observation(get_task("push"), np.zeros(3))
    with pytest.raises(ValueError, match="hole_x"):
        assemble_observation(get_task("insert"), np.zeros(3), object_position=np.zeros(3))


# ------------------------------------------------------------------------------------------- a held object (insert)
def test_held_object_offset_nan_or_empty_means_not_held():
    spec = get_task("insert")
    assert parse_held_object_offset([float("nan")] * 3, spec) is None
    assert parse_held_object_offset([], spec) is None
    np.testing.assert_array_equal(parse_held_object_offset([0.0, 0.0, 0.09], spec), [0.0, 0.0, 0.09])


@pytest.mark.parametrize(("values", "match"), [
    ([0.0, 0.09], "3 finite values"),
    ([0.0, 0.0, 0.09, 0.0], "3 finite values"),
    ([0.0, float("nan"), 0.09], "3 finite values"),
    ([0.0, 0.0, float("inf")], "3 finite values"),
    ([0.0, 0.0, 90.0], "metres expected"),
])
def test_bad_held_object_offset_is_refused_with_what_is_wrong(values, match):
    with pytest.raises(ValueError, match=f"held_object_offset.*{match}"):
        parse_held_object_offset(values, get_task("insert"))


def test_held_object_offset_needs_a_task_object():
    no_object = dataclasses.replace(get_task("push"), name="reach", obs_names=("ee_x", "ee_y", "goal_x", "goal_y"))
    with pytest.raises(ValueError, match="observes no object"):
        parse_held_object_offset([0.0, 0.0, 0.09], no_object)


def test_held_object_position_rotates_the_offset_by_the_end_effector_orientation():
    ee, offset = np.array([0.5, -0.1, 0.2]), np.array([0.0, 0.0, 0.09])
    np.testing.assert_allclose(held_object_position(ee, (0, 0, 0, 1), offset), [0.5, -0.1, 0.29])  # identity
    # gripper pointing down (180° about x, the policy's default target orientation): the leg hangs below
    np.testing.assert_allclose(held_object_position(ee, (1, 0, 0, 0), offset), [0.5, -0.1, 0.11], atol=1e-12)
    # 90° about z turns x into y
    s = np.sqrt(0.5)
    np.testing.assert_allclose(held_object_position(ee, (0, 0, s, s), np.array([0.1, 0.0, 0.0])), [0.5, 0.0, 0.2],
                               atol=1e-12)
    # tilted 10° about y from pointing down: the tip swings 9 cm · sin 10° along x, not straight below
    tilt = np.radians(10.0)
    down_tilted = (np.cos(tilt / 2), 0.0, -np.sin(tilt / 2), 0.0)  # (180° about x) then tilt about the tool's y
    tip = held_object_position(ee, down_tilted, offset)
    np.testing.assert_allclose(np.linalg.norm(tip - ee), 0.09)
    np.testing.assert_allclose(abs(tip[0] - ee[0]), 0.09 * np.sin(tilt), atol=1e-12)


def test_held_object_position_refuses_a_non_unit_orientation():
    with pytest.raises(ValueError, match="not a unit quaternion"):
        held_object_position(np.zeros(3), (0, 0, 0, 0), np.array([0.0, 0.0, 0.09]))
    with pytest.raises(ValueError, match="not a unit quaternion"):
        held_object_position(np.zeros(3), (0, 0, 0, float("nan")), np.array([0.0, 0.0, 0.09]))


def test_joint_numbers_name_the_fr3_joints():
    spec = get_task("hammer")
    q = {f"fr3_joint{i}": 0.1 * i for i in range(1, 8)}
    renamed = dataclasses.replace(spec, obs_names=tuple("q9" if n == "q6" else n for n in spec.obs_names))
    with pytest.raises(ValueError, match="q9 names no FR3 joint"):
        assemble_observation(renamed, np.zeros(3), q, q, np.zeros(3), constants={"goal_x": 0.6, "goal_z": 0.01})
