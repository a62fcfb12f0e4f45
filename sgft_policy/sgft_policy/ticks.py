"""When the control loop ticks: on multiples of the control period of the node's clock, without ROS.

Ticks fall on multiples of the period, so a simulated robot can phase its camera frames to them and wait for each
tick's command (sgft_sim.robot_node); an rcl timer would tick on multiples counted from whenever it was created. The
node feeds the scheduler its clock readings: under sim time each /clock message (the tick then runs in the callback
of the message that crosses a multiple, so it never waits for the next one, which a simulated robot holding its clock
until it has the command would send in vain); on the wall clock a poll at 1/50 of the period, ticking on the first
reading past each multiple. A clock that stalls gives no tick; one that jumps gives one tick, never a burst.

With `waits_for_inputs` (under sim time), a tick of a running episode whose inputs are behind it waits until they
arrive (an input callback calls `on_input`), or at most until the next tick.
"""

from __future__ import annotations

from collections.abc import Callable


class TickScheduler:
    def __init__(self, period: float, waits_for_inputs: bool, run_tick: Callable[[int], None],
                 inputs_behind: Callable[[int], bool], running: Callable[[], bool],
                 on_lateness: Callable[[float], None] | None = None) -> None:
        """run_tick(tick_ns) runs the loop for the tick at that time; inputs_behind(tick_ns) says whether it would
        act on inputs from before it; running() whether an episode runs; on_lateness(s) gets how far past its
        multiple of the period each tick of an episode was noticed."""
        self.period, self.period_ns = period, round(period * 1e9)
        self.waits_for_inputs = waits_for_inputs
        self._run_tick, self._inputs_behind, self._running = run_tick, inputs_behind, running
        self._on_lateness = on_lateness
        self.tick_index: int | None = None
        self.waiting_tick_ns: int | None = None  # a tick waiting for the inputs of its time

    def on_time(self, now_ns: int) -> None:
        """A reading of the clock (ns); 0 means no /clock yet."""
        if now_ns == 0:
            return
        index = now_ns // self.period_ns
        if index == self.tick_index:
            return
        self.tick_index = index
        if self._running() and self._on_lateness is not None:
            self._on_lateness(now_ns * 1e-9 - index * self.period)
        if self.waiting_tick_ns is not None:  # its inputs never came (a lost sample): act on what there is
            waiting, self.waiting_tick_ns = self.waiting_tick_ns, None
            self._run_tick(waiting)
        if self.waits_for_inputs and self._running() and self._inputs_behind(now_ns):
            self.waiting_tick_ns = now_ns  # run by the input callback that brings them
            return
        self._run_tick(now_ns)

    def on_input(self) -> None:
        """An input arrived: run the waiting tick if its inputs are all there now."""
        if self.waiting_tick_ns is not None and not self._inputs_behind(self.waiting_tick_ns):
            waiting, self.waiting_tick_ns = self.waiting_tick_ns, None
            self._run_tick(waiting)
