"""What every SGFT node shares: `run_node` (init, construct, spin, shutdown; a refused start-up exits with code 2)
and `declared` (a parameter declared with its type, default and description, read back in one call)."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], name: str, refuse: tuple[type[BaseException], ...] = (ValueError,),
             args: list[str] | None = None) -> int:
    """Run a node until Ctrl-C or shutdown. A `refuse` exception from its constructor (a bad parameter, an
    unreadable checkpoint) stops the start-up loudly with exit code 2: never run with a guessed value."""
    rclpy.init(args=args)
    try:
        node = make_node()
    except refuse as err:
        rclpy.logging.get_logger(name).fatal(f"refusing to start: {err}")
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def declared(node: Node, name: str, default, description: str):
    """Declare `name` (typed by its default) with a description for `ros2 param describe`, and return its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value
