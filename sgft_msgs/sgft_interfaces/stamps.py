"""Header stamps from peers, checked before use: any process on the DDS domain can publish, and a stamp is data.

A negative stamp makes rclpy's Time raise, a zero stamp is "never set", and a stamp in the future never goes stale.
Every node that reads a stamp goes through `stamp_problem` first; the ones that pass convert with `stamp_ns`.
"""

from __future__ import annotations

from builtin_interfaces.msg import Time as TimeMsg

NS_PER_S = 1_000_000_000


def stamp_ns(stamp: TimeMsg) -> int:
    """Nanoseconds of a stamp that `stamp_problem` accepted (no rclpy Time: it raises on negative seconds)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_problem(stamp: TimeMsg, now_ns: int, max_future_s: float) -> str:
    """Why a header stamp is not a usable measurement time, or "" when it is. `now_ns` is the reader's clock (0:
    not known yet, as under sim time before the first /clock; then the future is not checked)."""
    if stamp.sec < 0:
        return f"negative stamp ({stamp.sec} s)"
    if stamp.nanosec >= NS_PER_S:
        return f"stamp nanosec {stamp.nanosec} ≥ 1e9"
    ns = stamp_ns(stamp)
    if ns == 0:
        return "zero stamp (never set)"
    if now_ns > 0 and ns - now_ns > max_future_s * NS_PER_S:
        return f"stamp {(ns - now_ns) / NS_PER_S:.3f} s in the future (more than {max_future_s} s)"
    return ""
