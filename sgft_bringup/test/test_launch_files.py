"""The launch files against stand-ins of launch/launch_ros (not on PyPI): every argument is declared with a
description, and real_finetune.launch.py with bringup:=true includes the profile's upstream launch file with its
argument names, the controller switch the task needs and one realsense2_camera per site camera."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from conftest import write_site

LAUNCH = Path(__file__).resolve().parents[1] / "launch"


class Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Action):
    def perform(self, context):
        return context[self.args[0]]


@pytest.fixture
def launch_file(monkeypatch):
    names = {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument", "ExecuteProcess",
             "IncludeLaunchDescription", "OpaqueFunction", "SetEnvironmentVariable"],
             "launch.conditions": ["IfCondition"],
             "launch.launch_description_sources": ["PythonLaunchDescriptionSource"],
             "launch.substitutions": ["PathJoinSubstitution"], "launch_ros.actions": ["Node"],
             "launch_ros.substitutions": ["FindPackageShare"], "launch_ros": []}
    for module, classes in names.items():
        stub = types.ModuleType(module)
        for name in classes:
            setattr(stub, name, type(name, (Action,), {}))
        monkeypatch.setitem(sys.modules, module, stub)
    sys.modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration

    def load(name):
        spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


def _declared(description):
    return {a.args[0]: a.kwargs for a in description.args[0] if type(a).__name__ == "DeclareLaunchArgument"}


def test_every_argument_has_a_description(launch_file):
    for name in ("real_finetune.launch.py", "sim_finetune.launch.py"):
        for arg, kwargs in _declared(launch_file(name).generate_launch_description()).items():
            assert kwargs.get("description"), f"{name}: {arg}"


def test_real_launch_includes_the_profiles_upstream_launch_and_cameras(launch_file, tmp_path):
    module = launch_file("real_finetune.launch.py")
    site = write_site(tmp_path / "site.yaml")
    actions = module._setup({"task": "push", "config": "", "site": str(site), "bringup": "true"})
    kinds = [type(a).__name__ for a in actions]
    includes = [a for a in actions if kinds[actions.index(a)] == "IncludeLaunchDescription"]
    robot = dict(includes[0].kwargs["launch_arguments"])
    assert robot == {"robot_ip": "172.16.0.2", "arm_id": "fr3"}
    camera = dict(includes[1].kwargs["launch_arguments"])
    assert camera == {"camera_name": "camera1", "camera_namespace": "camera1", "serial_no": "_123456789012",
                      "pointcloud.enable": "true", "depth_module.depth_profile": "424x240x30",
                      "decimation_filter.enable": "false"}
    switch = [a for a in actions if type(a).__name__ == "ExecuteProcess"][0].kwargs["cmd"][0]
    assert "--activate cartesian_impedance_controller --deactivate joint_trajectory_controller" in switch
    nodes = [a.kwargs for a in actions if type(a).__name__ == "Node"]
    assert [n["name"] for n in nodes] == ["sgft_reset_server", "sgft_perception", "sgft_policy", "sgft_learner",
                                          "sgft_recorder", "sgft_tf_camera1_depth_optical_frame"]
    tf = nodes[-1]
    assert (tf["package"], tf["executable"]) == ("tf2_ros", "static_transform_publisher")
    assert "--frame-id=base" in tf["arguments"] and "--child-frame-id=camera1_depth_optical_frame" in tf["arguments"]
    # without bringup only the SGFT nodes start
    only = module._setup({"task": "push", "config": "", "site": str(site), "bringup": "false"})
    assert {type(a).__name__ for a in only} == {"Node"}


def test_sim_launch_publishes_the_simulated_cameras_frames(launch_file):
    module = launch_file("sim_finetune.launch.py")
    nodes = [a.kwargs for a in module._nodes({"task": "push", "config": "", "profile": "sim"})]
    tf = [n for n in nodes if n["executable"] == "static_transform_publisher"]
    assert len(tf) == 1 and tf[0]["arguments"][-2:] == ["--frame-id=fr3_link0",
                                                        "--child-frame-id=camera1_depth_optical_frame"]
    assert tf[0]["arguments"][:3] == ["--x=1.15", "--y=-0.55", "--z=0.65"]


def test_real_launch_refuses_without_a_calibrated_site(launch_file, tmp_path):
    module = launch_file("real_finetune.launch.py")
    with pytest.raises(RuntimeError, match="site file"):
        module._setup({"task": "push", "config": "", "site": "", "bringup": "false"})
    sim_site = write_site(tmp_path / "s.yaml", cameras=[{"name": "camera1", "serial": "1", "extrinsics":
                                                         [1.15, -0.55, 0.65, -0.808559, -0.382356, 0.1912, 0.404326]}])
    with pytest.raises(RuntimeError, match="calibrat"):
        module._setup({"task": "push", "config": "", "site": str(sim_site), "bringup": "false"})
