"""The one `key=value` override syntax and the validation of dataclass fields."""

import pytest

from sgft_core.finetune import FinetuneConfig, make_config
from sgft_core.overrides import coerce_fields, merge, nest, parse_assignment, parse_overrides


def test_values_are_typed_as_yaml_reads_them_with_exponent_floats():
    parsed = parse_overrides(["a=1", "b=1.5", "c=3e-4", "d=true", "e=[1, 2]", "f=text", "g=none", "h=null",
                              "a=2", "i={x: 1}"])
    assert parsed == {"a": 2, "b": 1.5, "c": 3e-4, "d": True, "e": [1, 2], "f": "text", "g": "none", "h": None,
                      "i": {"x": 1}}
    assert parse_assignment("node.group.param=-2E+3") == ("node.group.param", -2000.0)
    for bad in ("novalue", "=1", "a..b=1", "a=[1"):
        with pytest.raises(ValueError):
            parse_assignment(bad)


def test_dotted_keys_nest_and_merge_deeply():
    nested = nest({"n.finetune.horizon": 1, "n.finetune.utd": 2, "n.task": "push", "m.x": 0})
    assert nested == {"n": {"finetune": {"horizon": 1, "utd": 2}, "task": "push"}, "m": {"x": 0}}
    base = {"n": {"finetune": {"horizon": 3, "prior_regularization": 1.0}, "task": "push"}}
    assert merge(base, nest({"n.finetune.horizon": 1})) == {
        "n": {"finetune": {"horizon": 1, "prior_regularization": 1.0}, "task": "push"}}
    with pytest.raises(ValueError, match="a is set to a value"):
        nest({"a": 1, "a.b": 2})


def test_fields_are_checked_by_type_and_none_is_written_none():
    assert coerce_fields(FinetuneConfig, {"horizon": "none", "lr": 1, "utd": 3, "target_entropy": None}) == {
        "horizon": None, "lr": 1.0, "utd": 3, "target_entropy": None}
    assert isinstance(coerce_fields(FinetuneConfig, {"lr": 1})["lr"], float)
    with pytest.raises(ValueError, match="finetune.utd: expected int, got 2.5"):
        coerce_fields(FinetuneConfig, {"utd": 2.5}, prefix="finetune.")
    with pytest.raises(ValueError, match="bf16_critic: expected bool"):
        coerce_fields(FinetuneConfig, {"bf16_critic": 1})
    with pytest.raises(ValueError, match="horizon: expected int or 'none'"):
        coerce_fields(FinetuneConfig, {"horizon": "short"})
    with pytest.raises(ValueError, match="unknown FinetuneConfig field.*horizn"):
        make_config("sgft", horizn=1)
    assert make_config("sgft", horizon="none", prior_regularization=1).horizon is None
