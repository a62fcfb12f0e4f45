"""SGFT fine-tuning on a real FR3 with RealSense cameras:
`ros2 launch sgft_bringup real_finetune.launch.py task:=push site:=$HOME/sgft_site.yaml [bringup:=true]`

The site file (config/site_template.yaml) names the robot profile (config/profiles/*.yaml), the robot's IP, the
cameras' serials and calibrated extrinsics; a site whose extrinsics are the simulator's is refused (calibrate first:
python -m sgft_bringup.calibrate). By default the lab's own driver bringup is expected to be running with the
profile's topics; bringup:=true includes the upstream launch files with the argument names of the profile's release,
switches to the controller the task needs and starts one realsense2_camera per site camera. The SGFT nodes come from
sgft_bringup.graph in real mode (wall clock, no simulated robot), as `run_graph --mode real` starts them.
"""

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from sgft_bringup.graph import camera_transforms, graph_config, graph_nodes, transport_environment
from sgft_bringup.profiles import load_profile
from sgft_bringup.site import CAMERA_PROFILE, load_site
from sgft_core.tasks import TASKS


def _share(text: str) -> str:
    """"{share:PKG}/rest" in a profile's spawner arguments: PKG's installed share directory."""
    if text.startswith("{share:"):
        package, rest = text[len("{share:"):].split("}", 1)
        return get_package_share_directory(package) + rest
    return text


def _robot_bringup(profile, site, task: str) -> list:
    bringup = profile["bringup"]
    if bringup is None:
        raise RuntimeError(f"profile {profile.name} has no upstream bringup; start its driver yourself "
                           "(bringup:=false)")
    arguments = {k: v.replace("{robot_ip}", site.robot_ip) for k, v in bringup["arguments"].items()}
    actions = [IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(bringup["package"]), "launch",
                                                            bringup["launch_file"]])),
        launch_arguments=arguments.items())]
    controllers = profile["controllers"][TASKS[task].action_kind]
    actions += [Node(package="controller_manager", executable="spawner", arguments=[_share(a) for a in args],
                     output="screen") for args in controllers["spawn"]]
    if controllers["activate"] or controllers["deactivate"]:
        wanted = controllers["activate"] + controllers["deactivate"]
        switch = ["ros2 control switch_controllers"] + [f"--activate {c}" for c in controllers["activate"]] + \
            [f"--deactivate {c}" for c in controllers["deactivate"]]
        # the bringup spawns these controllers asynchronously: switch once controller_manager lists them all
        wait = " && ".join(f"ros2 control list_controllers 2>/dev/null | grep -qw {c}" for c in wanted)
        actions.append(ExecuteProcess(cmd=[f"until {wait}; do sleep 1; done; {' '.join(switch)}"], shell=True,
                                      output="screen"))
    return actions


def _cameras(site) -> list:
    camera = load_profile(CAMERA_PROFILE, kind="camera")
    driver, names = camera["driver"], camera["driver"]["arguments"]
    actions = []
    for cam in site.cameras:
        arguments = {names["camera_name"]: cam.name, names["camera_namespace"]: cam.name,
                     names["serial_no"]: driver["serial_prefix"] + cam.serial, names["pointcloud"]: "true",
                     names["depth_profile"]: camera["depth_profile"],
                     names["decimation"]: "true" if camera["decimation"] else "false"}
        actions.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(driver["package"]), "launch",
                                                                driver["launch_file"]])),
            launch_arguments=arguments.items()))
    return actions


def _setup(context):
    task = LaunchConfiguration("task").perform(context)
    config = LaunchConfiguration("config").perform(context) or None
    site_path = LaunchConfiguration("site").perform(context)
    try:
        site = load_site(site_path, task) if site_path else None
        nodes = graph_nodes(task, "real", config, site=site)
        transforms = camera_transforms(graph_config(task, config, mode="real", site=site))
    except ValueError as err:  # no/uncalibrated site, a profile that cannot serve the task: start nothing
        raise RuntimeError(str(err)) from None
    actions = []
    if LaunchConfiguration("bringup").perform(context).lower() == "true":
        profile = load_profile(site.robot_profile, kind="robot")
        actions += _robot_bringup(profile, site, task) + _cameras(site)
    actions += [Node(package=n.package, executable=n.executable, name=n.name, parameters=[n.parameters],
                     output="screen") for n in nodes]
    # base → each camera's optical frame, from the site's calibration: rviz draws the clouds in the base frame
    actions += [Node(package="tf2_ros", executable="static_transform_publisher", name=f"sgft_tf_{t.child}",
                     arguments=t.arguments(), output="log") for t in transforms]
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        # before every node, the drivers' included ones too: they all share one transport profile
        *[SetEnvironmentVariable(k, v) for k, v in transport_environment().items()],
        DeclareLaunchArgument("task", default_value="push",
                              description="a task with a config/<task>.yaml (shipped: push, hammer, insert)"),
        DeclareLaunchArgument("config", default_value="", description="parameter YAML (default: config/<task>.yaml)"),
        DeclareLaunchArgument("site", description="the lab's site file (robot profile, robot_ip, cameras with "
                                                  "serials and calibrated extrinsics; see config/site_template.yaml)"),
        DeclareLaunchArgument("bringup", default_value="false",
                              description="true: also start the robot driver of the site's robot profile and one "
                                          "realsense2_camera per site camera; false: they are already running"),
        DeclareLaunchArgument("rviz", default_value="false", description="true: start rviz2 with config/sgft.rviz"),
        Node(package="rviz2", executable="rviz2", condition=IfCondition(LaunchConfiguration("rviz")),
             arguments=["-d", PathJoinSubstitution([FindPackageShare("sgft_bringup"), "rviz", "sgft.rviz"])]),
        OpaqueFunction(function=_setup),
    ])
