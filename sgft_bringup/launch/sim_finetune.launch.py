"""SGFT fine-tuning against the simulated robot: `ros2 launch sgft_bringup sim_finetune.launch.py task:=push`.

The nodes and their parameters come from sgft_bringup.graph (the same definition run_graph uses); `profile:=crisp`
makes the simulated robot and the nodes speak that robot profile's names.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from sgft_bringup.graph import DEFAULT_PROFILE, camera_transforms, graph_config, graph_nodes, transport_environment


def _nodes(context):
    task = LaunchConfiguration("task").perform(context)
    config = LaunchConfiguration("config").perform(context) or None
    profile = LaunchConfiguration("profile").perform(context)
    try:
        nodes = graph_nodes(task, "sim", config, profile=profile)
        transforms = camera_transforms(graph_config(task, config, profile=profile))
    except ValueError as err:  # a bad profile or one that cannot serve the task: start nothing
        raise RuntimeError(str(err)) from None
    # base → the simulated cameras' optical frames: rviz draws the clouds in the base frame
    return [Node(package=n.package, executable=n.executable, name=n.name, parameters=[n.parameters], output="screen")
            for n in nodes] + [Node(package="tf2_ros", executable="static_transform_publisher",
                                    name=f"sgft_tf_{t.child}", arguments=t.arguments(), output="log")
                               for t in transforms]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        # before every node: they all share one transport profile
        *[SetEnvironmentVariable(k, v) for k, v in transport_environment().items()],
        DeclareLaunchArgument("task", default_value="push",
                              description="a task with a config/<task>.yaml (shipped: push, hammer, insert)"),
        DeclareLaunchArgument("config", default_value="", description="parameter YAML (default: config/<task>.yaml)"),
        DeclareLaunchArgument("profile", default_value=DEFAULT_PROFILE,
                              description="robot interface profile in config/profiles (names the nodes speak)"),
        OpaqueFunction(function=_nodes),
    ])
