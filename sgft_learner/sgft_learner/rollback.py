"""The last good state of a FinetuneLearner, to go back to when an update turns the losses non-finite.

`FinetuneLearner.state_dict()` holds the networks and the progress but not the optimizers: after a NaN step Adam's
moments are NaN too, and restored weights would turn NaN again on the next step. So the optimizer states are kept
alongside (copies of their own state_dicts).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

from sgft_core.finetune import FinetuneLearner

OPTIMIZERS = ("actor_optimizer", "critic_optimizer", "alpha_optimizer", "dynamics_optimizer")


def finite(losses: Mapping[str, float]) -> bool:
    return all(math.isfinite(v) for v in losses.values())


class LastGood:
    """A copy of a learner's networks, temperature and optimizer states; `snapshot` after each good batch, `restore`
    after a bad one. The progress counters are not rolled back: the policy version only grows."""

    def __init__(self, learner: FinetuneLearner) -> None:
        self.learner = learner
        self.snapshot()

    def snapshot(self) -> None:
        learner = self.learner
        self.state = learner.state_dict()
        with learner.lock:
            self.optimizers = {name: copy.deepcopy(getattr(learner, name).state_dict()) for name in OPTIMIZERS
                               if hasattr(learner, name)}
        self.updates_done = learner.updates_done

    def restore(self) -> int:
        """Put the snapshot back; returns the update count it was taken at."""
        learner = self.learner
        learner.load_state_dict(self.state)  # also copies the critic into the target, which had the bad step too
        with learner.lock:
            for name, state in self.optimizers.items():
                getattr(learner, name).load_state_dict(copy.deepcopy(state))
        return self.updates_done
