"""The fuzz generator (sgft_testing.fuzz): deterministic for a seed, every field of every message covered with
adversarial values, every message within the byte cap, and robot poses never plausible spoofs. Fast: no DDS."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from rclpy.serialization import serialize_message

from sgft_testing.fuzz import DEFAULT_MAX_BYTES, MESSAGE_GENERATORS, REQUEST_GENERATORS, Fuzzer, pose_defects

NOW_NS = 1_234_000_000_000
SAMPLES = 400


def _generate(fuzzer: Fuzzer, name: str):
    method = MESSAGE_GENERATORS[name][1]
    return method(fuzzer) if name == "bool_msg" else method(fuzzer, now_ns=NOW_NS)


def _leaves(msg, path: str = ""):
    """(path, type, value) of every leaf field; a sequence gives its length as path[len] and its elements as
    path[]."""
    for field, kind in msg.get_fields_and_field_types().items():
        value = getattr(msg, field)
        sub = f"{path}.{field}" if path else field
        if kind.startswith("sequence<") or kind.endswith("]"):
            yield f"{sub}[len]", "len", len(value)
            element = kind[9:-1] if kind.startswith("sequence<") else kind.split("[")[0]
            for item in list(value)[:50]:
                if hasattr(item, "get_fields_and_field_types"):
                    yield from _leaves(item, f"{sub}[]")
                else:
                    yield f"{sub}[]", element, item
        elif hasattr(value, "get_fields_and_field_types"):
            yield from _leaves(value, sub)
        else:
            yield sub, kind, value


@pytest.fixture(scope="module")
def samples():
    fuzzer = Fuzzer(seed=7)
    return {name: [_generate(fuzzer, name) for _ in range(SAMPLES)] for name in MESSAGE_GENERATORS}


def test_deterministic_for_a_seed():
    def run(seed):
        fuzzer = Fuzzer(seed)
        out = []
        for _ in range(10):
            for name in MESSAGE_GENERATORS:
                msg, label = _generate(fuzzer, name)
                out.append((repr(msg), label))  # not CDR bytes: their padding is uninitialized
            for _, method in REQUEST_GENERATORS.values():
                request, label = method(fuzzer)
                out.append((repr(request), label))
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_every_field_varies_and_takes_adversarial_values(samples):
    problems = []
    for name, pairs in samples.items():
        values = defaultdict(list)
        kinds = {}
        for msg, _ in pairs:
            for path, kind, value in _leaves(msg):
                values[path].append(value)
                kinds[path] = kind
        expected = {p for p, _ in MESSAGE_GENERATORS[name][0].get_fields_and_field_types().items()}
        top = {p.split(".")[0].split("[")[0] for p in values}
        if expected - top:
            problems.append(f"{name}: fields never generated {expected - top}")
        for path, seen in values.items():
            kind = kinds[path]
            if path.endswith("[len]"):
                if 0 not in seen:
                    problems.append(f"{name}.{path}: never empty")
                continue
            if len({repr(v) for v in seen}) < 2:
                problems.append(f"{name}.{path}: always {seen[0]!r}")
            if kind in ("float", "double") and not any(isinstance(v, float) and not math.isfinite(v) for v in seen):
                problems.append(f"{name}.{path}: never non-finite")
            if kind in ("uint32", "uint64") and not path.endswith(("offset", "datatype")):
                top_value = 2 ** int(kind[4:]) - 1
                if top_value not in seen:
                    problems.append(f"{name}.{path}: never {top_value}")
            if kind in ("int32", "int64") and min(seen) >= 0:
                problems.append(f"{name}.{path}: never negative")
            if kind == "string" and not any(len(v) > 1000 or any(ord(c) > 127 for c in v) for v in seen):
                problems.append(f"{name}.{path}: never long or unicode")
        if "header.stamp.sec" in values:
            secs, nanos = values["header.stamp.sec"], values["header.stamp.nanosec"]
            if not (min(secs) < 0 and 0 in secs and max(secs) == 2**31 - 1 and max(nanos) >= 10**9):
                problems.append(f"{name}: stamps miss negative, zero, far-future or nanosec >= 1e9")
    assert not problems, "\n".join(problems)


def test_structural_variants_are_generated(samples):
    labels = {name: " ".join(label for _, label in pairs) for name, pairs in samples.items()}
    for word in ("count_gt_1", "rgb_and_rgba", "bigendian=True", "short_data", "row_step_lies", "step_lies",
                 "width_lies", "missing_z", "content=orange"):
        assert word in labels["point_cloud2"], word
    for word in ("weights=random", "sha256=valid", "sha256=wrong", "version=4294967295", "task=''",
                 "huge_header_len", "deep_json"):
        assert word in labels["policy_update"], word
    for word in ("key=duplicate", "key=out_of_order", "key=absurd", "obs=0", "finite=False", "task='hammer'"):
        assert word in labels["transition"], word
    assert "points=0" in labels["joint_trajectory"]
    assert any(len(m.joint_names) != len(m.points[0].positions) for m, _ in samples["joint_trajectory"] if m.points)


def test_policy_update_template_mutations_are_rehashed():
    import hashlib
    import struct

    from sgft_msgs.msg import PolicyUpdate

    header = b'{"actor.w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    data = struct.pack("<Q", len(header)) + header + struct.pack("<4f", 1, 2, 3, 4)
    template = PolicyUpdate(task="push", version=3, architecture="{}", weights=data,
                            sha256=hashlib.sha256(data).hexdigest())
    fuzzer = Fuzzer(seed=3, policy_update_template=template)
    labels = []
    for _ in range(300):
        msg, label = fuzzer.policy_update(now_ns=NOW_NS)
        labels.append(label)
        if "sha256=valid" in label:
            assert msg.sha256 == hashlib.sha256(bytes(msg.weights)).hexdigest()
    text = " ".join(labels)
    for kind in ("truncated", "bitflip", "nan_weight", "inf_weight", "appended", "header_byte"):
        assert f"template_{kind}" in text, kind


def test_size_cap():
    for cap in (DEFAULT_MAX_BYTES, 100_000):
        fuzzer = Fuzzer(seed=5, max_bytes=cap)
        for _ in range(60):
            for name in MESSAGE_GENERATORS:
                size = len(serialize_message(_generate(fuzzer, name)[0]))
                assert size <= cap + 64_000, (name, size, cap)  # + headers, names and fixed fields


def test_poses_are_never_plausible_spoofs(samples):
    for msg, label in samples["pose_stamped"]:
        assert pose_defects(msg, NOW_NS), label
    fuzzer = Fuzzer(seed=9)
    for _ in range(300):  # without a clock too
        msg, label = fuzzer.pose_stamped()
        assert pose_defects(msg, None), label
