"""The graph definition and the per-task YAML agree with the code they configure."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from transforms3d.quaternions import quat2mat

from sgft_bringup.graph import TASKS, graph_nodes, load_config, share_dir, transport_environment
from sgft_bringup.run_graph import parse_overrides


def test_push_graph_has_every_node_with_its_section():
    sim = graph_nodes("push", "sim")
    assert [n.name for n in sim] == ["sgft_sim_robot", "sgft_perception", "sgft_policy", "sgft_learner"]
    assert all(n.parameters["use_sim_time"] for n in sim[1:])
    real = graph_nodes("push", "real")
    assert "sgft_sim_robot" not in [n.name for n in real]
    assert not any(n.parameters["use_sim_time"] for n in real)


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


def test_a_task_without_a_parameter_file_is_refused_with_what_to_do(capsys):
    """hammer and insert have checkpoints and sim scenes but no graph YAML (yet): a clear error, no traceback."""
    from sgft_bringup.run_graph import main

    missing = [task for task in TASKS if not (share_dir() / "config" / f"{task}.yaml").is_file()]
    assert missing, "every task has a graph configuration now: this test has nothing left to check"
    with pytest.raises(ValueError, match=f"no graph configuration for {missing[0]}.*--config"):
        load_config(missing[0])
    with pytest.raises(SystemExit) as exit_info:
        main(["--task", missing[0]])
    assert exit_info.value.code == 2 and "no graph configuration" in capsys.readouterr().err


def test_parse_overrides_types_values_and_keeps_json_strings():
    parsed = parse_overrides(["a.x=1.5", "a.flag=true", 'b.json={"utd": 2}', "b.list=[1, 2]"])
    assert parsed == {"a": {"x": 1.5, "flag": True}, "b": {"json": '{"utd": 2}', "list": [1, 2]}}


def test_yaml_files_are_valid_parameter_files():
    for path in (share_dir() / "config").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        assert all("ros__parameters" in section for section in data.values()), path
        assert path.stem in TASKS


def test_perception_extrinsic_is_the_simulated_camera_pose():
    """The calibration in the YAML must be where the sim puts the camera, or detections would be off."""
    sgft_sim = pytest.importorskip("sgft_sim")
    params = load_config("push")["sgft_perception"]
    env = sgft_sim.make_env("push", "real", seed=0)
    try:
        for i, topic in enumerate(params["cloud_topics"]):
            camera = topic.split("/")[1]
            truth = env.point_cloud(camera, 8, 8).camera_to_base
            x, y, z, qx, qy, qz, qw = params["extrinsics"][7 * i: 7 * i + 7]
            np.testing.assert_allclose([x, y, z], truth[:3, 3], atol=1e-4)
            np.testing.assert_allclose(quat2mat([qw, qx, qy, qz]), truth[:3, :3], atol=1e-4)
    finally:
        env.close()


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
