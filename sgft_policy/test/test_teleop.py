"""The teleop devices' mapping to the task's action, without a terminal, a SpaceMouse or ROS."""

import builtins
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from sgft_policy.teleop import KeyboardTeleop, SpaceMouseTeleop, TeleopError, parse_keys, spacemouse_action


def test_terminal_input_becomes_key_names():
    assert parse_keys("\x1b[A\x1b[D x") == (["up", "left", "space"], "")
    assert parse_keys("\x1b[5~\x1b[6~q") == (["page_up", "page_down", "quit"], "")
    assert parse_keys("\x1b[B\x1b[") == (["down"], "\x1b[")  # cut off: completed by the next read
    assert parse_keys("\x1b[" + "C") == (["right"], "")
    assert parse_keys("\x1bOP\x1b[1;5A") == ([], "")  # other keys are skipped


def test_arrows_and_pages_move_the_tasks_axes():
    keyboard = KeyboardTeleop(3, speed=0.5)
    for key in ("up", "left", "page_down"):
        keyboard.press(key, 10.0)
    active, action = keyboard.state(10.05)
    assert active and action.tolist() == [0.5, 0.5, -0.5] and action.dtype == np.float32
    planar = KeyboardTeleop(2, speed=1.0)
    planar.press("right", 10.0)
    planar.press("page_up", 10.0)  # push has no z: ignored, but the operator is holding a key
    assert planar.state(10.0)[1].tolist() == [0.0, -1.0]


def test_a_held_key_stays_active_while_it_repeats_and_releases_after_release_s():
    keyboard = KeyboardTeleop(2, release_s=0.3, first_release_s=0.6)
    keyboard.press("up", 10.0)
    assert keyboard.state(10.55)[0]  # the terminal's delay before it repeats
    for t in (10.5, 10.53, 10.56):
        keyboard.press("up", t)
    assert keyboard.state(10.8)[0]
    active, action = keyboard.state(10.9)
    assert not active and action.tolist() == [0.0, 0.0]
    keyboard.press("down", 11.0)  # a single tap
    assert keyboard.state(11.6)[0] and not keyboard.state(11.61)[0]


def test_space_takes_over_standing_still():
    keyboard = KeyboardTeleop(2)
    keyboard.press("space", 1.0)
    active, action = keyboard.state(1.1)
    assert active and action.tolist() == [0.0, 0.0]


def test_spacemouse_axes_deadzone_and_buttons():
    state = SimpleNamespace(x=0.5, y=1.0, z=-0.05, buttons=[0, 0])
    active, action = spacemouse_action(state, 3, speed=0.5)
    assert active and action.tolist() == pytest.approx([0.5, -0.25, 0.0])  # forward is +x, right is -y
    resting = SimpleNamespace(x=0.02, y=-0.05, z=0.0, buttons=[0, 0])
    assert not spacemouse_action(resting, 2)[0]
    assert spacemouse_action(SimpleNamespace(x=0.0, y=0.0, z=0.0, button=[1, 0]), 2) == (True, pytest.approx([0, 0]))


def test_the_spacemouse_backend_says_how_to_install_pyspacemouse(monkeypatch):
    real_import = builtins.__import__

    def no_pyspacemouse(name, *args, **kwargs):
        if name == "pyspacemouse":
            raise ImportError("No module named 'pyspacemouse'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyspacemouse)
    with pytest.raises(TeleopError, match="pip install pyspacemouse"):
        SpaceMouseTeleop(2)


def test_the_cli_refuses_a_missing_spacemouse_with_the_reason():
    run = subprocess.run([sys.executable, "-m", "sgft_policy.teleop", "--task", "push", "--device", "spacemouse"],
                         capture_output=True, text=True, timeout=60)
    if "pyspacemouse" not in run.stderr and run.returncode == 2:
        pytest.skip(f"pyspacemouse is installed here: {run.stderr.strip()}")
    assert run.returncode == 2 and "pip install pyspacemouse" in run.stderr, run.stderr
