"""stamp_problem: negative, malformed, zero and future stamps are refused with a reason; good ones pass."""

from builtin_interfaces.msg import Time

from sgft_interfaces.stamps import NS_PER_S, stamp_ns, stamp_problem

NOW = 100 * NS_PER_S


def test_a_recent_stamp_passes_and_converts():
    stamp = Time(sec=99, nanosec=500_000_000)
    assert stamp_problem(stamp, NOW, 0.5) == ""
    assert stamp_ns(stamp) == 99_500_000_000


def test_negative_zero_and_malformed_stamps_are_refused():
    assert "negative" in stamp_problem(Time(sec=-1, nanosec=0), NOW, 0.5)
    assert "zero" in stamp_problem(Time(sec=0, nanosec=0), NOW, 0.5)
    assert "nanosec" in stamp_problem(Time(sec=5, nanosec=NS_PER_S), NOW, 0.5)


def test_future_stamps_beyond_the_tolerance_are_refused():
    assert stamp_problem(Time(sec=100, nanosec=400_000_000), NOW, 0.5) == ""
    assert "future" in stamp_problem(Time(sec=101, nanosec=0), NOW, 0.5)
    assert "future" in stamp_problem(Time(sec=2**31 - 1, nanosec=0), NOW, 0.5)


def test_before_the_clock_is_known_the_future_is_not_checked():
    assert stamp_problem(Time(sec=101, nanosec=0), 0, 0.5) == ""
