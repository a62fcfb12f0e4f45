"""Camera calibration: the solver on synthetic data, its refusals, image conversion, the site file, and one run
against the simulated robot."""

import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml
from sensor_msgs.msg import CameraInfo, Image
from transforms3d.euler import euler2mat

from sgft_bringup.calibrate import (
    EXIT_BAD_INPUT,
    CalibrationError,
    Observation,
    calibration_poses,
    camera_model,
    image_to_rgb,
    main,
    marker_object_points,
    pose_error,
    pose_matrix,
    solve_camera_pose,
    to_xyz_quat,
    write_site,
)
from sgft_core.tasks import get_task

K = np.array([[433.0, 0.0, 423.5], [0.0, 433.0, 239.5], [0.0, 0.0, 1.0]])
LENGTH = 0.08


def _pose(rotation, translation):
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


CAMERA = _pose(euler2mat(-2.2, 0.0, 2.2), [1.15, -0.55, 0.65])  # looking back at the table from the front right
MARKER_IN_EE = _pose(euler2mat(-2.356, 0.0, 0.0), [0.07, 0.0, 0.085])
GRIPPER_DOWN = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def _observations(noise_px, rng, camera=CAMERA, marker_in_ee=MARKER_IN_EE):
    out = []
    for xyz in calibration_poses(get_task("push"), 8):
        ee = _pose(GRIPPER_DOWN, xyz)
        corners = (np.hstack([marker_object_points(LENGTH), np.ones((4, 1))]) @ (ee @ marker_in_ee).T)[:, :3]
        in_cam = corners @ np.linalg.inv(camera)[:3, :3].T + np.linalg.inv(camera)[:3, 3]
        pixels = in_cam[:, :2] / in_cam[:, 2:] @ np.diag([K[0, 0], K[1, 1]]) + K[:2, 2]
        out.append(Observation(ee, pixels + rng.normal(0.0, noise_px, pixels.shape)))
    return out


def test_known_transform_is_recovered_from_noisy_corners():
    solution = solve_camera_pose(_observations(0.3, np.random.default_rng(0)), K, np.zeros(5), MARKER_IN_EE, LENGTH)
    mm, deg = pose_error(solution.camera_pose, CAMERA)
    assert mm < 3.0 and deg < 0.2, (mm, deg)
    assert 0.1 < solution.rms_px < 0.6
    assert len(solution.residuals) == 8 and all(r.reprojection_px < 1.5 for r in solution.residuals)
    # the site file's layout round-trips to the same pose
    x = to_xyz_quat(solution.camera_pose)
    np.testing.assert_allclose(pose_matrix(x[:3], x[3:]), solution.camera_pose, atol=1e-5)


def test_exact_corners_give_the_exact_transform():
    solution = solve_camera_pose(_observations(0.0, np.random.default_rng(1)), K, np.zeros(5), MARKER_IN_EE, LENGTH)
    mm, deg = pose_error(solution.camera_pose, CAMERA)
    assert mm < 0.01 and deg < 0.001


def test_too_few_detections_are_refused():
    observations = _observations(0.3, np.random.default_rng(2))[:3]
    with pytest.raises(CalibrationError, match="detected in 3 poses; at least 6"):
        solve_camera_pose(observations, K, np.zeros(5), MARKER_IN_EE, LENGTH, min_observations=6)


def test_a_wrong_mounting_shows_as_residuals_over_the_threshold():
    observations = _observations(0.3, np.random.default_rng(3))
    wrong = MARKER_IN_EE.copy()
    wrong[:3, :3] = MARKER_IN_EE[:3, :3] @ euler2mat(0.0, 0.0, 0.3)  # the marker is rotated 17° on its plate
    with pytest.raises(CalibrationError, match=r"reprojection residual over --max-residual-px=2.0 px at observation"):
        solve_camera_pose(observations, K, np.zeros(5), wrong, LENGTH)


def test_non_rotations_are_refused():
    observations = _observations(0.3, np.random.default_rng(4))
    skewed = MARKER_IN_EE.copy()
    skewed[:3, :3] *= 1.1
    with pytest.raises(CalibrationError, match="not a rotation"):
        solve_camera_pose(observations, K, np.zeros(5), skewed, LENGTH)
    with pytest.raises(CalibrationError, match="is not a rotation"):
        pose_matrix([0, 0, 0], [0.0, 0.0, 0.0, 2.0], "--marker-in-ee")
    mirrored = np.eye(4)
    mirrored[0, 0] = -1.0
    with pytest.raises(CalibrationError, match="not a rotation"):
        to_xyz_quat(mirrored)


def test_image_conversion_by_hand():
    rgb = np.random.default_rng(5).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    padded = np.zeros((4, 18), np.uint8)  # 3 bytes of padding per row
    padded[:, :15] = rgb.reshape(4, 15)
    msg = Image(height=4, width=5, encoding="rgb8", step=18, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    bgr = Image(height=4, width=5, encoding="bgr8", step=15, data=rgb[:, :, ::-1].tobytes())
    np.testing.assert_array_equal(image_to_rgb(bgr), rgb)
    bgra = Image(height=4, width=5, encoding="bgra8", step=20,
                 data=np.dstack([rgb[:, :, ::-1], np.full((4, 5), 255, np.uint8)]).tobytes())
    np.testing.assert_array_equal(image_to_rgb(bgra), rgb)
    mono = Image(height=4, width=5, encoding="mono8", step=5, data=rgb[:, :, 0].tobytes())
    np.testing.assert_array_equal(image_to_rgb(mono)[:, :, 2], rgb[:, :, 0])
    with pytest.raises(ValueError, match="unsupported image encoding"):
        image_to_rgb(Image(height=4, width=5, encoding="16UC1", step=10, data=bytes(40)))
    with pytest.raises(ValueError, match="step 15 and 30 bytes"):
        image_to_rgb(Image(height=4, width=5, encoding="rgb8", step=15, data=bytes(30)))
    k, dist = camera_model(CameraInfo(k=K.ravel().tolist(), d=[0.0] * 5, distortion_model="plumb_bob"))
    np.testing.assert_allclose(k, K)
    with pytest.raises(ValueError, match="no usable intrinsics"):
        camera_model(CameraInfo())
    # what OpenCV's own conversion gives for the same bytes
    np.testing.assert_array_equal(cv2.cvtColor(image_to_rgb(bgr), cv2.COLOR_RGB2BGR), rgb[:, :, ::-1])


def test_site_file_keeps_everything_else(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"site": {
        "robot_profile": "crisp", "robot_ip": "172.16.0.2", "lab_note": {"kept": True},
        "cameras": [{"name": "camera1", "serial": "123456789012", "extrinsics": [0, 0, 0, 0, 0, 0, 1]},
                    {"name": "camera2", "serial": "2", "extrinsics": [1, 1, 1, 0, 0, 0, 1]}],
        "perception": {"hsv_min": [15, 0.6, 0.3], "hsv_max": [45, 1, 1], "table_height": 0.0},
        "home_joints": [0, 0, 0, -2, 0, 2, 0.8]}}, sort_keys=False))
    write_site(site, "camera2", [0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0])
    data = yaml.safe_load(site.read_text())["site"]
    assert data["cameras"][1] == {"name": "camera2", "serial": "2", "extrinsics": [0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0]}
    assert data["cameras"][0]["extrinsics"] == [0, 0, 0, 0, 0, 0, 1]
    assert data["lab_note"] == {"kept": True} and data["robot_ip"] == "172.16.0.2"
    assert list(tmp_path.iterdir()) == [site]  # no temporary file left behind
    write_site(tmp_path / "new.yaml", "camera1", [0, 0, 0, 0, 0, 0, 1])
    assert yaml.safe_load((tmp_path / "new.yaml").read_text()) == {
        "site": {"cameras": [{"name": "camera1", "extrinsics": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]}]}}
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(CalibrationError, match="not a site file"):
        write_site(tmp_path / "bad.yaml", "camera1", [0, 0, 0, 0, 0, 0, 1])


def test_poses_lie_inside_the_envelope():
    for task in ("push", "insert"):
        spec = get_task(task)
        poses = calibration_poses(spec, 8)
        assert len(poses) == 8 and len({tuple(p) for p in poses}) == 8
        for p in poses:
            assert np.all(p >= spec.workspace_low) and np.all(p <= spec.workspace_high)
            if spec.ee_height is not None:
                assert p[2] == spec.ee_height


def test_bad_command_lines_exit_2_and_write_nothing(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    assert main(["--task", "hammer", "--site", str(site)]) == EXIT_BAD_INPUT
    assert "commands joints" in capsys.readouterr().err
    assert main(["--site", str(site)]) == EXIT_BAD_INPUT
    assert "--marker-in-ee is required" in capsys.readouterr().err
    assert main(["--site", str(site), "--marker-in-ee", "0", "0", "0", "0", "0", "0", "3"]) == EXIT_BAD_INPUT
    assert "not a rotation" in capsys.readouterr().err
    assert not site.exists()


def test_sim_run_end_to_end(tmp_path):
    """The whole tool against the simulated robot (a subprocess it starts): about a minute here."""
    site = tmp_path / "site.yaml"
    site.write_text("site:\n  robot_profile: crisp\n  cameras:\n  - {name: camera1, serial: '1', extrinsics: "
                    "[0, 0, 0, 0, 0, 0, 1]}\n")
    env = dict(os.environ, ROS_DOMAIN_ID=str(100 + os.getpid() % 100))  # no cross-talk with other test runs
    result = subprocess.run([sys.executable, "-m", "sgft_bringup.calibrate", "--sim", "--task", "push",
                             "--site", str(site), "--poses", "6", "--min-detections", "5"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"^calibration error: ([0-9.]+) mm, ([0-9.]+) deg$", result.stdout, re.M)
    assert match, result.stdout
    assert float(match.group(1)) <= 5.0 and float(match.group(2)) <= 0.5, match.group(0)
    data = yaml.safe_load(site.read_text())["site"]
    assert data["robot_profile"] == "crisp" and data["cameras"][0]["serial"] == "1"
    extrinsics = data["cameras"][0]["extrinsics"]
    np.testing.assert_allclose(extrinsics[:3], [1.15, -0.55, 0.65], atol=0.005)
