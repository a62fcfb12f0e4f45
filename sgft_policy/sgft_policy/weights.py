"""Which PolicyUpdate messages the policy node accepts, and how refusals are counted and logged; without ROS.

Any peer on the DDS domain can publish a PolicyUpdate, so each one is checked before its weights are read: the
task, the version (newer than the running one, by at most `max_version_step`: a huge version would otherwise lock
out every genuine update after it) and the architecture string against the running actor's. The weights themselves
are checked by sgft_core.checkpoint. Refusals are never fatal: they are counted by kind and logged.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import json
from collections.abc import Callable

from sgft_core.checkpoint import CheckpointError, actor_from_bytes
from sgft_core.networks import NetworkConfig

MAX_ARCHITECTURE_CHARS = 4096


class Refusal(enum.Enum):
    STALE = "stale"  # not newer than the running version (includes the transient-local replay of it)
    VERSION_JUMP = "version_jump"
    TASK = "task"
    ARCHITECTURE = "architecture"
    HASH = "hash"
    MALFORMED = "malformed"
    ERROR = "error"  # an unexpected exception while handling the update

    @property
    def counter(self) -> str:
        return f"policy_update_{self.value}"


def architecture_mismatch(architecture: str, running: NetworkConfig) -> str:
    """Why the message's architecture JSON does not describe the running actor, or "" when it does. Only the
    fields that shape the actor are compared (the learner may train another critic ensemble)."""
    if len(architecture) > MAX_ARCHITECTURE_CHARS or architecture.count("[") + architecture.count("{") > 64:
        return "architecture string too long or too deeply nested"
    try:
        described = json.loads(architecture, parse_constant=lambda name: name)
    except (ValueError, RecursionError) as err:
        return f"architecture is not JSON: {err}"
    if not isinstance(described, dict):
        return "architecture is not a JSON object"
    for name in ("hidden_dim", "num_layers"):
        value, expected = described.get(name), getattr(running, name)
        if isinstance(value, bool) or value != expected:
            return f"architecture {name}={value!r}, the running actor has {expected}"
    return ""


def sha256_matches(weights: bytes, sha256: str) -> bool:
    """The announced sha256 (mandatory: an empty one never matches) against the bytes."""
    return hashlib.sha256(weights).hexdigest() == sha256.lower()


class UpdateGate:
    """The version, task and architecture checks of PolicyUpdate messages against the running actor."""

    def __init__(self, task: str, network_config: NetworkConfig, version: int, max_version_step: int) -> None:
        self.task, self.network_config = task, network_config
        self.version, self.max_version_step = version, max_version_step

    def check(self, task: str, version: int, architecture: str) -> tuple[Refusal | None, str]:
        """The refusal (and why) of an update with these fields before its weights are read; None: read them."""
        if task != self.task:
            return Refusal.TASK, f"weights for task {task!r}, this node runs {self.task!r}"
        if version <= self.version:
            return Refusal.STALE, f"version {version}, already running {self.version}"
        if version - self.version > self.max_version_step:
            return Refusal.VERSION_JUMP, (f"version {version} jumps more than max_version_step="
                                          f"{self.max_version_step} past the running {self.version}")
        reason = architecture_mismatch(architecture, self.network_config)
        if reason:
            return Refusal.ARCHITECTURE, f"version {version}: {reason}"
        return None, ""

    def accepted(self, version: int) -> None:
        self.version = version

    def load(self, msg, obs_dim: int, action_dim: int):
        """(actor, None, "") of a PolicyUpdate that passes every check, the version then running; else (None,
        refusal, why)."""
        refusal, reason = self.check(msg.task, msg.version, msg.architecture)
        if refusal is not None:
            return None, refusal, reason
        weights = bytes(msg.weights)
        if not sha256_matches(weights, msg.sha256):  # mandatory: unsigned weights are refused
            return None, Refusal.HASH, f"version {msg.version}: weights do not match their sha256"
        try:
            actor = actor_from_bytes(weights, self.task, msg.sha256, obs_dim, action_dim,
                                     expected_config=self.network_config)
        except CheckpointError as err:
            return None, Refusal.MALFORMED, f"version {msg.version}: {err}"
        self.accepted(msg.version)
        return actor, None, ""


class RefusalLog:
    """Logs the first refusal of each kind at once, then at most one per kind every `interval` seconds (with the
    count so far); the counts themselves go to `count`, which returns the running total of the kind. A kind is a
    PolicyUpdate Refusal or the counter's name of any other rejected input."""

    def __init__(self, count: Callable[[str], int], log: Callable[[str], None], interval: float = 60.0) -> None:
        self.count, self.log, self.interval = count, log, interval
        self.last_logged: dict[str, float] = {}
        self.suppressed: collections.Counter[str] = collections.Counter()

    def refuse(self, kind: Refusal | str, detail: str, now: float) -> bool:
        """Count a refusal; True when it was logged."""
        counter = kind.counter if isinstance(kind, Refusal) else kind
        total = self.count(counter)
        last = self.last_logged.get(counter)
        if last is not None and now - last < self.interval:
            self.suppressed[counter] += 1
            return False
        suppressed = self.suppressed.pop(counter, 0)
        self.last_logged[counter] = now
        self.log(f"rejected {counter} (#{total}): {detail}"
                 + (f" ({suppressed} more since the last such line)" if suppressed else ""))
        return True
