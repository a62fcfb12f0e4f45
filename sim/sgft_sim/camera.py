"""Simulated RealSense views of the table: off-screen RGB + depth rendered into a colored point cloud.

Two fixed cameras look at the workspace from the front-left and front-right, as the two D455s do on the real
setup. Each also renders a color image (rgb8) with its pinhole intrinsics, as the driver's color stream and
camera_info; the sim's color and depth optical frames coincide (a D455's differ by its factory extrinsics). The
cloud is expressed like realsense2_camera's: in the camera's optical frame (x right, y down, z forward),
metres, with the camera→base transform alongside (on the real robot that is the calibration input). Off-screen
rendering needs an OpenGL backend without a display: set MUJOCO_GL=osmesa (or egl) before mujoco is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from sgft_sim.robot import MARKER_GROUP

CAMERA_NAMES = ("camera1", "camera2")
# D455 depth: 87° × 58° field of view; MuJoCo takes the vertical one. Aimed at the middle of the push workspace.
CAMERA_FOVY_DEG = 58.0
CAMERAS_XML = f"""
    <body name="camera_target" pos="0.48 0 0"/>
    <camera name="camera1" pos="1.15 -0.55 0.65" mode="targetbody" target="camera_target" fovy="{CAMERA_FOVY_DEG}"/>
    <camera name="camera2" pos="1.15 0.55 0.65" mode="targetbody" target="camera_target" fovy="{CAMERA_FOVY_DEG}"/>
"""
# The arm's visual meshes (links, hand, finger shells: class "panda_viz"/"panda_finger" in robot.py) are geom group 1;
# tools, table and task objects are group 0 and collision-only helpers group 3 (hidden by MuJoCo's default anyway).
ARM_VISUAL_GROUP = 1
MAX_RANGE = 3.0  # m; farther pixels are background (a D455 reports nothing useful beyond a few metres either)


# realsense2_camera 4.x names under /<camera_namespace>/<camera_name>/ (the sim uses namespace = name, as the graph's
# cloud topics do). sgft_interfaces.Topics holds the cloud topics; these could join them there.
def color_image_topic(camera: str) -> str:
    return f"/{camera}/{camera}/color/image_raw"


def color_info_topic(camera: str) -> str:
    return f"/{camera}/{camera}/color/camera_info"


def color_optical_frame(camera: str) -> str:
    return f"{camera}_color_optical_frame"


def depth_optical_frame(camera: str) -> str:
    return f"{camera}_depth_optical_frame"


# MuJoCo cameras look along −z with y up; the optical frame looks along +z with y down.
_MUJOCO_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


@dataclass
class PointCloud:
    xyz: np.ndarray  # (N, 3) float32, optical frame of the camera
    rgb: np.ndarray  # (N, 3) uint8
    camera_to_base: np.ndarray  # (4, 4) float64: p_base = R @ p_optical + t
    width: int
    height: int

    def in_base_frame(self) -> np.ndarray:
        return self.xyz @ self.camera_to_base[:3, :3].T.astype(np.float32) + self.camera_to_base[:3, 3].astype(
            np.float32)


def camera_to_base(model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> np.ndarray:
    cam = model.camera(camera).id
    transform = np.eye(4)
    transform[:3, :3] = data.cam_xmat[cam].reshape(3, 3) @ _MUJOCO_TO_OPTICAL
    transform[:3, 3] = data.cam_xpos[cam]
    return transform


def render_point_cloud(renderer: mujoco.Renderer, model: mujoco.MjModel, data: mujoco.MjData,
                       camera: str, render_arm: bool = False) -> PointCloud:
    """Render `camera` (RGB, then depth) with `renderer` and back-project every valid pixel.

    `render_arm=False` (default) leaves the arm's visual meshes (geom group ARM_VISUAL_GROUP) out of the picture:
    with osmesa they are most of the render time (424×240 RGB + depth: ≈117 ms with them, ≈23 ms without). The
    trade: the cloud has no arm points and the arm never occludes the object, as it can on a real camera; the tool
    (push finger, hammer, insert leg), the table and the objects are still rendered. Pass True for a faithful view.
    """
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    scene_option = mujoco.MjvOption()
    if not render_arm:
        scene_option.geomgroup[ARM_VISUAL_GROUP] = 0
        scene_option.geomgroup[MARKER_GROUP] = 0  # the calibration marker is arm hardware too
    renderer.update_scene(data, camera=camera, scene_option=scene_option)
    rgb = renderer.render()
    renderer.enable_depth_rendering()
    try:
        depth = renderer.render()
    finally:
        renderer.disable_depth_rendering()
    height, width = depth.shape
    fovy = math.radians(model.cam_fovy[model.camera(camera).id])
    focal = 0.5 * height / math.tan(0.5 * fovy)
    u = (np.arange(width, dtype=np.float32) + 0.5 - 0.5 * width) / focal
    v = (np.arange(height, dtype=np.float32) + 0.5 - 0.5 * height) / focal
    valid = (depth > 0.0) & (depth < MAX_RANGE)
    z = depth[valid].astype(np.float32)
    rows, cols = np.nonzero(valid)
    xyz = np.stack([u[cols] * z, v[rows] * z, z], axis=1)
    return PointCloud(xyz=xyz, rgb=rgb[valid], camera_to_base=camera_to_base(model, data, camera), width=width,
                      height=height)


def intrinsics(model: mujoco.MjModel, camera: str, width: int, height: int) -> np.ndarray:
    """The 3×3 pinhole matrix K of a `width`×`height` render of `camera` (square pixels, vertical field of view
    fovy), with the principal point in the ROS/OpenCV convention (pixel centres at integers): the projection that
    render_point_cloud inverts."""
    focal = 0.5 * height / math.tan(0.5 * math.radians(model.cam_fovy[model.camera(camera).id]))
    return np.array([[focal, 0.0, 0.5 * (width - 1)], [0.0, focal, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])


def render_color(renderer: mujoco.Renderer, model: mujoco.MjModel, data: mujoco.MjData, camera: str,
                 render_arm: bool = True) -> np.ndarray:
    """The (height, width, 3) uint8 RGB image of `camera`, row 0 at the top, as a color stream delivers it. The
    calibration marker is always drawn; the arm's meshes unless render_arm=False (cheaper, see render_point_cloud,
    but then nothing occludes the marker)."""
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    scene_option = mujoco.MjvOption()
    scene_option.geomgroup[ARM_VISUAL_GROUP] = int(render_arm)
    scene_option.geomgroup[MARKER_GROUP] = 1
    renderer.update_scene(data, camera=camera, scene_option=scene_option)
    return renderer.render().copy()
