"""Teleoperation for interventions: a keyboard or a SpaceMouse read into the task's normalized action, published as
sgft_msgs/Intervention for the policy node to command instead of the actor's (bounded by its safety envelope).

    python -m sgft_policy.teleop --task push --device keyboard [--speed 0.5] [--ros-args -p use_sim_time:=true]

Axes: the task's action axes in order (push: x, y; insert: x, y, z; hammer: joints 2, 4, 6). Keyboard: up/down move
along axis 0 (Cartesian: +x away from the base), left/right along axis 1 (+y to the robot's left), page up/down
along axis 2 (+z), space takes over standing still, q quits. A terminal tells key presses, never releases, so a key
counts as held while it repeats: until `release_s` after its last repeat, or `first_release_s` after a single press
(terminals wait about half a second before repeating). SpaceMouse (pyspacemouse, not a dependency of the suite:
`pip install pyspacemouse`): pushed forward is +x, right is -y, lifted is +z; any button takes over standing still.

The device state is published at --rate, active or not, so a lost message is replaced at once and the policy node
can tell a device that stopped sending (it aborts the episode) from one that was let go (active=false). Nothing but
`main` needs ROS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

# terminal escape sequences of the keys used
KEYS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left", "\x1b[5~": "page_up",
        "\x1b[6~": "page_down", " ": "space", "q": "quit"}
# key -> (action axis, sign)
KEY_AXES = {"up": (0, 1.0), "down": (0, -1.0), "left": (1, 1.0), "right": (1, -1.0), "page_up": (2, 1.0),
            "page_down": (2, -1.0)}
# SpaceMouse translation (x right, y forward, z up) -> action axes 0, 1, 2: (device axis, sign)
SPACEMOUSE_AXES = (("y", 1.0), ("x", -1.0), ("z", 1.0))


class TeleopError(RuntimeError):
    """A device that cannot be used (missing package, not connected)."""


def parse_keys(data: str) -> tuple[list[str], str]:
    """The keys named in terminal input, and an escape sequence cut off at its end, for the next read. Other input
    is skipped."""
    keys, i = [], 0
    while i < len(data):
        if data[i] == "\x1b":
            match = next((seq for seq in KEYS if data.startswith(seq, i)), None)
            if match is None:
                if any(seq.startswith(data[i:]) for seq in KEYS):
                    return keys, data[i:]
                i += 1
                continue
            keys.append(KEYS[match])
            i += len(match)
            continue
        if data[i] in KEYS:
            keys.append(KEYS[data[i]])
        i += 1
    return keys, ""


class KeyboardTeleop:
    """Held keys (as the terminal repeats them) to (active, action)."""

    def __init__(self, action_dim: int, speed: float = 0.5, release_s: float = 0.3,
                 first_release_s: float = 0.6) -> None:
        if not 0.0 < speed <= 1.0:
            raise ValueError(f"speed {speed} outside (0, 1]")
        self.action_dim, self.speed = action_dim, speed
        self.release_s, self.first_release_s = release_s, first_release_s
        self.pressed: dict[str, tuple[float, float]] = {}  # key -> (first, last) time seen in this hold

    def _held_until(self, first: float, last: float) -> float:
        return last + (self.release_s if last > first else self.first_release_s)

    def press(self, key: str, now: float) -> None:
        first, last = self.pressed.get(key, (now, now))
        if now > self._held_until(first, last):
            first = now  # released in between: a new press
        self.pressed[key] = (first, now)

    def state(self, now: float) -> tuple[bool, np.ndarray]:
        self.pressed = {k: v for k, v in self.pressed.items() if now <= self._held_until(*v)}
        action = np.zeros(self.action_dim, dtype=np.float32)
        for key in self.pressed:
            axis, sign = KEY_AXES.get(key, (self.action_dim, 0.0))
            if axis < self.action_dim:
                action[axis] += sign * self.speed
        active = any(key in KEY_AXES or key == "space" for key in self.pressed)
        return active, np.clip(action, -1.0, 1.0)


def spacemouse_action(state, action_dim: int, speed: float = 1.0, deadzone: float = 0.1) -> tuple[bool, np.ndarray]:
    """(active, action) of a pyspacemouse state (x, y, z in [-1, 1], buttons): axes within the deadzone read 0; the
    device is active while it is deflected or a button is pressed."""
    values = np.array([sign * float(getattr(state, axis)) for axis, sign in SPACEMOUSE_AXES[:action_dim]])
    values = np.where(np.abs(values) < deadzone, 0.0, values)
    buttons = getattr(state, "buttons", getattr(state, "button", ()))  # renamed between pyspacemouse releases
    active = bool(np.any(values != 0.0) or any(buttons))
    return active, np.clip(speed * values, -1.0, 1.0).astype(np.float32)


class SpaceMouseTeleop:
    def __init__(self, action_dim: int, speed: float = 1.0) -> None:
        try:
            import pyspacemouse  # optional: only this backend needs it (and hidapi)
        except ImportError as err:
            raise TeleopError("the SpaceMouse backend needs pyspacemouse: pip install pyspacemouse "
                              "(and the hidapi library, libhidapi-dev on Ubuntu)") from err
        if not pyspacemouse.open():
            raise TeleopError("no SpaceMouse found (connected? hidraw permissions?)")
        self.device, self.action_dim, self.speed = pyspacemouse, action_dim, speed

    def state(self, now: float) -> tuple[bool, np.ndarray]:
        return spacemouse_action(self.device.read(), self.action_dim, self.speed)


def intervention_msg(active: bool, action: np.ndarray, stamp_ns: int):
    from sgft_msgs.msg import Intervention
    from sgft_policy.assembly import time_msg

    msg = Intervention(active=bool(active), action=[float(v) for v in action])
    msg.header.stamp = time_msg(stamp_ns)
    return msg


def main(argv: Sequence[str] | None = None) -> int:
    import rclpy
    from rclpy.utilities import remove_ros_args

    from sgft_core.tasks import get_task
    from sgft_interfaces import COMMAND_QOS, Topics
    from sgft_msgs.msg import Intervention

    args_in = list(sys.argv if argv is None else ["teleop", *argv])
    parser = argparse.ArgumentParser(prog="python -m sgft_policy.teleop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="push")
    parser.add_argument("--device", choices=("keyboard", "spacemouse"), default="keyboard")
    parser.add_argument("--speed", type=float, default=0.5, help="action magnitude at full deflection, (0, 1]")
    parser.add_argument("--rate", type=float, default=20.0, help="publishing rate (Hz)")
    args = parser.parse_args(remove_ros_args(args_in)[1:])
    spec = get_task(args.task)
    try:
        device = (KeyboardTeleop(spec.action_dim, args.speed) if args.device == "keyboard"
                  else SpaceMouseTeleop(spec.action_dim, args.speed))
    except (TeleopError, ValueError) as err:
        print(f"teleop: {err}", file=sys.stderr)
        return 2
    rclpy.init(args=args_in)
    node = rclpy.create_node("sgft_teleop")
    pub = node.create_publisher(Intervention, Topics.INTERVENTION, COMMAND_QOS)
    print(f"teleop {args.device} for {spec.name}: axes {list(spec.action_names)}"
          + (" (arrows, page up/down; space: hold still; q: quit)" if args.device == "keyboard" else ""),
          file=sys.stderr)

    def publish(active: bool, action: np.ndarray) -> None:
        pub.publish(intervention_msg(active, action, node.get_clock().now().nanoseconds))

    try:
        if isinstance(device, KeyboardTeleop):
            _keyboard_loop(node, device, publish, 1.0 / args.rate)
        else:
            while rclpy.ok():
                publish(*device.state(0.0))
                rclpy.spin_once(node, timeout_sec=1.0 / args.rate)
    except KeyboardInterrupt:
        pass
    finally:
        for _ in range(3):  # released, not lost: the policy takes over instead of aborting
            publish(False, np.zeros(spec.action_dim, dtype=np.float32))
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _keyboard_loop(node, device: KeyboardTeleop, publish, period: float) -> None:
    import os
    import select
    import termios
    import time
    import tty

    import rclpy

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)  # key by key, no echo; Ctrl-C still interrupts
    pending = ""
    try:
        while rclpy.ok():
            deadline = time.monotonic() + period
            while (left := deadline - time.monotonic()) > 0:
                if select.select([fd], [], [], left)[0]:
                    keys, pending = parse_keys(pending + os.read(fd, 64).decode(errors="ignore"))
                    if "quit" in keys:
                        return
                    for key in keys:
                        device.press(key, time.monotonic())
            publish(*device.state(time.monotonic()))
            rclpy.spin_once(node, timeout_sec=0.0)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    sys.exit(main())
