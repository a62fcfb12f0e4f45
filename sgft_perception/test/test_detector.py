"""Transform, crop, color threshold, robust position and fusion against hand-computed and ray-cast scenes."""

import numpy as np
import pytest

from sgft_interfaces.cloud import REALSENSE_FIELDS, CloudLayout, build_cloud_bytes, cloud_view
from sgft_perception.detector import (
    CameraResult,
    DetectorConfig,
    Extrinsic,
    HsvRange,
    crop_to_box,
    detect_in_cloud,
    fuse,
    hue_degrees,
)
from sgft_perception.synthetic import PUCK_RGB, PuckScene, look_at, render_cloud

RED = HsvRange(340.0, 20.0, 0.5, 1.0, 0.2, 1.0)
CONFIG = DetectorConfig(box_min=np.array([0.2, -0.5, 0.005]), box_max=np.array([0.9, 0.5, 0.3]), hsv=RED,
                        expected_points=300)
SIDE_CAMERA = look_at([0.5, -0.6, 0.55], [0.5, 0.0, 0.0])
FRONT_CAMERA = look_at([1.2, 0.0, 0.5], [0.5, 0.0, 0.0])


def view(xyz, rgb):
    return cloud_view(build_cloud_bytes(xyz, rgb), CloudLayout(REALSENSE_FIELDS, 20, 20 * len(xyz), len(xyz), 1))


def camera_view(scene, camera, width=424, height=240, seed=0):
    return view(*render_cloud(scene, camera, width, height, seed=seed))


def test_extrinsic_against_a_hand_computed_point():
    # 90 degrees about z, then translate: camera x -> base y, camera y -> base -x
    s = np.sqrt(0.5)
    extrinsic = Extrinsic.from_xyz_quat([1.0, 2.0, 3.0], [0.0, 0.0, s, s])
    np.testing.assert_allclose(extrinsic.apply([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]), [[1, 3, 3], [0, 2, 3.5]],
                               atol=1e-12)
    np.testing.assert_allclose(Extrinsic.from_xyz_rpy([1, 2, 3], [0, 0, np.pi / 2]).matrix, extrinsic.matrix,
                               atol=1e-12)
    # a camera 1 m above the origin looking straight down, image x along base x: optical z is base -z
    down = Extrinsic.from_xyz_quat([0, 0, 1], [1.0, 0.0, 0.0, 0.0])  # 180 degrees about x
    np.testing.assert_allclose(down.apply([[0.1, 0.2, 0.8]]), [[0.1, -0.2, 0.2]], atol=1e-12)


@pytest.mark.parametrize("camera", [SIDE_CAMERA, FRONT_CAMERA, Extrinsic.from_xyz_rpy([0, 0, 0], [3.1, -0.4, 2.0])])
def test_quaternion_round_trip(camera):
    again = Extrinsic.from_xyz_quat(camera.translation, camera.quaternion_xyzw)
    np.testing.assert_allclose(again.matrix, camera.matrix, atol=1e-9)


def test_extrinsic_rejects_a_bad_quaternion():
    with pytest.raises(ValueError):
        Extrinsic.from_xyz_quat([0, 0, 0], [0, 0, 0, 2])
    with pytest.raises(ValueError):
        Extrinsic.from_xyz_quat([0, 0, np.nan], [0, 0, 0, 1])


def test_crop_matches_a_brute_force_crop_and_drops_nan():
    rng = np.random.default_rng(1)
    around_the_box = rng.uniform(CONFIG.box_min - 0.2, CONFIG.box_max + 0.2, size=(5000, 3))
    xyz = ((around_the_box - SIDE_CAMERA.translation) @ SIDE_CAMERA.rotation).astype(np.float32)
    xyz[::7] = np.nan
    xyz[::11, 1] = np.inf
    rgb = rng.integers(0, 256, size=xyz.shape).astype(np.uint8)
    points, idx = crop_to_box(view(xyz, rgb), SIDE_CAMERA, CONFIG.box_min, CONFIG.box_max)
    with np.errstate(invalid="ignore"):
        base = SIDE_CAMERA.apply(xyz)
        expected = np.flatnonzero(((base >= CONFIG.box_min) & (base <= CONFIG.box_max)).all(axis=1))
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(points, base[expected], atol=1e-5)
    assert 500 < len(expected) < 4000


def test_hue_and_wrap_around_range():
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 40], [255, 40, 0], [255, 128, 0],
                       [128, 128, 128], [90, 10, 10], [255, 200, 200]], dtype=np.uint8)
    hue = hue_degrees(colors.astype(np.float32) / 255)
    np.testing.assert_allclose(hue[:6], [0, 120, 240, 360 - 40 / 255 * 60, 40 / 255 * 60, 128 / 255 * 60], atol=0.01)
    # red wraps through 0; gray has no saturation; pale pink is below the saturation bound
    np.testing.assert_array_equal(RED.select(colors), [True, False, False, True, True, False, False, True, False])
    green = HsvRange(90.0, 150.0, 0.5, 1.0, 0.2, 1.0)
    np.testing.assert_array_equal(green.select(colors), [False, True] + [False] * 7)


@pytest.mark.parametrize("camera", [SIDE_CAMERA, FRONT_CAMERA], ids=["side", "front"])
@pytest.mark.parametrize("center", [(0.5, 0.05), (0.35, -0.2), (0.7, 0.25)])
def test_puck_position_within_1cm(camera, center):
    scene = PuckScene(puck_center=center)
    result = detect_in_cloud(camera_view(scene, camera), camera, CONFIG)
    assert result.valid, result.reason
    np.testing.assert_allclose(result.position, [*center, scene.puck_height], atol=0.01)
    assert (np.abs(result.points[:, :2] - center) <= scene.puck_radius + 0.005).all()


def test_position_offset_moves_the_top_to_the_center():
    config = DetectorConfig(CONFIG.box_min, CONFIG.box_max, RED, position_offset=np.array([0, 0, -0.01]))
    result = detect_in_cloud(camera_view(PuckScene(), SIDE_CAMERA), SIDE_CAMERA, config)
    assert abs(result.position[2] - 0.01) < 0.003


def test_a_smaller_second_red_blob_does_not_pull_the_position():
    xyz, rgb = render_cloud(PuckScene(), SIDE_CAMERA, 424, 240)
    # 40 red points (stray reflections) 20 cm away, in the box
    stray = SIDE_CAMERA.rotation.T @ (np.array([0.5, 0.25, 0.05]) - SIDE_CAMERA.translation)
    xyz[:40], rgb[:40] = stray + np.random.default_rng(0).normal(0, 0.003, (40, 3)), PUCK_RGB
    result = detect_in_cloud(view(xyz, rgb), SIDE_CAMERA, CONFIG)
    np.testing.assert_allclose(result.position[:2], [0.5, 0.05], atol=0.01)


def test_mixed_pixels_on_a_taller_tool_do_not_lift_the_top_surface():
    """The push finger beside the puck: pixels on the puck's silhouette against it mix the two colors and carry the
    finger's depth, object-colored points 1–4 cm above the puck's top (7 of 72 selected points in a MuJoCo render of
    push at this pose, which moved the position by 3–4 cm)."""
    camera = look_at([1.15, -0.55, 0.65], [0.48, 0.0, 0.0])  # the push sim's camera1
    puck, finger_center = np.array([0.548, -0.023]), np.array([0.56, -0.058])
    scene = PuckScene(puck_center=tuple(puck), puck_radius=0.025, puck_height=0.03)
    xyz, rgb = render_cloud(scene, camera, 424, 240)
    puck_points = int(CONFIG.hsv.select(rgb[np.isfinite(xyz).all(axis=1)]).sum())
    n = max(5, puck_points // 10)
    rng = np.random.default_rng(0)
    toward_puck = (puck - finger_center) / np.linalg.norm(puck - finger_center)
    surface = finger_center + 0.01 * toward_puck + rng.uniform(-0.003, 0.003, (n, 2))
    mixed = np.column_stack([surface, rng.uniform(0.04, 0.07, n)])
    xyz[:n] = (mixed - camera.translation) @ camera.rotation  # base → optical frame
    rgb[:n] = (0.45 * np.asarray(PUCK_RGB)).astype(np.uint8)  # darker, same hue
    result = detect_in_cloud(view(xyz, rgb), camera, CONFIG)
    assert result.valid, result.reason
    np.testing.assert_allclose(result.position, [*puck, 0.03], atol=0.005)


def test_empty_view_and_occlusion_give_no_position():
    no_puck = PuckScene(puck_center=(5.0, 5.0))  # off the table: nothing above the table in the workspace
    result = detect_in_cloud(camera_view(no_puck, SIDE_CAMERA), SIDE_CAMERA, CONFIG)
    assert not result.valid and result.position is None and "no points inside the workspace box" in result.reason
    blue = detect_in_cloud(camera_view(PuckScene(), SIDE_CAMERA), SIDE_CAMERA,
                           DetectorConfig(CONFIG.box_min, CONFIG.box_max, HsvRange(200.0, 260.0, 0.5, 1.0, 0.2, 1.0)))
    assert not blue.valid and "0 object-colored points" in blue.reason
    xyz, rgb = render_cloud(PuckScene(), SIDE_CAMERA, 424, 240)
    all_nan = detect_in_cloud(view(np.full_like(xyz, np.nan), rgb), SIDE_CAMERA, CONFIG)
    assert not all_nan.valid and "no points inside the workspace box" in all_nan.reason
    empty = detect_in_cloud(view(xyz[:0], rgb[:0]), SIDE_CAMERA, CONFIG)
    assert not empty.valid and empty.reason == "empty cloud"
    # an occluder covering most of the puck: a few red points remain, fewer than min_points
    red = np.flatnonzero((rgb[:, 0] > 150) & (rgb[:, 1] < 80))
    xyz[red[10:]] = np.nan
    occluded = detect_in_cloud(view(xyz, rgb), SIDE_CAMERA, CONFIG)
    assert not occluded.valid and "10 object-colored points" in occluded.reason


def test_fusion_of_two_cameras():
    scene = PuckScene(puck_center=(0.6, -0.1))
    side = detect_in_cloud(camera_view(scene, SIDE_CAMERA), SIDE_CAMERA, CONFIG)
    front = detect_in_cloud(camera_view(scene, FRONT_CAMERA), FRONT_CAMERA, CONFIG)
    both = fuse([side, front], CONFIG)
    assert both.valid and both.num_cameras == 2 and both.num_points == len(side.points) + len(front.points)
    weights = np.array([len(side.points), len(front.points)])
    np.testing.assert_allclose(both.position, (weights[0] * side.position + weights[1] * front.position)
                               / weights.sum())
    np.testing.assert_allclose(both.position, [0.6, -0.1, 0.02], atol=0.01)
    assert both.confidence == pytest.approx(min(1.0, both.num_points / (2 * CONFIG.expected_points)))

    occluded = CameraResult(np.empty((0, 3), np.float32), np.empty((0, 3), np.uint8), 10, None, "cam2: occluded")
    one = fuse([side, occluded], CONFIG)
    assert one.valid and one.num_cameras == 1
    np.testing.assert_allclose(one.position, side.position)
    assert one.confidence < both.confidence

    none = fuse([occluded, CameraResult(occluded.points, occluded.colors, 0, None, "cam1: empty cloud")], CONFIG)
    assert not none.valid and np.isnan(none.position).all() and none.num_points == 0
    assert "cam2: occluded" in none.reason and "cam1: empty cloud" in none.reason
    assert not fuse([], CONFIG).valid


def test_config_validation():
    with pytest.raises(ValueError, match="box_min < box_max"):
        DetectorConfig(np.array([0, 0, 1]), np.array([1, 1, 0]), RED)
    with pytest.raises(ValueError, match="hue"):
        HsvRange(-10, 20)
    with pytest.raises(ValueError, match="saturation"):
        HsvRange(0, 20, 0.8, 0.2)
