"""Start the SGFT graph without `ros2 launch` (the PyPI wheels have no launch): the nodes of graph.py as processes.

    python -m sgft_bringup.run_graph --task push                 # the graph, until Ctrl-C
    python -m sgft_bringup.run_graph --task push --session       # + a fine-tuning session; exits when it is done
    python -m sgft_bringup.run_graph --task push --set sgft_sim_robot.time_scale=1.0
    python -m sgft_bringup.run_graph --task push --set sgft_learner.finetune.horizon=none
    python -m sgft_bringup.run_graph --task push --profile crisp          # the sim robot speaks crisp's names
    python -m sgft_bringup.run_graph --task push --mode real --site ~/sgft_site.yaml   # drivers already running

Each node gets a parameter file written from the task's YAML, the robot profile and, in real mode, the site file
(same values the launch files pass), and starts as the installed executable a launch file runs
(<prefix>/lib/<package>/<executable>, from the ament index), so both ways run the same code. Node output goes
to <log-dir>/<node>.log; a node that exits unexpectedly is reported at once, and the others keep running (the
policy node holds the robot when its inputs go stale), so a crash never turns into a silent hang.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sgft_bringup.graph import MODES, TASKS, GraphNode, graph_nodes, session_parameters, transport_environment
from sgft_bringup.profiles import available as available_profiles
from sgft_core import overrides as key_value


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """["node.param=value", "node.group.param=value", ...] → {node: {param: value, group: {param: value}}}, values
    typed as sgft_core.overrides reads them."""
    try:
        flat = key_value.parse_overrides(items)
        bad = [key for key in flat if "." not in key]
        if bad:
            raise ValueError(f"expected node.param=value, got {', '.join(bad)}")
        return key_value.nest(flat)
    except ValueError as err:
        raise SystemExit(f"--set: {err}") from err


def clean_shared_memory() -> None:
    """Free the shared-memory segments and ports of Fast DDS processes that died: a crash or SIGKILL leaves them in
    /dev/shm (up to the profile's 64 MiB each, in RAM). `fastdds shm clean` removes only those whose owner is gone."""
    if shutil.which("fastdds") is None:
        return
    try:
        result = subprocess.run(["fastdds", "shm", "clean"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        result = err
    lines = [line.strip() for line in getattr(result, "stdout", "").splitlines()]
    if not any(line.startswith("shm.clean") for line in lines):  # e.g. psutil missing: said on stdout, exit 0
        print(f"run_graph: `fastdds shm clean` did not run ({'; '.join(lines) or result}); going on", file=sys.stderr)
        return
    cleaned = [line for line in lines if "zombie" in line and not line.startswith("0 ")]
    if cleaned:
        print(f"run_graph: shared memory of dead processes freed ({', '.join(cleaned)})", flush=True)


def executable(package: str, name: str) -> str:
    """The installed console script `ros2 run package name` and launch_ros start: <prefix>/lib/<package>/<name>.
    ValueError with what to do when the package is not built or lacks it."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError as err:
        raise ValueError(f"ament_index_python is not installed ({err}); source setup.bash") from None
    try:
        prefix = Path(get_package_prefix(package))
    except PackageNotFoundError:
        raise ValueError(f"package {package} is not built: run `make build` (colcon build) and source "
                         "setup.bash") from None
    path = prefix / "lib" / package / name
    if not os.access(path, os.X_OK):
        raise ValueError(f"{path} does not exist: {package} was built without its `{name}` console script; "
                         f"rebuild it (colcon build --packages-select {package}) and source setup.bash")
    return str(path)


def node_command(node: GraphNode, params_file: Path) -> list[str]:
    # the installed script has a shebang to the venv's python; run it with this interpreter so the environment
    # (PYTHONPATH, a source checkout first) is the one run_graph was started with
    return [sys.executable, executable(node.package, node.executable), "--ros-args", "-r", f"__node:={node.name}",
            "--params-file", str(params_file)]


def start(node: GraphNode, params_dir: Path, log_dir: Path) -> subprocess.Popen:
    params_file = params_dir / f"{node.name}.yaml"
    params_file.write_text(yaml.safe_dump({node.name: {"ros__parameters": node.parameters}}))
    cmd = node_command(node, params_file)
    log = open(log_dir / f"{node.name}.log", "w")  # noqa: SIM115 - closed when the process is reaped
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def stop_all(procs: dict[str, subprocess.Popen], timeout_s: float = 15.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"run_graph: {name} did not stop in time, killing it", file=sys.stderr)
            proc.kill()
            proc.wait()
        proc.log.close()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="push", choices=TASKS)
    parser.add_argument("--mode", default="sim", choices=MODES,
                        help="sim: the simulated robot on sim time; real: your robot and cameras (needs --site); "
                             "real-sim: the real-robot graph (wall clock, reset server, operator) against the "
                             "simulated robot")
    parser.add_argument("--config", help="parameter YAML (default: the package's config/<task>.yaml)")
    parser.add_argument("--profile", choices=available_profiles(),
                        help="robot interface profile (config/profiles; default: sim; real mode: the site's)")
    parser.add_argument("--site", help="site file (required in real mode; config/site_template.yaml documents it)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override one parameter (repeatable)")
    parser.add_argument("--session", action="store_true", help="run a fine-tuning session, then stop the graph")
    parser.add_argument("--log-dir", default="log/graph", help="one log file per node")
    args = parser.parse_args(argv)

    overrides = parse_overrides(args.set)
    try:
        nodes = graph_nodes(args.task, args.mode, args.config, overrides, args.profile, args.site)
        commands = {node.name: executable(node.package, node.executable) for node in nodes}
        if args.session:
            commands["sgft_finetune_session"] = executable("sgft_bringup", "finetune_session")
            session_params = session_parameters(args.task, args.mode, args.config, overrides, args.profile,
                                                args.site)
    except ValueError as err:  # no parameter file, a bad profile or site, a package not built: start nothing
        parser.error(str(err))
    os.environ.update(transport_environment())  # inherited by the nodes and the session
    clean_shared_memory()
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    params_dir = Path(tempfile.mkdtemp(prefix="sgft_params_"))
    interrupted = False

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    status = 0
    try:
        for node in nodes:
            procs[node.name] = start(node, params_dir, log_dir)
        print(f"run_graph: started {', '.join(procs)} (logs in {log_dir}/)", flush=True)
        session = None
        if args.session:
            params = session_params
            session_node = GraphNode("sgft_finetune_session", "sgft_bringup", "sgft_bringup.finetune_session",
                                     "finetune_session", params)
            params_file = params_dir / "sgft_finetune_session.yaml"
            params_file.write_text(yaml.safe_dump({session_node.name: {"ros__parameters": params}}))
            # the session prints progress to this terminal
            session = subprocess.Popen(node_command(session_node, params_file))
        reported: set[str] = set()
        while not interrupted:
            for name, proc in procs.items():
                if proc.poll() is not None and name not in reported:
                    reported.add(name)
                    tail = (log_dir / f"{name}.log").read_text().splitlines()[-15:]
                    print(f"run_graph: node {name} exited with code {proc.returncode}; last lines of its log:\n  "
                          + "\n  ".join(tail), file=sys.stderr, flush=True)
                    status = 1
            if session is not None and session.poll() is not None:
                status = status or session.returncode
                break
            time.sleep(0.2)
        if session is not None and session.poll() is None:
            session.send_signal(signal.SIGINT)
            session.wait(timeout=15)
    finally:
        stop_all(procs)
    return status


if __name__ == "__main__":
    sys.exit(main())
