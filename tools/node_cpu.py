#!/usr/bin/env python3
"""CPU share of each running SGFT node, sampled over fixed windows: where a demo's two cores go.

    python tools/node_cpu.py --interval 10 > node_cpu.log &   # beside `make demo`; stop it with kill or Ctrl-C
    python tools/node_cpu.py --interval 10 --windows 6         # one minute, then exit

One line per window: seconds since start, then each node's CPU in % of one core (100 = a whole core; this machine
has 200). Nodes are found by the `__node:=<name>` remapping that run_graph and ros2 launch put on their command
lines, so nodes started later (or restarted) are picked up at the next window. The figures on how the idle graph
competes with the learner's catch-up come from this (docs/results.md, "Wall time and where the CPU goes").
"""

from __future__ import annotations

import argparse
import sys
import time

import psutil


def node_name(process: psutil.Process) -> str | None:
    """The ROS node name from a process's `__node:=` remapping, None for other processes."""
    try:
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return next((arg.split(":=", 1)[1] for arg in cmdline if arg.startswith("__node:=")), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=10.0, help="window length in seconds")
    parser.add_argument("--windows", type=int, default=0, help="stop after this many windows (0: run until killed)")
    parser.add_argument("--prefix", default="sgft_", help="only nodes whose name starts with this")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be > 0")

    tracked: dict[int, tuple[str, psutil.Process]] = {}
    start, window = time.monotonic(), 0
    try:
        while args.windows <= 0 or window < args.windows:
            for process in psutil.process_iter():
                if process.pid not in tracked and (name := node_name(process)) and name.startswith(args.prefix):
                    process.cpu_percent(None)  # the first call only starts the process's window
                    tracked[process.pid] = (name, process)
            time.sleep(args.interval)
            window += 1
            shares = []
            for pid, (name, process) in list(tracked.items()):
                try:
                    shares.append(f"{name} {process.cpu_percent(None):.0f}%")
                except psutil.NoSuchProcess:
                    del tracked[pid]
            print(f"{time.monotonic() - start:6.0f} s  " + " | ".join(shares), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
