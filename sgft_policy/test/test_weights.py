"""Acceptance of PolicyUpdate messages (version, task, architecture) and the counting and logging of refusals."""

import json

import numpy as np
import pytest

from sgft_core.checkpoint import actor_to_bytes
from sgft_core.networks import NetworkConfig, build_networks
from sgft_msgs.msg import PolicyUpdate
from sgft_policy.parameters import ParameterError, PolicyParameters
from sgft_policy.weights import Refusal, RefusalLog, UpdateGate, architecture_mismatch, sha256_matches

CONFIG = NetworkConfig(hidden_dim=32, num_layers=2)
ARCH = json.dumps(CONFIG.to_dict())


def gate(version: int = 0, step: int = 100) -> UpdateGate:
    return UpdateGate("push", CONFIG, version, step)


def test_newer_versions_within_the_step_are_accepted():
    g = gate(version=5)
    assert g.check("push", 6, ARCH) == (None, "")
    assert g.check("push", 105, ARCH)[0] is None
    g.accepted(105)
    assert g.version == 105 and g.check("push", 106, ARCH)[0] is None


def test_stale_and_jumping_versions_are_refused():
    g = gate(version=5)
    assert g.check("push", 5, ARCH)[0] is Refusal.STALE
    assert g.check("push", 1, ARCH)[0] is Refusal.STALE
    refusal, reason = g.check("push", 2**32 - 1, ARCH)
    assert refusal is Refusal.VERSION_JUMP and "max_version_step=100" in reason
    assert g.version == 5 and g.check("push", 6, ARCH)[0] is None  # the genuine next one still gets in


def test_task_and_architecture_are_compared():
    g = gate()
    assert g.check("hammer", 1, ARCH)[0] is Refusal.TASK
    other_critic = json.dumps(dict(CONFIG.to_dict(), num_q=10, critic_layer_norm=True))
    assert g.check("push", 1, other_critic)[0] is None  # the critic is not the actor's business
    for architecture in ("", "{}", "[]", "nonsense", json.dumps(dict(CONFIG.to_dict(), hidden_dim=64)),
                         json.dumps(dict(CONFIG.to_dict(), num_layers=True)), '{"hidden_dim": Infinity}',
                         "[" * 10_000 + "]" * 10_000, json.dumps({"hidden_dim": 32, "num_layers": 2, "x": "a" * 5000})):
        assert g.check("push", 1, architecture)[0] is Refusal.ARCHITECTURE, architecture[:40]
    assert architecture_mismatch(ARCH, CONFIG) == ""


def test_sha256_is_mandatory():
    import hashlib

    data = b"weights"
    assert sha256_matches(data, hashlib.sha256(data).hexdigest().upper())
    assert not sha256_matches(data, "") and not sha256_matches(data, "0" * 64)


def test_refusals_are_counted_and_logged_once_per_kind_then_throttled():
    counts: dict[str, int] = {}
    lines: list[str] = []

    def count(kind: str) -> int:
        counts[kind] = counts.get(kind, 0) + 1
        return counts[kind]

    log = RefusalLog(count, lines.append, interval=10.0)
    assert log.refuse(Refusal.STALE, "old", now=0.0)
    assert not log.refuse(Refusal.STALE, "old", now=1.0) and not log.refuse(Refusal.STALE, "old", now=9.0)
    assert log.refuse(Refusal.VERSION_JUMP, "big", now=2.0)  # another kind is logged at once
    assert log.refuse(Refusal.STALE, "old", now=10.5)
    assert counts == {"policy_update_stale": 4, "policy_update_version_jump": 1}
    assert len(lines) == 3 and lines[0].startswith("rejected policy_update_stale (#1)")
    assert "(2 more since the last such line)" in lines[2]


def test_max_version_step_parameter_is_validated():
    values = PolicyParameters.defaults()
    values["checkpoint"] = "push.safetensors"  # only validated as a name here
    assert PolicyParameters.from_values(values).max_version_step == 100000
    for bad in (0, -1, 2**32, 1.5, True):
        with pytest.raises(ParameterError, match="max_version_step"):
            PolicyParameters.from_values(dict(values, max_version_step=bad))


def test_load_returns_the_actor_of_a_signed_update_and_moves_the_version():
    data, sha = actor_to_bytes(build_networks(4, 2, CONFIG).actor, "push", CONFIG)
    g = gate()
    actor, refusal, _ = g.load(PolicyUpdate(task="push", version=3, architecture=ARCH, weights=list(data),
                                            sha256=sha), 4, 2)
    assert refusal is None and g.version == 3 and actor.act(np.zeros(4), deterministic=True).shape == (2,)
    unsigned = PolicyUpdate(task="push", version=4, architecture=ARCH, weights=list(data), sha256="0" * 64)
    assert g.load(unsigned, 4, 2)[1] is Refusal.HASH and g.version == 3
    shapes = PolicyUpdate(task="push", version=4, architecture=ARCH, weights=list(data), sha256=sha)
    assert g.load(shapes, 5, 2)[1] is Refusal.MALFORMED and g.version == 3
