"""How a new model version differs from the one it replaces, and whether clients notice.

A change is *breaking* when a request that worked against the old model can fail against the new
one, or a client reading the old response can no longer read the new one:

- inputs: removed, added (ONNX graph inputs are required), renamed (= removed + added), datatype
  changed, rank changed, a symbolic dimension made fixed, a fixed dimension changed;
- outputs: removed, datatype changed, rank changed, a fixed dimension changed or made symbolic.

Compatible: a fixed input dimension made symbolic (accepts more), a symbolic dimension renamed,
an output added (clients ignore what they do not ask for), a symbolic output dimension made fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.modelcard import ModelCard, TensorSignature


@dataclass(frozen=True)
class SignatureChange:
    kind: str          # input | output
    name: str
    change: str        # added | removed | datatype | rank | dimension
    before: str
    after: str
    breaking: bool

    def line(self) -> str:
        mark = "breaking" if self.breaking else "compatible"
        return f"{self.kind} {self.name}: {self.change} ({self.before or '-'} -> {self.after or '-'}): {mark}"


def _dim_change(kind: str, old: int | str, new: int | str) -> tuple[str, bool] | None:
    if old == new:
        return None
    old_fixed, new_fixed = isinstance(old, int), isinstance(new, int)
    if not old_fixed and not new_fixed:
        return "dimension renamed", False
    if old_fixed and new_fixed:
        return "dimension", True
    if old_fixed and not new_fixed:   # fixed -> symbolic: an input accepts more; an output may return other sizes
        return "dimension made symbolic", kind == "output"
    return "dimension made fixed", kind == "input"


def _compare_tensor(kind: str, old: TensorSignature, new: TensorSignature) -> list[SignatureChange]:
    changes = []
    if old.datatype != new.datatype:
        changes.append(SignatureChange(kind, old.name, "datatype", old.datatype, new.datatype, True))
    if len(old.shape) != len(new.shape):
        changes.append(SignatureChange(kind, old.name, "rank", old.describe(), new.describe(), True))
        return changes
    for axis, (a, b) in enumerate(zip(old.shape, new.shape, strict=True)):
        found = _dim_change(kind, a, b)
        if found:
            what, breaking = found
            changes.append(SignatureChange(kind, old.name, f"{what} (axis {axis})", str(a), str(b), breaking))
    return changes


def diff_signatures(old: ModelCard, new: ModelCard) -> list[SignatureChange]:
    changes: list[SignatureChange] = []
    for kind, before, after in (("input", old.inputs, new.inputs), ("output", old.outputs, new.outputs)):
        old_by_name = {t.name: t for t in before}
        new_by_name = {t.name: t for t in after}
        for name, tensor in old_by_name.items():
            if name not in new_by_name:
                changes.append(SignatureChange(kind, name, "removed", tensor.describe(), "", True))
            else:
                changes += _compare_tensor(kind, tensor, new_by_name[name])
        for name, tensor in new_by_name.items():
            if name not in old_by_name:
                changes.append(SignatureChange(kind, name, "added", "", tensor.describe(), kind == "input"))
    return changes


@dataclass(frozen=True)
class MetricRule:
    """promotion.yaml: `metrics: {accuracy: {min: 0.9, maxDrop: 0.01}}` (also max, maxRise for losses)."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None
    max_rise: float | None = None

    def check(self, old: float | None, new: float | None) -> str | None:
        """Why NEW fails this rule (OLD is the value of the model it replaces), or None. The message
        carries both figures and every part of the rule that fails."""
        if new is None:
            return f"metric {self.metric}: the new model has no {self.metric} figure (no card metrics, no evaluation)"
        problems = []
        if self.min is not None and new < self.min:
            problems.append(f"below the minimum {self.min:g}")
        if self.max is not None and new > self.max:
            problems.append(f"above the maximum {self.max:g}")
        if old is not None and self.max_drop is not None and old - new > self.max_drop + 1e-12:
            problems.append(f"drops {old - new:.4f}, more than {self.max_drop:g}")
        if old is not None and self.max_rise is not None and new - old > self.max_rise + 1e-12:
            problems.append(f"rises {new - old:.4f}, more than {self.max_rise:g}")
        if not problems:
            return None
        figures = f"{old:.4f} -> {new:.4f}" if old is not None else f"{new:.4f} (first release)"
        return f"metric {self.metric}: {figures}: {'; '.join(problems)}"


RULE_KEYS = {"min": "min", "max": "max", "maxDrop": "max_drop", "maxRise": "max_rise"}


def parse_metric_rule(metric: str, spec: object) -> MetricRule:
    """One rule from promotion.yaml; ValueError names the key that is wrong."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{metric}: expected a mapping with any of {', '.join(RULE_KEYS)}")
    values: dict[str, float] = {}
    for key, value in spec.items():
        if key not in RULE_KEYS:
            raise ValueError(f"{metric}.{key}: unknown rule (use {', '.join(RULE_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{metric}.{key}: expected a number, got {value!r}")
        values[RULE_KEYS[key]] = float(value)
    return MetricRule(metric, **values)


def metric_deltas(old: dict[str, float], new: dict[str, float]) -> list[tuple[str, float | None, float | None]]:
    """(metric, old, new) for every metric either side has, sorted by name."""
    return [(name, old.get(name), new.get(name)) for name in sorted(set(old) | set(new))]
