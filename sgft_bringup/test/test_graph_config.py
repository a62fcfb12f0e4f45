"""The graph definition and the per-task YAML agree with the code they configure."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from transforms3d.quaternions import quat2mat

from sgft_bringup.graph import TASKS, graph_nodes, load_config, session_parameters, share_dir, transport_environment
from sgft_bringup.run_graph import parse_overrides
from sgft_core.finetune import make_config


def test_push_graph_has_every_node_with_its_section(real_site):
    sim = graph_nodes("push", "sim")
    assert [n.name for n in sim] == ["sgft_sim_robot", "sgft_perception", "sgft_policy", "sgft_learner",
                                     "sgft_recorder"]
    assert all(n.parameters["use_sim_time"] for n in sim[1:])
    real = graph_nodes("push", "real", site=real_site)
    assert "sgft_sim_robot" not in [n.name for n in real]
    # episodes recorded in both modes; camera images on the real robot only (the sim renders color at a cost)
    recorder = {n.name: n.parameters for n in sim}["sgft_recorder"]
    assert recorder["image_topics"] == [""]
    assert {n.name: n.parameters for n in real}["sgft_recorder"]["image_topics"] == ["/camera1/camera1/color/image_raw"]
    assert not any(n.parameters["use_sim_time"] for n in real)


def test_the_reset_server_runs_in_the_real_graph_only_with_the_profiles_topics_and_the_sites_home(tmp_path):
    """Real mode: the reset server serves ResetEpisode with the robot profile's names and the site's home and start
    scenes; sim mode: the simulated robot serves it, so no reset server starts."""
    from conftest import write_site

    for task in TASKS:
        assert "sgft_reset_server" not in [n.name for n in graph_nodes(task, "sim")]
    site = write_site(tmp_path / "site.yaml", home_position=[0.32, 0.05, 0.02], start_scenes=[[0.4, 0.1], [0.45, -0.1]],
                      perception={"hsv_min": [15.0, 0.6, 0.3], "hsv_max": [45.0, 1.0, 1.0], "table_height": 0.01})
    nodes = {n.name: n for n in graph_nodes("push", "real", site=site)}
    server = nodes["sgft_reset_server"]
    assert (server.package, server.executable) == ("sgft_bringup", "reset_server")
    params = server.parameters
    assert params["cartesian_target_topic"] == "/target_pose" and params["robot_pose_topic"] == "/current_pose"
    assert params["base_frame"] == "base" and params["single_publisher"] is True  # crisp's controller
    assert params["home_position"] == [0.32, 0.05, 0.02] and params["start_scenes"] == [0.4, 0.1, 0.45, -0.1]
    assert params["table_height"] == 0.01 and params["use_sim_time"] is False and params["task"] == "push"
    session = session_parameters("push", "real", site=site)
    assert session["start_scenes"] == [0.4, 0.1, 0.45, -0.1] and session["reset_timeout_s"] == 0.0
    assert "start_scenes" not in session_parameters("push") and "reset_timeout_s" not in session_parameters("push")
    hammer = {n.name: n.parameters for n in graph_nodes("hammer", "real", site=write_site(
        tmp_path / "hammer.yaml", robot_profile="franka_ros2_jazzy"))}["sgft_reset_server"]
    assert hammer["joint_trajectory_topic"] == "/fr3_arm_controller/joint_trajectory"
    assert hammer["home_joints"] == [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785] and "start_scenes" not in hammer
    assert hammer["single_publisher"] is False  # franka_ros2 has no Cartesian target


def test_insert_graph_has_no_perception_and_its_session_waits_for_the_robot_state(real_site):
    """Insert observes no camera (held leg, calibrated hole): no perception node, and the session starts an episode on
    the robot state of the reset scene, not on a detection that would never come."""
    assert [n.name for n in graph_nodes("insert", "sim")] == ["sgft_sim_robot", "sgft_policy", "sgft_learner",
                                                              "sgft_recorder"]
    assert [n.name for n in graph_nodes("insert", "real", site=real_site)] == ["sgft_reset_server", "sgft_policy",
                                                                             "sgft_learner", "sgft_recorder"]
    assert session_parameters("insert")["wait_for_detection"] is False
    assert session_parameters("push")["wait_for_detection"] is True
    assert session_parameters("push", "real", site=real_site)["use_sim_time"] is False
    overridden = session_parameters("insert", overrides={"sgft_finetune_session": {"episodes": 2}})
    assert overridden["episodes"] == 2 and overridden["use_sim_time"] is True
    # a perception section given as an override starts perception, and then the session waits for its detections
    with_camera = {"sgft_perception": load_config("push")["sgft_perception"]}
    assert "sgft_perception" in [n.name for n in graph_nodes("insert", "sim", overrides=with_camera)]
    assert session_parameters("insert", overrides=with_camera)["wait_for_detection"] is True


def test_insert_calibration_is_the_simulated_robots_leg_and_hole():
    """The held leg's offset and the hole constants in insert.yaml must be where the sim's "real" robot has them:
    insert's success needs every axis within 1 cm. Checked over random motion that tilts the soft hand."""
    sgft_sim = pytest.importorskip("sgft_sim")
    from sgft_core.observation import held_object_position

    params = load_config("insert")["sgft_policy"]
    constants = dict(zip(params["constant_names"], params["constant_values"], strict=True))
    env = sgft_sim.make_env("insert", "real", seed=0)
    try:
        rng = np.random.default_rng(0)
        for seed in (0, 1):
            env.reset(seed=seed)
            np.testing.assert_allclose([constants[k] for k in ("hole_x", "hole_y", "hole_z")], env.hole_position(),
                                       atol=1e-6)
            for _ in range(15):
                env.step(rng.uniform(-1.0, 1.0, 3))
                w, x, y, z = env.ee_quaternion()
                tip = held_object_position(env.ee_position(), (x, y, z, w), np.asarray(params["held_object_offset"]))
                np.testing.assert_allclose(tip, env.object_position(), atol=1e-6)
    finally:
        env.close()


def test_hammer_constants_and_joint_offsets_are_what_the_simulated_robot_has():
    """goal_x/goal_z are what the env observes (its calibration error on goal_x included), and the joint zero offsets
    map the robot's FR3 readings to the simulator's, in which the checkpoint was trained."""
    sgft_sim = pytest.importorskip("sgft_sim")
    from sgft_core.fr3 import MJCF_JOINT_ZERO_OFFSET

    params = load_config("hammer")["sgft_policy"]
    constants = dict(zip(params["constant_names"], params["constant_values"], strict=True))
    np.testing.assert_allclose(params["joint_zero_offsets"], MJCF_JOINT_ZERO_OFFSET)
    env = sgft_sim.make_env("hammer", "real", seed=0)
    try:
        for seed in (0, 1):
            obs, _ = env.reset(seed=seed)
            names = list(env.task.obs_names)
            np.testing.assert_allclose([constants["goal_x"], constants["goal_z"]],
                                       obs[[names.index("goal_x"), names.index("goal_z")]], atol=1e-6)
    finally:
        env.close()


def test_perception_sections_are_calibrated_to_the_simulated_cameras():
    """The calibration in a YAML must be where the sim puts the camera, or detections would be off (every task whose
    graph runs perception: push, hammer)."""
    sgft_sim = pytest.importorskip("sgft_sim")
    for task in TASKS:
        params = load_config(task).get("sgft_perception")
        if params is None:  # insert: no camera needed
            continue
        env = sgft_sim.make_env(task, "real", seed=0)
        try:
            for i, topic in enumerate(params["cloud_topics"]):
                truth = env.point_cloud(topic.split("/")[1], 8, 8).camera_to_base
                x, y, z, qx, qy, qz, qw = params["extrinsics"][7 * i: 7 * i + 7]
                np.testing.assert_allclose([x, y, z], truth[:3, 3], atol=1e-4, err_msg=task)
                np.testing.assert_allclose(quat2mat([qw, qx, qy, qz]), truth[:3, :3], atol=1e-4, err_msg=task)
        finally:
            env.close()


def test_share_paths_resolve_and_overrides_apply():
    nodes = {n.name: n for n in graph_nodes("push", "sim", overrides={"sgft_policy": {"max_hold_s": 2.5}})}
    assert nodes["sgft_policy"].parameters["checkpoint"].startswith(str(share_dir()))
    assert "{share}" not in nodes["sgft_learner"].parameters["checkpoint"]
    assert nodes["sgft_policy"].parameters["max_hold_s"] == 2.5


def test_unknown_task_and_mode_are_refused():
    with pytest.raises(ValueError, match="unknown task"):
        load_config("fly")
    with pytest.raises(ValueError, match="mode"):
        graph_nodes("push", "dream")


def test_a_missing_parameter_file_is_refused_with_what_to_do(capsys, tmp_path):
    """A task's graph YAML that does not exist (every task ships one now; a --config typo): a clear error saying what
    to do, no traceback, nothing started."""
    from sgft_bringup.run_graph import main

    missing = tmp_path / "hammer_typo.yaml"
    with pytest.raises(ValueError, match="no graph configuration for hammer.*--config"):
        load_config("hammer", missing)
    with pytest.raises(SystemExit) as exit_info:
        main(["--task", "hammer", "--config", str(missing)])
    assert exit_info.value.code == 2 and "no graph configuration" in capsys.readouterr().err


def test_every_task_ships_a_graph_configuration():
    assert sorted(p.stem for p in (share_dir() / "config").glob("*.yaml") if p.stem != "site_template") == \
        sorted(TASKS)


def test_parse_overrides_types_values_and_nests_dotted_parameters():
    parsed = parse_overrides(["a.x=1.5", "a.flag=true", "b.list=[1, 2]", "b.lr=3e-4", "b.finetune.horizon=none",
                              "b.finetune.utd=1"])
    assert parsed == {"a": {"x": 1.5, "flag": True},
                      "b": {"list": [1, 2], "lr": 3e-4, "finetune": {"horizon": "none", "utd": 1}}}
    with pytest.raises(SystemExit, match="node.param=value"):
        parse_overrides(["episodes=3"])
    with pytest.raises(SystemExit, match="key=value"):
        parse_overrides(["sgft_learner.method"])


def test_learner_finetune_sections_are_valid_finetune_configs_and_overrides_merge_into_them():
    """Each task's `finetune:` mapping holds FinetuneConfig fields of the right types (what the learner node
    declares), and a --set of one field keeps the others of the section."""
    for task in TASKS:
        params = load_config(task)["sgft_learner"]
        assert "config_overrides" not in params
        make_config(params["method"], **params.get("finetune", {}))
    push = make_config("sgft_kept_critic", **load_config("push")["sgft_learner"]["finetune"])
    assert push.horizon == 1 and push.prior_regularization == 1.0
    nodes = {n.name: n for n in graph_nodes("push", "sim", overrides=parse_overrides(
        ["sgft_learner.finetune.critic_huber_delta=none", "sgft_learner.finetune.utd=1"]))}
    section = nodes["sgft_learner"].parameters["finetune"]
    assert section == {"prior_regularization": 1.0, "horizon": 1, "critic_huber_delta": "none", "utd": 1}
    config = make_config("sgft_kept_critic", **section)
    assert config.critic_huber_delta is None and config.utd == 1 and config.horizon == 1


def test_yaml_files_are_valid_parameter_files():
    for path in (share_dir() / "config").glob("*.yaml"):
        if path.stem == "site_template":  # not a parameter file: test_profiles_and_site checks it
            continue
        data = yaml.safe_load(path.read_text())
        assert all("ros__parameters" in section for section in data.values()), path
        assert path.stem in TASKS


def test_transport_profile_is_installed_fits_a_cloud_and_a_users_own_wins(monkeypatch):
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    profile = Path(transport_environment()["FASTDDS_DEFAULT_PROFILES_FILE"])
    ns = {"dds": "http://www.eprosima.com"}
    root = ET.parse(profile).getroot()
    shm = [d for d in root.iterfind(".//dds:transport_descriptor", ns)
           if d.findtext("dds:type", namespaces=ns) == "SHM"]
    assert shm and int(shm[0].findtext("dds:segment_size", namespaces=ns)) >= 4 * 8_141_000  # a few 848x480 clouds
    assert root.findtext(".//dds:participant[@is_default_profile='true']/dds:rtps/dds:useBuiltinTransports",
                         namespaces=ns) == "false"
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my_fastdds.xml")
    assert transport_environment() == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_fastdds.xml"}


def test_real_sim_mode_runs_the_real_graph_against_the_simulated_robot(tmp_path):
    """make demo-operator's graph: the reset server serves the graph's resets, the simulated robot runs on the wall
    clock and sets up scenes on its own service; the site may hold the simulated camera's pose."""
    from conftest import write_site

    from sgft_bringup.graph import SIM_SCENE_SERVICE

    sim_camera = [1.15, -0.55, 0.65, -0.808559, -0.382356, 0.1912, 0.404326]
    site = write_site(tmp_path / "site.yaml", robot_profile="sim",
                      cameras=[{"name": "camera1", "serial": "0", "extrinsics": sim_camera}])
    nodes = {n.name: n.parameters for n in graph_nodes("push", "real-sim", site=site)}
    assert list(nodes)[:2] == ["sgft_sim_robot", "sgft_reset_server"]
    robot = nodes["sgft_sim_robot"]
    assert robot["wall_clock"] and robot["time_scale"] == 1.0 and robot["reset_service"] == SIM_SCENE_SERVICE
    assert not any(p.get("use_sim_time") for p in nodes.values())
    with pytest.raises(ValueError, match="calibrat"):  # the same site is refused for a real robot
        graph_nodes("push", "real", site=site)
