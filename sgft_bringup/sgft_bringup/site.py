"""A lab's site file: what belongs to one robot cell, not to a task or the simulator (config/site_template.yaml
documents it). Real mode needs one; its values override the task YAML's in the graph.

    python -m sgft_bringup.site my_site.yaml --task push     # validate, print the overrides it gives

`load_site` refuses a missing or unknown key, extrinsics that are not x y z + a unit quaternion, a home pose outside
the FR3's joint limits, a home position outside the task's box, start scenes that are not x y pairs, or a workspace box
wider than the task's, naming the field.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from sgft_bringup.profiles import ProfileError, check_keys, load_profile, node_parameters
from sgft_core import fr3
from sgft_core.tasks import TASKS


class SiteError(ValueError):
    """A site file that cannot be used; the message names the field."""


SITE_KEYS = {"robot_profile", "robot_ip", "cameras", "perception", "workspace_low", "workspace_high", "home_joints",
             "home_position", "start_scenes"}
SITE_OPTIONAL = {"workspace_low", "workspace_high", "home_position", "start_scenes"}
CAMERA_KEYS = {"name", "serial", "extrinsics"}
PERCEPTION_KEYS = {"hsv_min", "hsv_max", "table_height"}
CAMERA_PROFILE = "realsense"
QUATERNION_TOLERANCE = 1e-3
SIM_TOLERANCE = 1e-4  # extrinsics this close to the simulator's camera are the simulator's, not a calibration
PLACEHOLDER = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # site_template.yaml's extrinsics


@dataclass(frozen=True)
class Camera:
    name: str
    serial: str
    extrinsics: tuple[float, ...]  # x y z qx qy qz qw: the optical frame in the robot base frame


@dataclass(frozen=True)
class Site:
    path: Path
    robot_profile: str
    robot_ip: str
    cameras: tuple[Camera, ...]
    hsv_min: tuple[float, float, float]
    hsv_max: tuple[float, float, float]
    table_height: float
    workspace_low: tuple[float, float, float] | None
    workspace_high: tuple[float, float, float] | None
    home_joints: tuple[float, ...]
    # the end effector's home (Cartesian tasks' reset); None: the task YAML's
    home_position: tuple[float, float, float] | None = None
    # object x, y of each start scene the operator sets up for evaluation episodes (ResetEpisode.scene)
    start_scenes: tuple[tuple[float, float], ...] = ()


def _keys(section, where: str, required: set[str], optional: set[str] = frozenset()) -> dict:
    return check_keys(section, where, required, optional, error=SiteError)


def _numbers(value, where: str, n: int) -> tuple[float, ...]:
    if (not isinstance(value, list) or len(value) != n
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not np.all(np.isfinite(value))):
        raise SiteError(f"{where}: expected {n} finite numbers, got {value!r}")
    return tuple(float(v) for v in value)


def load_site(path: str | os.PathLike, task: str | None = None) -> Site:
    """The site file, validated (against the task's workspace box when a task is given)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SiteError(f"no site file {path} (start from sgft_bringup/config/site_template.yaml)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise SiteError(f"site file {path}: not valid YAML: {err}") from None
    try:
        site = _parse(_keys(raw, "top level", {"site"})["site"], path)
        if task is not None:
            check_workspace(site, task)
    except SiteError as err:
        raise SiteError(f"site file {path}: {err}") from None
    return site


def _parse(data, path: Path) -> Site:
    data = _keys(data, "site", SITE_KEYS, SITE_OPTIONAL)
    profile = data["robot_profile"]
    try:
        load_profile(profile, kind="robot") if isinstance(profile, str) and profile else None
    except ProfileError as err:
        raise SiteError(f"site.robot_profile: {err}") from None
    if not isinstance(profile, str) or not profile:
        raise SiteError(f"site.robot_profile: expected a profile name, got {profile!r}")
    try:
        robot_ip = str(ipaddress.ip_address(str(data["robot_ip"])))
    except ValueError:
        robot_ip = str(data["robot_ip"])
        if not robot_ip or any(c.isspace() for c in robot_ip):
            raise SiteError(f"site.robot_ip: expected an IP address or host name, got {data['robot_ip']!r}") from None
    cameras = data["cameras"]
    if not isinstance(cameras, list) or not cameras:
        raise SiteError("site.cameras: expected a list of at least one camera")
    parsed = []
    for i, cam in enumerate(cameras):
        where = f"site.cameras[{i}]"
        cam = _keys(cam, where, CAMERA_KEYS)
        name = cam["name"]
        if not isinstance(name, str) or not name.isidentifier():
            raise SiteError(f"{where}.name: expected a camera name (letters, digits, _), got {name!r}")
        serial = cam["serial"]
        if not isinstance(serial, str) or not serial.isdigit():
            raise SiteError(f"{where}.serial: expected the serial number's digits as a quoted string, got "
                            f"{serial!r}")
        extrinsics = _numbers(cam["extrinsics"], f"{where}.extrinsics", 7)
        norm = float(np.linalg.norm(extrinsics[3:]))
        if abs(norm - 1.0) > QUATERNION_TOLERANCE:
            raise SiteError(f"{where}.extrinsics: x y z qx qy qz qw needs a unit quaternion, its norm is "
                            f"{norm:.4f}")
        parsed.append(Camera(name, serial, extrinsics))
    names = [c.name for c in parsed]
    if len(set(names)) != len(names):
        raise SiteError(f"site.cameras: camera names must differ, got {names}")
    perception = _keys(data["perception"], "site.perception", PERCEPTION_KEYS)
    hsv_min = _numbers(perception["hsv_min"], "site.perception.hsv_min", 3)
    hsv_max = _numbers(perception["hsv_max"], "site.perception.hsv_max", 3)
    for key, hsv in (("hsv_min", hsv_min), ("hsv_max", hsv_max)):
        if not (0.0 <= hsv[0] <= 360.0 and 0.0 <= hsv[1] <= 1.0 and 0.0 <= hsv[2] <= 1.0):
            raise SiteError(f"site.perception.{key}: expected hue in [0, 360], saturation and value in [0, 1], "
                            f"got {list(hsv)}")
    table = _numbers([perception["table_height"]], "site.perception.table_height", 1)[0]
    low = _numbers(data["workspace_low"], "site.workspace_low", 3) if "workspace_low" in data else None
    high = _numbers(data["workspace_high"], "site.workspace_high", 3) if "workspace_high" in data else None
    if (low is None) != (high is None):
        raise SiteError("site.workspace_low/workspace_high: give both or neither")
    if low is not None and not np.all(np.less(low, high)):
        raise SiteError(f"site.workspace_low: must be below workspace_high on every axis ({low} vs {high})")
    home = _numbers(data["home_joints"], "site.home_joints", len(fr3.JOINT_NAMES))
    outside = [f"{fr3.JOINT_NAMES[i]}={q:.4f} not in [{fr3.JOINT_LOW[i]}, {fr3.JOINT_HIGH[i]}]"
               for i, q in enumerate(home) if not fr3.JOINT_LOW[i] <= q <= fr3.JOINT_HIGH[i]]
    if outside:
        raise SiteError(f"site.home_joints: outside the FR3's joint limits: {'; '.join(outside)}")
    home_position = _numbers(data["home_position"], "site.home_position", 3) if "home_position" in data else None
    scenes = data.get("start_scenes", [])
    if not isinstance(scenes, list):
        raise SiteError(f"site.start_scenes: expected a list of [x, y] object positions, got {scenes!r}")
    start_scenes = tuple(_numbers(xy, f"site.start_scenes[{i}]", 2) for i, xy in enumerate(scenes))
    return Site(path, profile, robot_ip, tuple(parsed), hsv_min, hsv_max, table, low, high, home, home_position,
                start_scenes)


def check_workspace(site: Site, task: str) -> None:
    """A site may only tighten the task's end-effector box: the policy was trained inside it. A home position (for a
    Cartesian task) lies inside the box, at a planar task's end-effector height."""
    spec = TASKS[task]
    if site.home_position is not None and spec.action_kind == "cartesian":
        low = spec.workspace_low if site.workspace_low is None else np.asarray(site.workspace_low)
        high = spec.workspace_high if site.workspace_high is None else np.asarray(site.workspace_high)
        home = np.asarray(site.home_position)
        if np.any(home < low - 1e-9) or np.any(home > high + 1e-9):
            raise SiteError(f"site.home_position: {list(site.home_position)} is outside {task}'s workspace box "
                            f"[{low.tolist()}, {high.tolist()}]")
        if spec.ee_height is not None and abs(home[2] - spec.ee_height) > 1e-3:
            raise SiteError(f"site.home_position: z {home[2]} differs from {task}'s end-effector height "
                            f"{spec.ee_height} (the height the policy moves at)")
    if site.workspace_low is None:
        return
    if np.any(np.asarray(site.workspace_low) < spec.workspace_low - 1e-9) or np.any(
            np.asarray(site.workspace_high) > spec.workspace_high + 1e-9):
        raise SiteError(f"site.workspace_low/workspace_high: [{list(site.workspace_low)}, "
                        f"{list(site.workspace_high)}] exceeds {task}'s box [{spec.workspace_low.tolist()}, "
                        f"{spec.workspace_high.tolist()}]; a site may only tighten it")


def _same_pose(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.max(np.abs(a[:3] - b[:3])) > SIM_TOLERANCE:
        return False
    return bool(min(np.max(np.abs(a[3:] - b[3:])), np.max(np.abs(a[3:] + b[3:]))) <= SIM_TOLERANCE)


def check_not_simulated(site: Site, simulated: list[list[float]]) -> None:
    """Refuse extrinsics equal to a simulated camera's (the task YAMLs' values) or the template's placeholder (a
    camera at the base's origin): neither is a calibration of a lab."""
    for i, cam in enumerate(site.cameras):
        if any(_same_pose(cam.extrinsics, pose) for pose in [*simulated, PLACEHOLDER]):
            raise SiteError(
                f"site file {site.path}: site.cameras[{i}].extrinsics ({cam.name}) are the simulated camera's "
                f"pose or the template's placeholder, not a calibration of your camera. Calibrate it: "
                f"python -m sgft_bringup.calibrate --site {site.path} (it writes the extrinsics into this file)")


def graph_overrides(site: Site, task: str, perception: dict | None) -> dict[str, dict]:
    """{node: {param: value}} the site gives in real mode: robot and camera names from the profiles, the cameras'
    extrinsics, the HSV range, the crop box lifted by the table height, the policy's workspace box."""
    robot = load_profile(site.robot_profile, kind="robot")
    camera = load_profile(CAMERA_PROFILE, kind="camera")
    names = [c.name for c in site.cameras]
    params = node_parameters(robot, task, camera, names if perception is not None else None)
    if perception is not None:
        section = params["sgft_perception"]
        section["extrinsics"] = [v for c in site.cameras for v in c.extrinsics]
        section["hsv_min"], section["hsv_max"] = list(site.hsv_min), list(site.hsv_max)
        # the task's crop box is above a table at z = 0 (the simulator's); a lab's table may sit elsewhere
        for key in ("box_min", "box_max"):
            if key in perception:
                box = list(perception[key])
                box[2] += site.table_height
                section[key] = box
    if site.workspace_low is not None:
        params["sgft_policy"]["workspace_low"] = list(site.workspace_low)
        params["sgft_policy"]["workspace_high"] = list(site.workspace_high)
    params["sgft_reset_server"] = reset_server_parameters(site, robot, params["sgft_policy"])
    if site.start_scenes:  # the session cycles its evaluation episodes over them
        params["sgft_finetune_session"]["start_scenes"] = [v for xy in site.start_scenes for v in xy]
    return params


def reset_server_parameters(site: Site, robot, policy: dict) -> dict:
    """The reset server's parameters from the site: the policy's topics, frame and box, the robot profile's
    single-publisher rule of its Cartesian controller, the home pose, the start scenes (flattened x y pairs) and the
    table height the scene marker sits on. Lists are only set when non-empty (a parameter file cannot type [])."""
    params = {key: policy[key] for key in ("robot_pose_topic", "joint_state_topic", "cartesian_target_topic",
                                           "joint_trajectory_topic", "base_frame", "workspace_low", "workspace_high")
              if key in policy}
    params["single_publisher"] = bool((robot["cartesian_target"] or {}).get("single_publisher", False))
    params["home_joints"] = list(site.home_joints)
    if site.home_position is not None:
        params["home_position"] = list(site.home_position)
    if site.start_scenes:
        params["start_scenes"] = [v for xy in site.start_scenes for v in xy]
    params["table_height"] = site.table_height
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", help="site YAML")
    parser.add_argument("--task", choices=TASKS, default="push")
    args = parser.parse_args(argv)
    from sgft_bringup.graph import load_config, simulated_extrinsics

    try:
        site = load_site(args.site, args.task)
        check_not_simulated(site, simulated_extrinsics())
        out = graph_overrides(site, args.task, load_config(args.task).get("sgft_perception"))
    except (SiteError, ProfileError) as err:
        print(f"site: {err}", file=sys.stderr)
        return 2
    print(yaml.safe_dump(out, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
