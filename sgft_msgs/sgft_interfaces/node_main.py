"""What every SGFT node shares: `run_node` (init, construct, spin, shutdown; a refused start-up exits with code 2;
single-threaded unless a node asks for worker threads) and `declared` (a parameter declared with its type, default
and description, read back in one call)."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], name: str, refuse: tuple[type[BaseException], ...] = (ValueError,),
             args: list[str] | None = None, threads: int = 1) -> int:
    """Run a node until Ctrl-C or shutdown. A `refuse` exception from its constructor (a bad parameter, an
    unreadable checkpoint) stops the start-up loudly with exit code 2: never run with a guessed value. Ctrl-C, once
    or repeatedly (a launch system sends SIGINT, an impatient operator again), stops it cleanly with exit code 0.
    threads > 1: a MultiThreadedExecutor with that many workers, for a node whose handler blocks (in a
    ReentrantCallbackGroup) while its other callbacks must go on; its destroy_node must release that handler."""
    rclpy.init(args=args)
    try:
        node = make_node()
    except refuse as err:
        rclpy.logging.get_logger(name).fatal(f"refusing to start: {err}")
        _shutdown(None)
        return 2
    except KeyboardInterrupt:  # stopped while starting up
        _shutdown(None)
        return 0
    try:
        _spin(node, name, threads)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _shutdown(node)
    return 0


def _spin(node: Node, name: str, threads: int = 1) -> None:
    """rclpy.spin, except that an exception escaping a callback is logged and counted instead of ending the node.
    Nodes guard their own callbacks; this catches what they cannot reach, such as rclpy's time source raising on a
    /clock message with a negative time that any peer can publish."""
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    logger = rclpy.logging.get_logger(name)
    errors: Counter[str] = Counter()
    while rclpy.ok():
        try:
            executor.spin_once(timeout_sec=0.5)
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as err:  # noqa: BLE001 - a peer's message must never stop the node
            kind = type(err).__name__
            errors[kind] += 1
            if errors[kind] == 1 or errors[kind] % 100 == 0:
                logger.error(f"callback failed ({kind}, {errors[kind]} so far), node goes on: {err}")


def _shutdown(node: Node | None) -> None:
    """Destroy the node and shut rclpy down; a further Ctrl-C meanwhile must not interrupt it halfway (a
    KeyboardInterrupt inside destroy_node leaves a traceback and maybe a half-written file), so SIGINT is ignored
    from here on: the process is already on its way out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if node is not None:
            node.destroy_node()
    except KeyboardInterrupt:  # raised before the handler above took over
        pass
    finally:
        rclpy.try_shutdown()


def declared(node: Node, name: str, default, description: str):
    """Declare `name` (typed by its default) with a description for `ros2 param describe`, and return its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value
