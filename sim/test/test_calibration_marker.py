"""The ArUco marker on the simulated hand: seen by the color cameras where it is, invisible to perception."""

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time as TimeMsg

from sgft_sim import make_env
from sgft_sim.camera import color_image_topic, color_info_topic, color_optical_frame
from sgft_sim.robot import ARUCO_ID, MARKER_LENGTH, aruco_dictionary
from sgft_sim.robot_node import SimRobotParameters, color_messages


@pytest.fixture(scope="module")
def env():
    env = make_env("push", "sim", seed=0)
    env.reset(seed=0)
    yield env
    env.close()


def _detect(rgb):
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    corners, ids, _ = cv2.aruco.ArucoDetector(aruco_dictionary(), params).detectMarkers(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert ids is not None and ARUCO_ID in ids.ravel(), "marker not detected"
    return corners[list(ids.ravel()).index(ARUCO_ID)].reshape(4, 2).astype(np.float64)


@pytest.mark.parametrize("camera", ["camera1", "camera2"])
def test_marker_is_detected_where_the_model_puts_it(env, camera):
    rgb, k = env.color_image(camera, 848, 480)
    assert rgb.shape == (480, 848, 3) and rgb.dtype == np.uint8
    corners = _detect(rgb)
    h = 0.5 * MARKER_LENGTH
    obj = np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])
    # the model's marker corners projected with the published intrinsics land on the detected ones
    marker_in_camera = np.linalg.inv(env.camera_pose(camera)) @ env.marker_pose()
    cam_pts = obj @ marker_in_camera[:3, :3].T + marker_in_camera[:3, 3]
    projected = cam_pts[:, :2] / cam_pts[:, 2:] * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
    assert np.abs(projected - corners).max() < 1.0, (projected, corners)


def test_marker_is_fixed_on_the_hand_and_left_out_of_the_clouds(env):
    mounting = env.marker_in_ee()
    env.set_ee_target(np.array([0.5, 0.15, 0.02]))
    for _ in range(50):
        env.simulate(0.02)
    np.testing.assert_allclose(env.marker_in_ee(), mounting, atol=1e-9)
    # facing the cameras (base +x, up) with the gripper down
    normal = env.marker_pose()[:3, 2]
    assert normal[0] > 0.6 and normal[2] > 0.6
    # clouds leave it out with the arm's meshes; drawn, it is black and white (never the puck's orange)
    position = env.marker_pose()[:3, 3]
    for render_arm in (False, True):
        cloud = env.point_cloud("camera1", 424, 240, render_arm=render_arm)
        near = np.linalg.norm(cloud.in_base_frame() - position, axis=1) < 0.5 * MARKER_LENGTH
        assert near.any() == render_arm
        if render_arm:
            rgb = cloud.rgb[near].astype(int)
            orange = (rgb[:, 0] > 150) & (rgb[:, 0] - rgb[:, 2] > 100)
            assert not orange.any()


def test_intrinsics_invert_the_clouds_back_projection(env):
    cloud = env.point_cloud("camera1", 212, 120)
    _, k = env.color_image("camera1", 212, 120)
    uv = cloud.xyz[:, :2] / cloud.xyz[:, 2:] * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
    np.testing.assert_allclose(uv - np.round(uv), 0.0, atol=1e-3)  # pixel centres at integers (ROS convention)
    assert uv.min() > -0.5 and uv[:, 0].max() < 211.5 and uv[:, 1].max() < 119.5


def test_color_messages_are_realsense_shaped():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    k = np.array([[5.0, 0, 3.5], [0, 5.0, 2.5], [0, 0, 1]])
    image, info = color_messages(rgb, k, color_optical_frame("camera1"), TimeMsg(sec=3, nanosec=5))
    assert (image.encoding, image.width, image.height, image.step) == ("rgb8", 8, 6, 24)
    np.testing.assert_array_equal(np.frombuffer(bytes(image.data), np.uint8).reshape(6, 8, 3), rgb)
    assert image.header.frame_id == info.header.frame_id == "camera1_color_optical_frame"
    assert info.header.stamp == image.header.stamp
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), k)
    assert list(info.d) == [0.0] * 5 and info.distortion_model == "plumb_bob"
    assert color_image_topic("camera1") == "/camera1/camera1/color/image_raw"
    assert color_info_topic("camera2") == "/camera2/camera2/color/camera_info"


def test_image_size_is_validated():
    values = SimRobotParameters.defaults()
    assert SimRobotParameters.from_values(values).image_size == (848, 480)
    with pytest.raises(ValueError, match="image_width"):
        SimRobotParameters.from_values({**values, "image_width": 4000})
