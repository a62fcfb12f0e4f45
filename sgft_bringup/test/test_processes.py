"""The graph's nodes as real processes: every executable a launch file or run_graph starts is a console script of
its package, run_graph starts the installed executables, and each node stops cleanly on SIGINT twice in a row."""

import ast
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import write_site

from sgft_bringup.graph import graph_nodes, share_dir
from sgft_bringup.run_graph import node_command, start
from sgft_core.tasks import TASKS

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {"sgft_sim": "sim", "sgft_bringup": "sgft_bringup", "sgft_policy": "sgft_policy",
                "sgft_perception": "sgft_perception", "sgft_learner": "sgft_learner"}


def console_scripts(package: str) -> set[str]:
    tree = ast.parse((REPO / PACKAGE_DIRS[package] / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            scripts = ast.literal_eval(node.value)["console_scripts"]
            return {s.split("=")[0].strip() for s in scripts}
    return set()


def test_every_executable_started_is_a_console_script_of_its_package(tmp_path):
    site = write_site(tmp_path / "site.yaml")
    started = {(n.package, n.executable) for task in TASKS for n in graph_nodes(task, "sim")}
    started |= {(n.package, n.executable) for n in graph_nodes("push", "real", site=site)}
    started.add(("sgft_bringup", "finetune_session"))
    for launch in (REPO / "sgft_bringup" / "launch").glob("*.launch.py"):
        text = launch.read_text()
        started |= set(re.findall(r'package="(sgft_\w+)", executable="(\w+)"', text))
    for package, executable in sorted(started):
        assert executable in console_scripts(package), f"{package} has no console script {executable}"


def test_run_graph_starts_the_installed_executable(tmp_path):
    node = graph_nodes("push", "sim")[0]
    cmd = node_command(node, tmp_path / "p.yaml")
    assert Path(cmd[1]).parts[-3:] == ("lib", "sgft_sim", "robot_node") and "-m" not in cmd


def test_every_node_stops_on_two_sigints_within_5_s_without_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "61")
    nodes = graph_nodes("push", "sim", overrides={"sgft_learner": {"run_dir": str(tmp_path / "run")}})
    procs = {n.name: start(n, tmp_path, tmp_path) for n in nodes}
    try:
        deadline = time.monotonic() + 90  # torch imports and checkpoints on a busy 2-core machine
        logs = {name: tmp_path / f"{name}.log" for name in procs}
        while time.monotonic() < deadline and not all(log.stat().st_size > 0 for log in logs.values()):
            assert all(p.poll() is None for p in procs.values()), {n: logs[n].read_text() for n in procs}
            time.sleep(0.5)
        time.sleep(5.0)  # spinning, not importing
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited early:\n{logs[name].read_text()}"
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not stop within 5 s of two SIGINTs:\n{logs[name].read_text()}")
            proc.log.close()
            text = logs[name].read_text()
            assert "Traceback" not in text, f"{name}:\n{text}"
            assert code == 0, f"{name} exited with {code}:\n{text}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_shipped_launch_files_are_the_installed_ones():
    for launch in (REPO / "sgft_bringup" / "launch").glob("*.launch.py"):
        assert (share_dir() / "launch" / launch.name).is_file()
