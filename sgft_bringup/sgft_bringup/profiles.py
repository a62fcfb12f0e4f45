"""Robot and camera interface profiles (config/profiles/<name>.yaml): the upstream drivers' names, types, QoS and
frames, each with the release it was read from, and the node parameters they give.

    python -m sgft_bringup.profiles crisp            # validate a profile, print the node parameters it gives
    python -m sgft_bringup.profiles --list

A missing or unknown key is refused with the field's name, so a typo never falls back to a default topic.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sgft_core.tasks import TASKS


class ProfileError(ValueError):
    """A profile that cannot be used: names the field (or the task it cannot serve)."""


RELIABILITIES = ("best_effort", "reliable")
ROBOT_KEYS = {"name", "kind", "description", "base_frame", "state", "cartesian_target", "cartesian_target_unavailable",
              "joint_target", "controllers", "bringup", "unverified"}
ROBOT_OPTIONAL = {"cartesian_target_unavailable", "unverified"}
CAMERA_KEYS = {"name", "kind", "description", "cloud", "driver", "depth_profile", "decimation"}
STATE_KEYS = {"pose", "joint_state", "frame_id", "qos", "rate_hz", "rate_parameter", "source"}
TOPIC_KEYS = {"topic", "type"}
QOS_KEYS = {"reliability", "depth"}
CARTESIAN_KEYS = {"topic", "type", "qos", "controller", "single_publisher", "source"}
JOINT_KEYS = {"topic", "type", "qos", "controller", "joint_names", "source"}
CONTROLLER_KEYS = {"cartesian", "joint", "source"}
SWITCH_KEYS = {"spawn", "activate", "deactivate"}
BRINGUP_KEYS = {"package", "launch_file", "arguments", "source"}
CLOUD_KEYS = {"topic_pattern", "type", "frame_id_pattern", "qos", "source"}
DRIVER_KEYS = {"package", "launch_file", "arguments", "serial_prefix", "source"}
DRIVER_ARGUMENTS = {"camera_name", "camera_namespace", "serial_no", "pointcloud", "depth_profile", "decimation"}


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str  # "robot" or "camera"
    data: dict
    path: Path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def profiles_dir() -> Path:
    from sgft_bringup.graph import share_dir  # graph imports this module

    return share_dir() / "config" / "profiles"


def available() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def check_keys(section: Any, where: str, required: set[str], optional: set[str] = frozenset(),
               error: type[ValueError] = ProfileError) -> dict:
    """`section` as a mapping with exactly the `required` keys (less the `optional` ones it may leave out); `error`
    naming the field otherwise. Profiles and site files share it."""
    if not isinstance(section, dict):
        raise error(f"{where}: expected a mapping, got {type(section).__name__}")
    missing = sorted(required - optional - set(section))
    if missing:
        raise error(f"{where}: missing {', '.join(f'{where}.{k}' for k in missing)}")
    unknown = sorted(set(section) - required)
    if unknown:
        raise error(f"{where}: unknown {', '.join(f'{where}.{k}' for k in unknown)} (known: "
                    f"{', '.join(sorted(required))})")
    return section



def _string(value: Any, where: str, absolute_topic: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{where}: expected a non-empty string, got {value!r}")
    if absolute_topic and not value.startswith("/"):
        raise ProfileError(f"{where}: expected an absolute topic name (starting with /), got {value!r}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError(f"{where}: expected a list of strings, got {value!r}")
    return value


def _qos(section: Any, where: str) -> None:
    check_keys(section, where, QOS_KEYS)
    if section["reliability"] not in RELIABILITIES:
        raise ProfileError(f"{where}.reliability: expected one of {RELIABILITIES}, got {section['reliability']!r}")
    if not isinstance(section["depth"], int) or isinstance(section["depth"], bool) or section["depth"] < 1:
        raise ProfileError(f"{where}.depth: expected an integer >= 1, got {section['depth']!r}")


def _message_type(value: Any, where: str, expected: str) -> None:
    if value != expected:
        raise ProfileError(f"{where}: the suite speaks {expected}, got {value!r}")


def _validate_robot(data: dict) -> None:
    check_keys(data, "profile", ROBOT_KEYS, ROBOT_OPTIONAL)
    _string(data["description"], "description")
    _string(data["base_frame"], "base_frame")
    state = check_keys(data["state"], "state", STATE_KEYS)
    check_keys(state["pose"], "state.pose", TOPIC_KEYS)
    _string(state["pose"]["topic"], "state.pose.topic", absolute_topic=True)
    _message_type(state["pose"]["type"], "state.pose.type", "geometry_msgs/msg/PoseStamped")
    check_keys(state["joint_state"], "state.joint_state", TOPIC_KEYS)
    _string(state["joint_state"]["topic"], "state.joint_state.topic", absolute_topic=True)
    _message_type(state["joint_state"]["type"], "state.joint_state.type", "sensor_msgs/msg/JointState")
    _string(state["frame_id"], "state.frame_id")
    _qos(state["qos"], "state.qos")
    rate = state["rate_hz"]
    if rate is not None and (not isinstance(rate, int | float) or isinstance(rate, bool) or not 1.0 <= rate <= 1000.0):
        raise ProfileError(f"state.rate_hz: expected null or a rate in [1, 1000] Hz, got {rate!r}")
    if state["rate_parameter"] is not None:
        _string(state["rate_parameter"], "state.rate_parameter")
    _string(state["source"], "state.source")

    cartesian = data["cartesian_target"]
    if cartesian is None:
        _string(data.get("cartesian_target_unavailable"), "cartesian_target_unavailable")
    else:
        check_keys(cartesian, "cartesian_target", CARTESIAN_KEYS)
        _string(cartesian["topic"], "cartesian_target.topic", absolute_topic=True)
        _message_type(cartesian["type"], "cartesian_target.type", "geometry_msgs/msg/PoseStamped")
        _qos(cartesian["qos"], "cartesian_target.qos")
        _string(cartesian["controller"], "cartesian_target.controller")
        if not isinstance(cartesian["single_publisher"], bool):
            raise ProfileError("cartesian_target.single_publisher: expected true or false")
        _string(cartesian["source"], "cartesian_target.source")
        if "cartesian_target_unavailable" in data:
            raise ProfileError("cartesian_target_unavailable: only for a profile whose cartesian_target is null")

    joint = data["joint_target"]
    if joint is not None:
        check_keys(joint, "joint_target", JOINT_KEYS)
        _string(joint["topic"], "joint_target.topic", absolute_topic=True)
        _message_type(joint["type"], "joint_target.type", "trajectory_msgs/msg/JointTrajectory")
        _qos(joint["qos"], "joint_target.qos")
        _string(joint["controller"], "joint_target.controller")
        names = _strings(joint["joint_names"], "joint_target.joint_names")
        from sgft_core.fr3 import JOINT_NAMES

        if tuple(names) != JOINT_NAMES:
            raise ProfileError(f"joint_target.joint_names: expected the FR3's {list(JOINT_NAMES)}, got {names}")
        _string(joint["source"], "joint_target.source")

    controllers = check_keys(data["controllers"], "controllers", CONTROLLER_KEYS)
    for kind, target in (("cartesian", cartesian), ("joint", joint)):
        section = controllers[kind]
        where = f"controllers.{kind}"
        if section is None:
            if target is not None:
                raise ProfileError(f"{where}: null, but {kind}_target is set")
            continue
        check_keys(section, where, SWITCH_KEYS)
        if not isinstance(section["spawn"], list):
            raise ProfileError(f"{where}.spawn: expected a list of spawner argument lists")
        for i, args in enumerate(section["spawn"]):
            _strings(args, f"{where}.spawn[{i}]")
        _strings(section["activate"], f"{where}.activate")
        _strings(section["deactivate"], f"{where}.deactivate")
    _string(controllers["source"], "controllers.source")

    bringup = data["bringup"]
    if bringup is not None:
        check_keys(bringup, "bringup", BRINGUP_KEYS)
        _string(bringup["package"], "bringup.package")
        _string(bringup["launch_file"], "bringup.launch_file")
        if not isinstance(bringup["arguments"], dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in bringup["arguments"].items()):
            raise ProfileError("bringup.arguments: expected a mapping of launch argument names to strings")
        if "{robot_ip}" not in bringup["arguments"].values():
            raise ProfileError("bringup.arguments: no argument takes \"{robot_ip}\"")
        _string(bringup["source"], "bringup.source")
    unverified = data.get("unverified", {})
    if not isinstance(unverified, dict) or not all(isinstance(v, str) for v in unverified.values()):
        raise ProfileError("unverified: expected a mapping of field names to reasons")


def _validate_camera(data: dict) -> None:
    check_keys(data, "profile", CAMERA_KEYS)
    _string(data["description"], "description")
    cloud = check_keys(data["cloud"], "cloud", CLOUD_KEYS)
    for key in ("topic_pattern", "frame_id_pattern"):
        _string(cloud[key], f"cloud.{key}")
    if "{camera_name}" not in cloud["frame_id_pattern"] or "{camera_name}" not in cloud["topic_pattern"]:
        raise ProfileError("cloud: topic_pattern and frame_id_pattern must contain {camera_name}")
    _message_type(cloud["type"], "cloud.type", "sensor_msgs/msg/PointCloud2")
    _qos(cloud["qos"], "cloud.qos")
    _string(cloud["source"], "cloud.source")
    driver = check_keys(data["driver"], "driver", DRIVER_KEYS)
    _string(driver["package"], "driver.package")
    _string(driver["launch_file"], "driver.launch_file")
    arguments = check_keys(driver["arguments"], "driver.arguments", DRIVER_ARGUMENTS)
    for key, value in arguments.items():
        _string(value, f"driver.arguments.{key}")
    if not isinstance(driver["serial_prefix"], str):
        raise ProfileError("driver.serial_prefix: expected a string")
    _string(driver["source"], "driver.source")
    profile = data["depth_profile"]
    parts = profile.split("x") if isinstance(profile, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ProfileError(f"depth_profile: expected WIDTHxHEIGHTxFPS, got {profile!r}")
    if not isinstance(data["decimation"], bool):
        raise ProfileError("decimation: expected true or false")


def load_profile(name_or_path: str | os.PathLike, kind: str | None = None) -> Profile:
    """A profile by name (config/profiles/<name>.yaml) or path, validated; ProfileError names the bad field."""
    text = str(name_or_path)
    path = Path(text) if text.endswith((".yaml", ".yml")) or os.sep in text else profiles_dir() / f"{text}.yaml"
    if not path.is_file():
        raise ProfileError(f"no profile {text!r} ({path} does not exist; shipped: {', '.join(available())})")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ProfileError(f"profile {path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping")
    try:
        if data.get("kind") not in ("robot", "camera"):
            raise ProfileError(f"kind: expected 'robot' or 'camera', got {data.get('kind')!r}")
        if kind is not None and data["kind"] != kind:
            raise ProfileError(f"kind: a {kind} profile is needed here, {path.name} is a {data['kind']} profile")
        _string(data.get("name"), "name")
        if data["name"] != path.stem:
            raise ProfileError(f"name: {data['name']!r} differs from the file name {path.stem!r}")
        (_validate_robot if data["kind"] == "robot" else _validate_camera)(data)
    except ProfileError as err:
        raise ProfileError(f"profile {path}: {err}") from None
    return Profile(data["name"], data["kind"], data, path)


def require_action_kind(profile: Profile, task: str) -> None:
    """Refuse a task whose action kind the profile has no target for, saying what to use instead."""
    kind = TASKS[task].action_kind
    if kind == "cartesian" and profile["cartesian_target"] is None:
        raise ProfileError(
            f"profile {profile.name} cannot run {task}: {task} streams Cartesian pose targets and "
            f"{profile['cartesian_target_unavailable'].strip()}. Use the crisp profile (crisp_controllers' "
            f"cartesian_impedance_controller on franka_ros2): --profile crisp / robot_profile: crisp")
    if kind == "joint" and profile["joint_target"] is None:
        raise ProfileError(f"profile {profile.name} cannot run {task}: it has no joint_target")


def camera_topic(camera: Profile, camera_name: str, camera_namespace: str | None = None) -> str:
    return camera["cloud"]["topic_pattern"].format(camera_name=camera_name,
                                                  camera_namespace=camera_namespace or camera_name)


def camera_frame(camera: Profile, camera_name: str) -> str:
    return camera["cloud"]["frame_id_pattern"].format(camera_name=camera_name)


def node_parameters(robot: Profile, task: str | None = None, camera: Profile | None = None,
                    camera_names: list[str] | None = None) -> dict[str, dict]:
    """The agreed node parameters a robot profile (and a camera profile with the site's camera names) gives. With a
    task, a profile without the target that task needs is refused."""
    if task is not None:
        require_action_kind(robot, task)
    state = robot["state"]
    common = {"robot_pose_topic": state["pose"]["topic"], "joint_state_topic": state["joint_state"]["topic"],
              "base_frame": robot["base_frame"]}
    if robot["cartesian_target"] is not None:
        common["cartesian_target_topic"] = robot["cartesian_target"]["topic"]
    if robot["joint_target"] is not None:
        common["joint_trajectory_topic"] = robot["joint_target"]["topic"]
    sim_robot = dict(common, state_reliability=state["qos"]["reliability"])
    if state["rate_hz"] is not None:  # the rate the robot's state arrives at; else the sim keeps its own
        sim_robot["state_rate_hz"] = float(state["rate_hz"])
    # crisp's controller ignores targets while its topic has more than one publisher: the policy's goes between
    # episodes, when the reset server homes the arm on the same topic
    single = bool((robot["cartesian_target"] or {}).get("single_publisher", False))
    params = {"sgft_policy": dict(common, command_publisher_per_episode=single), "sgft_sim_robot": sim_robot,
              "sgft_finetune_session": {"robot_pose_topic": state["pose"]["topic"]},
              "sgft_learner": {"base_frame": robot["base_frame"]},  # the heatmap's frame
              "sgft_recorder": {k: v for k, v in common.items() if k != "base_frame"},
              # detections in the frame the policy checks them against
              "sgft_perception": {"output_frame": robot["base_frame"]}}
    if camera is not None and camera_names:
        params["sgft_perception"] |= {"cloud_topics": [camera_topic(camera, n) for n in camera_names],
                                      "cloud_frame_ids": [camera_frame(camera, n) for n in camera_names]}
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", nargs="?", help="profile name or path")
    parser.add_argument("--task", choices=TASKS, help="also check the profile can serve this task")
    parser.add_argument("--list", action="store_true", help="list the shipped profiles")
    args = parser.parse_args(argv)
    if args.list or not args.profile:
        print("\n".join(available()))
        return 0
    try:
        profile = load_profile(args.profile)
        if profile.kind == "robot":
            out = node_parameters(profile, args.task)
        else:
            out = {"sgft_perception": node_parameters(load_profile("sim"), None, profile, ["camera1"])
                   ["sgft_perception"]}
    except ProfileError as err:
        print(f"profiles: {err}", file=sys.stderr)
        return 2
    print(yaml.safe_dump(out, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
