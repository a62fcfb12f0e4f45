"""An operator's interventions: which are taken, and when they replace the policy's action (no ROS graph)."""

import numpy as np
import pytest

from sgft_msgs.msg import Intervention as InterventionMsg
from sgft_policy.assembly import time_msg
from sgft_policy.intervention import Intervention, Takeover, intervention_from_msg
from sgft_policy.validation import Rejection

NOW_NS = 10_000_000_000


def msg(action, active=True, stamp_ns=NOW_NS) -> InterventionMsg:
    m = InterventionMsg(active=active, action=[float(v) for v in action])
    m.header.stamp = time_msg(stamp_ns)
    return m


def test_a_valid_intervention_is_clipped_to_the_actors_range():
    taken = intervention_from_msg(msg([3.0, -0.5]), 2, NOW_NS, 0.1)
    assert taken.active and taken.stamp == 10.0 and taken.action.tolist() == [1.0, -0.5]
    assert taken.action.dtype == np.float32


@pytest.mark.parametrize("message,kind", [
    (msg([0.1]), "intervention_size"),
    (msg([0.1, 0.2, 0.3]), "intervention_size"),
    (msg([float("nan"), 0.0]), "intervention_nonfinite"),
    (msg([float("inf"), 0.0]), "intervention_nonfinite"),
    (msg([0.1, 0.2], stamp_ns=0), "intervention_stamp"),
    (msg([0.1, 0.2], stamp_ns=NOW_NS + 5_000_000_000), "intervention_stamp"),
])
def test_bad_interventions_are_refused_by_kind(message, kind):
    refused = intervention_from_msg(message, 2, NOW_NS, 0.1)
    assert isinstance(refused, Rejection) and refused.kind == kind, refused


def test_a_release_needs_no_action():
    released = intervention_from_msg(msg([], active=False), 2, NOW_NS, 0.1)
    assert not released.active and released.action.tolist() == [0.0, 0.0]


def fresh(action=(0.5, 0.5), stamp=10.0, active=True) -> Intervention:
    return Intervention(active, np.array(action, dtype=np.float32), stamp)


def test_a_fresh_active_intervention_replaces_the_policy_until_released():
    lines: list[str] = []
    takeover = Takeover(0.2, lines.append)
    assert takeover.action(10.0) is None and takeover.lost(10.0) == ""
    assert takeover.take(fresh()) is None
    assert takeover.action(10.1).tolist() == [0.5, 0.5] and takeover.engaged
    assert takeover.lost(10.15) == ""
    assert takeover.take(fresh(stamp=10.2, active=False)) is None
    assert takeover.action(10.3) is None and takeover.lost(10.9) == "" and not takeover.engaged
    assert lines == ["operator took over: commanding the intervention's actions",
                     "operator released the intervention: the policy acts again"]


def test_a_device_silent_mid_intervention_is_lost():
    takeover = Takeover(0.2)
    takeover.take(fresh(stamp=10.0))
    assert takeover.action(10.2) is not None  # within one period of its stamp
    assert takeover.action(10.21) is None
    reason = takeover.lost(10.4)
    assert reason.startswith("intervention device silent for 0.40 s") and "teleoperation lost" in reason


def test_an_active_intervention_stale_before_it_was_used_is_ignored():
    takeover = Takeover(0.2)
    takeover.take(fresh(stamp=10.0))  # left over from before the episode, never commanded
    assert takeover.action(12.0) is None and takeover.lost(12.0) == ""
    takeover.take(fresh(stamp=12.0))
    assert takeover.action(12.1) is not None
    takeover.reset()  # the next episode, or a resume after a pause
    assert takeover.lost(13.0) == ""


def test_a_reordered_intervention_is_refused():
    takeover = Takeover(0.2)
    takeover.take(fresh(stamp=10.1))
    refused = takeover.take(fresh(stamp=10.0, active=False))
    assert refused.kind == "intervention_out_of_order" and takeover.latest.active
