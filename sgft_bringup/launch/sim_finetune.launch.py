"""SGFT fine-tuning against the simulated robot: `ros2 launch sgft_bringup sim_finetune.launch.py task:=push`.

The nodes and their parameters come from sgft_bringup.graph (the same definition run_graph uses).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from sgft_bringup.graph import graph_nodes, transport_environment


def _nodes(context):
    task = LaunchConfiguration("task").perform(context)
    config = LaunchConfiguration("config").perform(context) or None
    return [Node(package=n.package, executable=n.executable, name=n.name, parameters=[n.parameters], output="screen")
            for n in graph_nodes(task, "sim", config)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        # before every node, the drivers' included ones too: they all share one transport profile
        *[SetEnvironmentVariable(k, v) for k, v in transport_environment().items()],
        DeclareLaunchArgument("task", default_value="push",
                              description="a task with a config/<task>.yaml (shipped: push, hammer, insert)"),
        DeclareLaunchArgument("config", default_value="", description="parameter YAML (default: config/<task>.yaml)"),
        OpaqueFunction(function=_nodes),
    ])
