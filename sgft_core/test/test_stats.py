import pytest

from sgft_core.stats import wilson_interval


def test_wilson_interval_known_values():
    # Reference values: Wilson score interval, z = 1.96 (e.g. statsmodels proportion_confint(method="wilson")).
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(200, 200) == (pytest.approx(0.9812, abs=1e-4), 1.0)
    low, high = wilson_interval(180, 200)
    assert low < 0.9 < high and high - low < 0.09


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson_interval(1, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
