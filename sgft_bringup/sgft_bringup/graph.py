"""The SGFT graph, defined once: which nodes run, from which package, with which YAML section.

The launch files (`ros2 launch sgft_bringup sim_finetune.launch.py`) and `python -m sgft_bringup.run_graph` (for
machines without `ros2 launch`, like the PyPI wheels) both build the graph from `graph_nodes()`, so the two ways of
starting it cannot drift apart. Parameters, later ones winning: the task YAML, the robot profile's names
(profiles.py), in real mode the site file's values (site.py), then the caller's overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sgft_bringup.profiles import load_profile, node_parameters
from sgft_bringup.site import Site, check_not_simulated, graph_overrides, load_site
from sgft_core.fr3 import BASE_FRAME
from sgft_core.overrides import merge
from sgft_core.tasks import TASKS
from sgft_interfaces.share import installed_share

DEFAULT_PROFILE = "sim"
RESET_SERVER = "sgft_reset_server"  # real mode's ResetEpisode server (sim mode: the simulated robot serves it)
MODES = ("sim", "real", "real-sim")
# real-sim: the real-robot graph (wall clock, site file, reset server, operator) against the simulated robot, which
# runs on the wall clock and leaves the graph's resets to the reset server; it sets up scenes as an operator's hands
SIM_SCENE_SERVICE = "/sgft/sim/reset_scene"
RECORDER = "sgft_recorder"  # one MCAP bag per episode, where the YAML has its section


@dataclass(frozen=True)
class GraphNode:
    name: str  # node name = YAML section
    package: str
    module: str  # python -m module, and the console script's module
    executable: str
    parameters: dict = field(default_factory=dict)


def share_dir() -> Path:
    """This package's share directory when installed (colcon), else its source folder."""
    return installed_share("sgft_bringup") or Path(__file__).resolve().parents[1]


def transport_environment() -> dict[str, str]:
    """Environment for every process of the graph: Fast DDS reads its transports from config/fastdds.xml (shared
    memory big enough for a point cloud, UDP for discovery; why in the file), unless the user named a profile."""
    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or str(share_dir() / "config" / "fastdds.xml")
    return {"FASTDDS_DEFAULT_PROFILES_FILE": profile}


def load_config(task: str, config_file: str | os.PathLike | None = None) -> dict[str, dict]:
    """{node name: parameters} from the task's YAML, with "{share}" resolved and "~" expanded."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    path = Path(config_file) if config_file else share_dir() / "config" / f"{task}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (share_dir() / "config").glob("*.yaml") if p.stem in TASKS)
        raise ValueError(f"no graph configuration for {task}: {path} does not exist (shipped: "
                         f"{', '.join(shipped)}); give one with --config (launch: config:=...), or fine-tune "
                         f"{task} without ROS: python -m sgft_sim.benchmark --tasks {task}")
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    share = str(share_dir())
    config = {}
    for node, section in raw.items():
        params = dict(section.get("ros__parameters", {}))
        for key, value in params.items():
            if isinstance(value, str) and ("{share}" in value or value.startswith("~")):
                params[key] = os.path.expanduser(value.replace("{share}", share))
        config[node] = params
    return config


def simulated_extrinsics() -> list[list[float]]:
    """Every camera pose the shipped task YAMLs hold: the simulator's cameras, which a site must not claim as its
    calibration."""
    poses = []
    for task in TASKS:
        try:
            values = load_config(task).get("sgft_perception", {}).get("extrinsics", [])
        except ValueError:  # a task without a shipped YAML has no camera to compare with
            continue
        poses += [list(values[i:i + 7]) for i in range(0, len(values) - 6, 7)]
    return poses


def resolve_site(task: str, mode: str, profile: str | None = None,
                 site: str | os.PathLike | Site | None = None) -> tuple[str, Site | None]:
    """(robot profile name, site) for a graph. Real mode needs a calibrated site file and takes its profile; sim
    mode takes `profile` (default: the simulated robot's names) and no site."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "sim":
        return profile or DEFAULT_PROFILE, None
    if site is None:
        raise ValueError("real mode needs a site file (--site PATH, launch: site:=PATH): your robot profile, "
                         "robot_ip, camera serials and calibrated extrinsics, colours, home pose; start from "
                         f"{share_dir() / 'config' / 'site_template.yaml'}")
    loaded = site if isinstance(site, Site) else load_site(site, task)
    if mode == "real":  # real-sim's cameras are the simulator's, so its site holds their poses
        check_not_simulated(loaded, simulated_extrinsics())
    if profile is not None and profile != loaded.robot_profile:
        raise ValueError(f"--profile {profile} differs from the site file's robot_profile {loaded.robot_profile}; "
                         "in real mode the site names the robot profile (leave --profile out or change the site)")
    return loaded.robot_profile, loaded


def graph_config(task: str, config_file: str | os.PathLike | None = None,
                 overrides: dict[str, dict] | None = None, mode: str = "sim", profile: str | None = None,
                 site: str | os.PathLike | Site | None = None) -> dict[str, dict]:
    """The task's YAML, the robot profile's names, in real mode the site's values, then per-node parameter
    overrides ({node: {param: value}}, nested parameters as mappings) merged in: what graph_nodes starts and the
    session reads. ValueError (ProfileError, SiteError) when the profile or site cannot serve the task."""
    config = load_config(task, config_file)
    name, loaded = resolve_site(task, mode, profile, site)
    if mode == "real-sim":
        config["sgft_sim_robot"] = config.get("sgft_sim_robot", {}) | {
            "wall_clock": True, "time_scale": 1.0, "idle_time_scale": 1.0, "reset_service": SIM_SCENE_SERVICE}
    if loaded is None:
        layer = node_parameters(load_profile(name, kind="robot"), task)
    else:
        layer = graph_overrides(loaded, task, config.get("sgft_perception"))
        config.setdefault(RESET_SERVER, {"task": task})  # a --config without the section still resets the robot
    # only nodes the YAML configures: insert's graph has no perception, a real graph no simulated robot
    config = merge(config, {node: params for node, params in layer.items() if node in config})
    return merge(config, overrides or {})


@dataclass(frozen=True)
class StaticTransform:
    """A fixed transform parent → child, as tf2_ros's static_transform_publisher takes it."""

    parent: str
    child: str
    pose: tuple[float, ...]  # x y z (m), qx qy qz qw

    def arguments(self) -> list[str]:
        """static_transform_publisher's named arguments (tf2_ros, Humble and later)."""
        values = [f"--{name}={value!r}" for name, value in zip(("x", "y", "z", "qx", "qy", "qz", "qw"), self.pose,
                                                                 strict=True)]
        return [*values, f"--frame-id={self.parent}", f"--child-frame-id={self.child}"]


def camera_transforms(config: dict[str, dict]) -> list[StaticTransform]:
    """Base → camera optical frame of each camera perception reads, from its calibrated extrinsics: published on
    /tf_static by the launch files (tf2_ros is not on PyPI), so rviz draws the clouds in the robot's base frame. None
    without perception or without the clouds' frame names."""
    perception = config.get("sgft_perception") or {}
    frames, extrinsics = perception.get("cloud_frame_ids") or [], perception.get("extrinsics") or []
    parent = perception.get("output_frame", BASE_FRAME)
    if len(extrinsics) != 7 * len(frames):
        return []
    return [StaticTransform(parent, frame, tuple(float(v) for v in extrinsics[7 * i:7 * i + 7]))
            for i, frame in enumerate(frames) if frame]


def has_perception(config: dict[str, dict]) -> bool:
    """Perception runs where the graph's config has its section: insert's has none (the leg is held, its tip known
    from the grasp, and the clamped part's hole is a calibrated constant), so no camera cloud is rendered for
    nothing and the session waits for the robot's state of a reset scene instead of a detection."""
    return "sgft_perception" in config


def graph_nodes(task: str, mode: str = "sim", config_file: str | os.PathLike | None = None,
                overrides: dict[str, dict] | None = None, profile: str | None = None,
                site: str | os.PathLike | Site | None = None) -> list[GraphNode]:
    """The nodes of the fine-tuning graph. mode "sim": the simulated robot stands in for robot + cameras and
    publishes /clock, so every other node runs on sim time, with the names of `profile` (default "sim"). mode
    "real": the robot and camera drivers provide those topics instead, named by the site file's robot profile, and
    the reset server homes the arm to the site's home and waits for the operator's scene between episodes. mode
    "real-sim": the real graph against the simulated robot on the wall clock (`make demo-operator`); the simulator
    sets up scenes on SIM_SCENE_SERVICE, as an operator's hands would."""
    config = graph_config(task, config_file, overrides, mode, profile, site)
    sim_time = {"use_sim_time": mode == "sim"}
    nodes = []
    if mode in ("sim", "real-sim"):
        nodes.append(GraphNode("sgft_sim_robot", "sgft_sim", "sgft_sim.robot_node", "robot_node",
                               config["sgft_sim_robot"]))
    if mode in ("real", "real-sim"):
        nodes.append(GraphNode(RESET_SERVER, "sgft_bringup", "sgft_bringup.reset_server", "reset_server",
                               config[RESET_SERVER] | sim_time))
    if has_perception(config):
        nodes.append(GraphNode("sgft_perception", "sgft_perception", "sgft_perception.perception_node",
                               "perception_node", config["sgft_perception"] | sim_time))
    nodes += [
        GraphNode("sgft_policy", "sgft_policy", "sgft_policy.policy_node", "policy_node",
                  config["sgft_policy"] | sim_time),
        GraphNode("sgft_learner", "sgft_learner", "sgft_learner.learner_node", "learner_node",
                  config["sgft_learner"] | sim_time),
    ]
    if RECORDER in config:
        recorder = config[RECORDER] | sim_time
        if mode != "real":  # the simulated camera renders color only for a subscriber, at ~0.1 s a frame
            recorder["image_topics"] = [""]
        nodes.append(GraphNode(RECORDER, "sgft_bringup", "sgft_bringup.recorder", "recorder", recorder))
    return nodes


def session_parameters(task: str, mode: str = "sim", config_file: str | os.PathLike | None = None,
                       overrides: dict[str, dict] | None = None, profile: str | None = None,
                       site: str | os.PathLike | Site | None = None) -> dict:
    """Parameters of the fine-tuning session (sgft_bringup.finetune_session) for this graph: its YAML section and
    overrides, sim time in "sim" mode, and, unless set, whether to wait for perception's detection of each reset scene
    (only where the graph has a perception node). In real mode a reset waits for a person (the reset server answers
    once the operator confirms the scene, or on its own timeouts), so the session's wait for it is unbounded unless
    set."""
    config = graph_config(task, config_file, overrides, mode, profile, site)
    params = dict(config.get("sgft_finetune_session", {}))
    params["use_sim_time"] = mode == "sim"
    params.setdefault("wait_for_detection", has_perception(config))
    if mode != "sim":
        params.setdefault("reset_timeout_s", 0.0)
    return params
