"""Tick scheduling on multiples of the control period, driven with clock readings (no ROS)."""

from sgft_policy.ticks import TickScheduler

PERIOD = 0.2
MS = 1_000_000


class Loop:
    def __init__(self, waits: bool = False) -> None:
        self.ticks: list[int] = []
        self.lateness: list[float] = []
        self.running = True
        self.behind_until_ns = -1  # inputs of ticks up to this time (ns) arrive late
        self.scheduler = TickScheduler(PERIOD, waits, self.ticks.append, lambda ns: ns <= self.behind_until_ns,
                                       lambda: self.running, self.lateness.append)


def test_one_tick_per_multiple_of_the_period_none_before_the_clock():
    loop = Loop()
    for ms in (0, 150, 200, 210, 390, 401, 405, 599, 600):
        loop.scheduler.on_time(ms * MS)
    assert loop.ticks == [150 * MS, 200 * MS, 401 * MS, 600 * MS]
    assert [round(x, 6) for x in loop.lateness] == [0.15, 0.0, 0.001, 0.0]


def test_a_stalled_clock_gives_no_tick_and_a_jump_gives_one():
    loop = Loop()
    loop.scheduler.on_time(1000 * MS)
    for _ in range(5):
        loop.scheduler.on_time(1000 * MS)
    loop.scheduler.on_time(11_003 * MS)  # 10 s ahead: the skipped ticks are not made up
    assert loop.ticks == [1000 * MS, 11_003 * MS]


def test_lateness_is_recorded_during_episodes_only():
    loop = Loop()
    loop.running = False
    loop.scheduler.on_time(230 * MS)
    assert loop.ticks == [230 * MS] and loop.lateness == []


def test_a_tick_waits_for_its_inputs_and_runs_when_they_arrive():
    loop = Loop(waits=True)
    loop.behind_until_ns = 200 * MS
    loop.scheduler.on_time(200 * MS)
    assert loop.ticks == [] and loop.scheduler.waiting_tick_ns == 200 * MS
    loop.scheduler.on_input()  # still behind
    assert loop.ticks == []
    loop.behind_until_ns = -1
    loop.scheduler.on_input()
    assert loop.ticks == [200 * MS] and loop.scheduler.waiting_tick_ns is None
    loop.scheduler.on_input()
    assert loop.ticks == [200 * MS]


def test_a_waiting_tick_runs_at_the_next_tick_at_the_latest():
    loop = Loop(waits=True)
    loop.behind_until_ns = 10**12
    loop.scheduler.on_time(200 * MS)
    loop.scheduler.on_time(400 * MS)  # its inputs never came: it runs on what there is, the new one waits
    assert loop.ticks == [200 * MS] and loop.scheduler.waiting_tick_ns == 400 * MS
    loop.running = False  # between episodes nothing waits
    loop.scheduler.on_time(600 * MS)
    assert loop.ticks == [200 * MS, 400 * MS, 600 * MS]


def test_without_waiting_ticks_act_on_the_inputs_at_hand():
    loop = Loop(waits=False)
    loop.behind_until_ns = 10**12
    loop.scheduler.on_time(200 * MS)
    assert loop.ticks == [200 * MS]
