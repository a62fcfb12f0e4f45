"""How often does a pair of DDS endpoints fail to match when several ROS 2 processes start together?

    source setup.bash && python tools/dds_match_check.py --rounds 20            # the graph's profile (setup.bash)
    python tools/dds_match_check.py --rounds 20 --transport LARGE_DATA             # a built-in choice instead

Each round starts --peers processes at once (or --stagger seconds apart); each publishes one message on a topic of
its own (reliable, transient local, as the graph's transitions) and subscribes to every other peer's. A peer that has
not heard from another after --wait seconds reports the pair missing. The summary line counts the rounds with any
missing pair (docs/results.md, "Transports").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from sgft_interfaces.qos import select_transport


def peer(name: str, names: list[str], wait_s: float) -> None:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node(f"match_check_{name}")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher = node.create_publisher(String, f"/match_check/{name}", qos)
    heard: set[str] = set()
    for other in names:
        if other != name:
            node.create_subscription(String, f"/match_check/{other}", lambda _, o=other: heard.add(o), qos)
    publisher.publish(String(data=name))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:  # stay the whole time: a peer that left early would be missed by the rest
        rclpy.spin_once(node, timeout_sec=0.05)
    missing = sorted(set(names) - heard - {name})
    print(f"{name} missing {','.join(missing)}" if missing else f"{name} ok", flush=True)
    node.destroy_node()
    rclpy.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--peers", type=int, default=5)
    parser.add_argument("--wait", type=float, default=8.0, help="seconds each peer waits for the others")
    parser.add_argument("--stagger", type=float, default=0.0, help="seconds between peer starts")
    parser.add_argument("--transport", default="profile",
                        help="'profile' (the graph's, from setup.bash) or a FASTDDS_BUILTIN_TRANSPORTS value")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer(args.peer, args.names.split(","), args.wait)
        return 0
    os.environ.setdefault("ROS_DOMAIN_ID", "61")
    transport = select_transport(args.transport)  # inherited by the peers
    names = [chr(ord("a") + i) for i in range(args.peers)]
    failed = 0
    for round_index in range(1, args.rounds + 1):
        procs = []
        for name in names:
            procs.append(subprocess.Popen([sys.executable, __file__, "--peer", name, "--names", ",".join(names),
                                           "--wait", str(args.wait)], stdout=subprocess.PIPE, text=True))
            time.sleep(args.stagger)
        lines = [proc.communicate()[0].strip() for proc in procs]
        missing = [line for line in lines if "missing" in line]
        if missing:
            failed += 1
            print(f"round {round_index}: {'; '.join(missing)}", flush=True)
    print(f"{transport}, {args.peers} peers, "
          f"stagger {args.stagger} s: {failed} of {args.rounds} rounds with a missing pair")
    return 0


if __name__ == "__main__":
    sys.exit(main())
