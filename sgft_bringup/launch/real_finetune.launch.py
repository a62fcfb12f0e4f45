"""SGFT fine-tuning on a real FR3 with RealSense D455s:
`ros2 launch sgft_bringup real_finetune.launch.py task:=push robot_ip:=172.16.0.2 camera1_serial:=...`

Starts the Franka bringup (franka_ros2) with the controller named by `controller`, one or two realsense2_camera
drivers with the colored point cloud enabled, and the SGFT nodes from sgft_bringup.graph in "real" mode (no
simulated robot, wall-clock time). The Cartesian target topic of your controller is a parameter of the policy node.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from sgft_bringup.graph import graph_nodes, transport_environment


def _nodes(context):
    task = LaunchConfiguration("task").perform(context)
    config = LaunchConfiguration("config").perform(context) or None
    target_topic = LaunchConfiguration("cartesian_target_topic").perform(context)
    overrides = {"sgft_policy": {"cartesian_target_topic": target_topic}}
    return [Node(package=n.package, executable=n.executable, name=n.name, parameters=[n.parameters], output="screen")
            for n in graph_nodes(task, "real", config, overrides)]


def _camera(name: str, serial: LaunchConfiguration, condition=None):
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch",
                                                            "rs_launch.py"])),
        launch_arguments={"camera_name": name, "camera_namespace": name, "serial_no": serial,
                          "pointcloud.enable": "true", "align_depth.enable": "true",
                          "depth_module.depth_profile": "848x480x30"}.items(),
        condition=condition)


def generate_launch_description() -> LaunchDescription:
    camera2_serial = LaunchConfiguration("camera2_serial")
    return LaunchDescription([
        # before every node, the drivers' included ones too: they all share one transport profile
        *[SetEnvironmentVariable(k, v) for k, v in transport_environment().items()],
        DeclareLaunchArgument("task", default_value="push",
                              description="a task with a config/<task>.yaml (shipped: push, hammer, insert)"),
        DeclareLaunchArgument("config", default_value="", description="parameter YAML (default: config/<task>.yaml)"),
        DeclareLaunchArgument("robot_ip", description="IP of the FR3 control box"),
        DeclareLaunchArgument("camera1_serial", default_value="", description="serial of the first D455"),
        DeclareLaunchArgument("camera2_serial", default_value="", description="serial of the second D455 (optional)"),
        DeclareLaunchArgument("controller", default_value="cartesian_impedance_controller",
                              description="controller franka_bringup starts"),
        DeclareLaunchArgument("cartesian_target_topic", default_value="/cartesian_impedance_controller/target_pose",
                              description="PoseStamped target topic of that controller"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch",
                                                                "franka.launch.py"])),
            launch_arguments={"robot_ip": LaunchConfiguration("robot_ip"),
                              "arm_id": "fr3", "controller_name": LaunchConfiguration("controller")}.items()),
        _camera("camera1", LaunchConfiguration("camera1_serial")),
        _camera("camera2", camera2_serial, IfCondition(PythonExpression(["'", camera2_serial, "' != ''"]))),
        Node(package="rviz2", executable="rviz2", arguments=["-d", PathJoinSubstitution(
            [FindPackageShare("sgft_bringup"), "rviz", "sgft.rviz"])]),
        OpaqueFunction(function=_nodes),
    ])
