"""Robot/camera profiles and site files: every shipped one loads, its facts reach the agreed node parameters, and a
bad one is refused naming the field (the CLIs exit 2 and write nothing)."""

import pytest
import yaml
from conftest import CALIBRATED, write_site

from sgft_bringup import profiles, site
from sgft_bringup.graph import graph_nodes, load_config, session_parameters, share_dir, simulated_extrinsics
from sgft_bringup.profiles import ProfileError, load_profile, node_parameters
from sgft_bringup.site import SiteError, load_site
from sgft_core.tasks import TASKS
from sgft_interfaces import Topics

ROBOTS = ["crisp", "franka_ros2_humble", "franka_ros2_jazzy", "sim"]
POLICY = {"robot_pose_topic", "joint_state_topic", "cartesian_target_topic", "joint_trajectory_topic", "base_frame",
          "command_publisher_per_episode"}


def test_every_profile_loads_and_names_its_sources():
    assert set(ROBOTS) | {"realsense"} <= set(profiles.available())
    for name in profiles.available():
        profile = load_profile(name)
        groups = [profile[k] for k in ("state", "cartesian_target", "joint_target", "controllers", "bringup")
                  if profile.kind == "robot" and profile[k] is not None] or [profile["cloud"], profile["driver"]]
        for group in groups:
            assert group["source"], (name, group)
            if name != "sim":
                assert "@" in group["source"], f"{name}: a source names its release tag"


def test_robot_facts_map_to_the_agreed_parameters():
    crisp = node_parameters(load_profile("crisp"), "push")
    assert set(crisp["sgft_policy"]) == POLICY
    assert crisp["sgft_policy"]["cartesian_target_topic"] == "/target_pose"
    assert crisp["sgft_policy"]["robot_pose_topic"] == "/current_pose"
    assert crisp["sgft_policy"]["base_frame"] == "base"
    assert crisp["sgft_policy"]["command_publisher_per_episode"]  # crisp ignores a topic with two publishers
    assert crisp["sgft_sim_robot"]["state_reliability"] == "reliable"
    assert crisp["sgft_sim_robot"]["state_rate_hz"] == 1000.0  # every controller_manager update, not a setting
    assert crisp["sgft_perception"] == {"output_frame": "base"}  # detections in the frame the policy checks
    assert crisp["sgft_learner"] == {"base_frame": "base"}  # the heatmap's frame
    assert crisp["sgft_finetune_session"] == {"robot_pose_topic": "/current_pose"}
    jazzy = node_parameters(load_profile("franka_ros2_jazzy"), "hammer")
    assert jazzy["sgft_policy"]["joint_trajectory_topic"] == "/fr3_arm_controller/joint_trajectory"
    assert jazzy["sgft_sim_robot"]["state_reliability"] == "best_effort"
    assert jazzy["sgft_sim_robot"]["state_rate_hz"] == 50.0
    sim = node_parameters(load_profile("sim"), "push")
    assert sim["sgft_policy"] == {"robot_pose_topic": Topics.ROBOT_POSE, "joint_state_topic":
                                  Topics.MEASURED_JOINT_STATES, "cartesian_target_topic": Topics.CARTESIAN_TARGET,
                                  "joint_trajectory_topic": Topics.JOINT_TRAJECTORY, "base_frame": "fr3_link0",
                                  "command_publisher_per_episode": False}
    cams = node_parameters(load_profile("sim"), None, load_profile("realsense"), ["camera1", "camera2"])
    assert cams["sgft_perception"] == {"output_frame": "fr3_link0", "cloud_topics": list(Topics.CAMERA_CLOUDS),
                                       "cloud_frame_ids": ["camera1_depth_optical_frame",
                                                           "camera2_depth_optical_frame"]}


def test_graph_applies_the_profile_and_sim_is_the_default():
    default = {n.name: n.parameters for n in graph_nodes("push", "sim")}
    assert default["sgft_policy"]["robot_pose_topic"] == Topics.ROBOT_POSE
    crisp = {n.name: n.parameters for n in graph_nodes("push", "sim", profile="crisp")}
    assert crisp["sgft_policy"]["cartesian_target_topic"] == "/target_pose"
    assert crisp["sgft_sim_robot"]["robot_pose_topic"] == "/current_pose"
    assert session_parameters("push", profile="crisp")["robot_pose_topic"] == "/current_pose"
    overridden = {n.name: n.parameters for n in graph_nodes(
        "push", "sim", overrides={"sgft_policy": {"base_frame": "x"}}, profile="crisp")}
    assert overridden["sgft_policy"]["base_frame"] == "x"  # --set wins over the profile


def test_franka_profiles_refuse_cartesian_tasks_naming_crisp():
    for name in ("franka_ros2_humble", "franka_ros2_jazzy"):
        for task in TASKS:
            if TASKS[task].action_kind == "cartesian":
                with pytest.raises(ProfileError, match="crisp"):
                    node_parameters(load_profile(name), task)
                with pytest.raises(ProfileError, match="crisp"):
                    graph_nodes(task, "sim", profile=name)
        node_parameters(load_profile(name), "hammer")


def _broken(tmp_path, name, edit):
    data = yaml.safe_load((share_dir() / "config" / "profiles" / f"{name}.yaml").read_text())
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["state"].pop("frame_id"), "state.frame_id"),
    (lambda d: d["state"].update(colour="red"), "state.colour"),
    (lambda d: d["state"]["qos"].update(reliability="sometimes"), "state.qos.reliability"),
    (lambda d: d["state"]["pose"].update(topic="current_pose"), "state.pose.topic"),
    (lambda d: d["cartesian_target"].update(type="geometry_msgs/msg/Pose"), "cartesian_target.type"),
    (lambda d: d["joint_target"].update(joint_names=["a"]), "joint_target.joint_names"),
    (lambda d: d.pop("base_frame"), "base_frame"),
    (lambda d: d.update(cartesian_target=None), "cartesian_target_unavailable"),
])
def test_bad_robot_profiles_are_refused_naming_the_field(tmp_path, edit, field):
    with pytest.raises(ProfileError, match=field.replace(".", r"\.")):
        load_profile(_broken(tmp_path, "crisp", edit))


def test_bad_camera_profile_and_cli_exit_2(tmp_path, capsys):
    path = _broken(tmp_path, "realsense", lambda d: d["driver"]["arguments"].pop("serial_no"))
    with pytest.raises(ProfileError, match=r"driver\.arguments\.serial_no"):
        load_profile(path)
    assert profiles.main([str(path)]) == 2
    out = capsys.readouterr()
    assert "serial_no" in out.err and out.out == ""


def test_site_template_loads_and_is_refused_until_calibrated(tmp_path):
    template = load_site(share_dir() / "config" / "site_template.yaml", "push")
    assert template.robot_profile == "crisp" and len(template.home_joints) == 7
    with pytest.raises(ValueError, match="calibrat"):
        graph_nodes("push", "real", site=share_dir() / "config" / "site_template.yaml")
    simulated = load_config("push")["sgft_perception"]["extrinsics"]
    assert simulated in simulated_extrinsics()
    path = write_site(tmp_path / "sim.yaml", cameras=[{"name": "camera1", "serial": "1", "extrinsics": simulated}])
    with pytest.raises(ValueError, match="simulated camera.*python -m sgft_bringup.calibrate"):
        graph_nodes("push", "real", site=path)
    with pytest.raises(ValueError, match="site file"):
        graph_nodes("push", "real")


def test_site_overrides_the_graph_in_real_mode(tmp_path):
    path = write_site(tmp_path / "site.yaml", workspace_low=[0.3, -0.3, 0.0], workspace_high=[0.6, 0.3, 0.2],
                      perception={"hsv_min": [100.0, 0.5, 0.2], "hsv_max": [140.0, 1.0, 1.0], "table_height": 0.02})
    nodes = {n.name: n.parameters for n in graph_nodes("push", "real", site=path)}
    perception, policy = nodes["sgft_perception"], nodes["sgft_policy"]
    assert perception["extrinsics"] == CALIBRATED and perception["hsv_min"] == [100.0, 0.5, 0.2]
    assert perception["cloud_topics"] == ["/camera1/camera1/depth/color/points"]
    assert perception["box_min"][2] == pytest.approx(load_config("push")["sgft_perception"]["box_min"][2] + 0.02)
    assert policy["workspace_low"] == [0.3, -0.3, 0.0] and policy["cartesian_target_topic"] == "/target_pose"
    assert policy["use_sim_time"] is False
    with pytest.raises(ValueError, match="differs from the site"):
        graph_nodes("push", "real", site=path, profile="sim")
    hammer_site = write_site(tmp_path / "hammer.yaml", robot_profile="franka_ros2_jazzy")
    assert {n.name: n.parameters for n in graph_nodes("hammer", "real", site=hammer_site)}["sgft_policy"][
        "joint_trajectory_topic"] == "/fr3_arm_controller/joint_trajectory"
    with pytest.raises(ProfileError, match="crisp"):
        graph_nodes("push", "real", site=hammer_site)


@pytest.mark.parametrize(("changes", "field"), [
    ({"robot_ip": None}, "site.robot_ip"),
    ({"colour": "red"}, "site.colour"),
    ({"robot_profile": "kuka"}, "site.robot_profile"),
    ({"cameras": [{"name": "camera1", "serial": "1", "extrinsics": [0, 0, 1, 0, 0, 0, 2]}]}, "extrinsics"),
    ({"cameras": [{"name": "camera1", "serial": "1", "extrinsics": [0, 0, 1, 0, 0, 1]}]}, "extrinsics"),
    ({"cameras": [{"name": "camera1", "serial": 123, "extrinsics": CALIBRATED}]}, "serial"),
    ({"home_joints": [0.0, 0.0, 0.0, 0.0, 0.0, 1.571, 0.785]}, "home_joints.*fr3_joint4"),
    ({"home_joints": [0.0] * 6}, "home_joints"),
    ({"workspace_low": [0.0, -0.3, 0.0], "workspace_high": [0.6, 0.3, 0.2]}, "exceeds push's box"),
    ({"workspace_low": [0.3, -0.3, 0.0]}, "both or neither"),
    ({"perception": {"hsv_min": [0, 0, 0], "hsv_max": [1, 1, 1]}}, "site.perception.table_height"),
    ({"home_position": [0.9, 0.0, 0.02]}, "site.home_position.*outside push's workspace box"),
    ({"home_position": [0.3, 0.0, 0.1]}, "site.home_position.*end-effector height"),
    ({"home_position": [0.3, 0.0]}, "site.home_position"),
    ({"start_scenes": [[0.4, 0.1], [0.4]]}, r"site.start_scenes\[1\]"),
    ({"start_scenes": [0.4, 0.1]}, r"site.start_scenes\[0\]"),
    ({"start_scenes": "0.4 0.1"}, "site.start_scenes"),
])
def test_bad_sites_are_refused_naming_the_field(tmp_path, changes, field):
    with pytest.raises(SiteError, match=field):
        load_site(write_site(tmp_path / "site.yaml", **changes), "push")


def test_site_home_position_and_start_scenes_are_optional(tmp_path):
    template = load_site(share_dir() / "config" / "site_template.yaml", "push")
    assert template.home_position is None and template.start_scenes == ()
    loaded = load_site(write_site(tmp_path / "site.yaml", home_position=[0.3, 0.0, 0.02],
                                  start_scenes=[[0.4, 0.1], [0.45, -0.1]]), "push")
    assert loaded.home_position == (0.3, 0.0, 0.02) and loaded.start_scenes == ((0.4, 0.1), (0.45, -0.1))
    # a home position is the Cartesian tasks' reset: hammer homes to home_joints and does not check it
    assert load_site(write_site(tmp_path / "h.yaml", home_position=[0.3, 0.0, 0.5]), "hammer").home_position


def test_site_cli_and_run_graph_exit_2_and_write_nothing(tmp_path, capsys):
    from sgft_bringup.run_graph import main

    bad = write_site(tmp_path / "site.yaml", robot_ip=None)
    assert site.main([str(bad)]) == 2 and "site.robot_ip" in capsys.readouterr().err
    log_dir = tmp_path / "logs"
    for argv in (["--mode", "real"], ["--mode", "real", "--site", str(bad)]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--task", "push", *argv, "--log-dir", str(log_dir)])
        assert exit_info.value.code == 2
    assert not log_dir.exists()
