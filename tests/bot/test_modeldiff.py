"""Signature comparison and metric rules: each kind of change, marked compatible or breaking."""

from __future__ import annotations

import pytest

from app.modelcard import ModelCard, TensorSignature
from bot.modeldiff import MetricRule, diff_signatures, parse_metric_rule


def card(inputs: list[tuple[str, str, tuple]], outputs: list[tuple[str, str, tuple]] | None = None) -> ModelCard:
    outputs = outputs if outputs is not None else [("label", "INT64", ("N",)), ("probabilities", "FP32", ("N", 3))]
    return ModelCard(name="m", version="1", sha256="0" * 64, size=1,
                     inputs=tuple(TensorSignature(*t) for t in inputs),
                     outputs=tuple(TensorSignature(*t) for t in outputs))


BASE = card([("input", "FP32", ("N", 4))])


def lines(old: ModelCard, new: ModelCard) -> list[tuple[str, bool]]:
    return [(f"{c.kind} {c.name} {c.change}", c.breaking) for c in diff_signatures(old, new)]


def test_unchanged_signature_has_no_changes() -> None:
    assert diff_signatures(BASE, BASE) == []


def test_renamed_input_is_a_removal_and_an_addition_both_breaking() -> None:
    renamed = card([("features", "FP32", ("N", 4))])
    assert lines(BASE, renamed) == [("input input removed", True), ("input features added", True)]


def test_datatype_change_is_breaking() -> None:
    assert lines(BASE, card([("input", "FP64", ("N", 4))])) == [("input input datatype", True)]


def test_rank_change_is_breaking() -> None:
    assert lines(BASE, card([("input", "FP32", ("N", 2, 2))])) == [("input input rank", True)]


def test_fixed_to_symbolic_input_dimension_is_compatible_and_the_reverse_breaks() -> None:
    fixed = card([("input", "FP32", (1, 4))])
    assert lines(fixed, BASE) == [("input input dimension made symbolic (axis 0)", False)]
    assert lines(BASE, fixed) == [("input input dimension made fixed (axis 0)", True)]


def test_fixed_dimension_changed_is_breaking_and_renamed_symbol_is_not() -> None:
    assert lines(BASE, card([("input", "FP32", ("N", 5))])) == [("input input dimension (axis 1)", True)]
    assert lines(BASE, card([("input", "FP32", ("batch", 4))])) == [("input input dimension renamed (axis 0)", False)]


def test_added_output_is_compatible_removed_output_breaks() -> None:
    more = card([("input", "FP32", ("N", 4))], [("label", "INT64", ("N",)), ("probabilities", "FP32", ("N", 3)),
                                               ("scores", "FP32", ("N", 3))])
    assert lines(BASE, more) == [("output scores added", False)]
    assert lines(more, BASE) == [("output scores removed", True)]


def test_output_dimension_made_symbolic_breaks_readers() -> None:
    wider = card([("input", "FP32", ("N", 4))], [("label", "INT64", ("N",)), ("probabilities", "FP32", ("N", "C"))])
    assert lines(BASE, wider) == [("output probabilities dimension made symbolic (axis 1)", True)]


@pytest.mark.parametrize(("rule", "old", "new", "fails"), [
    (MetricRule("accuracy", min=0.9), None, 0.95, None),
    (MetricRule("accuracy", min=0.9), None, 0.85, "below the minimum 0.9"),
    (MetricRule("accuracy", max_drop=0.01), 0.95, 0.945, None),
    (MetricRule("accuracy", max_drop=0.01), 0.95, 0.93, "drops 0.0200, more than 0.01"),
    (MetricRule("rmse", max=1.0, max_rise=0.1), 0.5, 0.55, None),
    (MetricRule("rmse", max_rise=0.1), 0.5, 0.7, "rises 0.2000, more than 0.1"),
    (MetricRule("accuracy", min=0.9), 0.95, None, "has no accuracy figure"),
    (MetricRule("accuracy", max_drop=0.01), None, 0.5, None),   # first release: nothing to drop from
])
def test_metric_rules(rule: MetricRule, old: float | None, new: float | None, fails: str | None) -> None:
    problem = rule.check(old, new)
    if fails is None:
        assert problem is None
    else:
        assert problem is not None and fails in problem


@pytest.mark.parametrize(("spec", "message"), [
    ({"minimum": 0.9}, "unknown rule"),
    ({"min": "high"}, "expected a number"),
    ({}, "expected a mapping"),
    ("0.9", "expected a mapping"),
])
def test_bad_metric_rules_name_the_key(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_metric_rule("accuracy", spec)
    assert parse_metric_rule("accuracy", {"min": 0.9, "maxDrop": 0.01}) == MetricRule("accuracy", min=0.9,
                                                                                      max_drop=0.01)
