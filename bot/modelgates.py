"""Model release gates: what a new model version changes for clients and whether it is good enough.

For a model change (old pin -> new pin) envbot reads both model cards from the store (verified: the
card's bytes hash to the digest recorded with the model, and the card describes the pinned bytes),
compares the signatures (bot.modeldiff), and, when promotion.yaml names an evaluation data set,
fetches both models and the data set by digest and measures them itself (bot.evaluation). The
environment's `modelGates` then decide: breaking signature changes are refused unless
`signature: any`, and metric rules (`min`, `max`, `maxDrop`, `maxRise`) use the measured figure when
there is one, else the figure from the card.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.modelcard import ModelCard
from bot.modeldiff import MetricRule, SignatureChange, diff_signatures, metric_deltas, parse_metric_rule
from bot.output import EnvbotError, short_digest
from bot.values import ModelPin

if TYPE_CHECKING:   # bot.evaluation pulls in numpy: imported only when a promotion evaluates
    from bot.evaluation import Evaluation

SIGNATURE_RULES = ("compatible", "any")


@dataclass(frozen=True)
class ModelGatePolicy:
    """promotion.yaml, per environment: `modelGates: {signature: compatible, metrics: {accuracy: {min: 0.9}}}`."""

    signature: str = "compatible"    # compatible: breaking signature changes are refused; any: reported only
    metrics: tuple[MetricRule, ...] = ()


@dataclass(frozen=True)
class EvaluationSpec:
    """promotion.yaml, per app: `evaluation: {uri, sha256, label, metric}` (a CSV in the model store)."""

    uri: str
    sha256: str
    label: str
    metric: str


def parse_model_gates(raw: Any, where: str) -> ModelGatePolicy:
    """ValueError names the key that is wrong (the caller adds file and line)."""
    if raw is None:
        return ModelGatePolicy()
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping with 'signature' and/or 'metrics'")
    unknown = set(raw) - {"signature", "metrics"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (use signature, metrics)")
    signature = str(raw.get("signature", "compatible"))
    if signature not in SIGNATURE_RULES:
        raise ValueError(f"{where}.signature: {signature!r} is not one of {', '.join(SIGNATURE_RULES)}")
    metrics = raw.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ValueError(f"{where}.metrics: expected a mapping of metric name -> rule")
    rules = []
    for metric, spec in metrics.items():
        try:
            rules.append(parse_metric_rule(str(metric), spec))
        except ValueError as exc:
            raise ValueError(f"{where}.metrics.{exc}") from None
    return ModelGatePolicy(signature, tuple(rules))


def parse_evaluation(raw: Any, where: str) -> EvaluationSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping with uri, sha256, label and metric")
    missing = [k for k in ("uri", "sha256", "label", "metric") if not raw.get(k)]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    from app.modelstore import ModelStoreError, parse_object_uri
    from app.modelstore.digest import normalize_sha256
    from bot.evaluation import METRICS

    try:
        parse_object_uri(str(raw["uri"]))
        digest = normalize_sha256(str(raw["sha256"]), f"{where}.sha256")
    except ModelStoreError as exc:
        raise ValueError(f"{where}.uri: {exc}") from None
    metric = str(raw["metric"])
    if metric not in METRICS:
        raise ValueError(f"{where}.metric: {metric!r} is not one of {', '.join(METRICS)}")
    return EvaluationSpec(str(raw["uri"]), digest, str(raw["label"]), metric)


@dataclass
class ModelReport:
    """Old vs new model of one change: cards, signature changes, metrics, evaluation and gate failures."""

    old: ModelPin | None
    new: ModelPin
    old_card: ModelCard | None = None
    new_card: ModelCard | None = None
    changes: list[SignatureChange] = field(default_factory=list)
    evaluation: Evaluation | None = None
    failures: list[str] = field(default_factory=list)   # "model-signature: ...", "model-metric: ..."
    notes: list[str] = field(default_factory=list)      # what could not be compared, and why

    @property
    def changed(self) -> bool:
        return self.old is None or self.old.sha256 != self.new.sha256 or self.old.uri != self.new.uri

    def figure(self, side: str, metric: str) -> float | None:
        """The measured figure when the evaluation measured METRIC, else the card's."""
        if self.evaluation is not None and self.evaluation.metric == metric:
            return self.evaluation.old if side == "old" else self.evaluation.new
        card = self.old_card if side == "old" else self.new_card
        return card.metrics.get(metric) if card else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": None if self.old is None else {"name": self.old.name, "version": self.old.version,
                                                  "sha256": self.old.sha256,
                                                  "card": self.old_card.as_dict() if self.old_card else None},
            "new": {"name": self.new.name, "version": self.new.version, "sha256": self.new.sha256,
                    "card": self.new_card.as_dict() if self.new_card else None},
            "signature": [vars(c) for c in self.changes],
            "evaluation": self.evaluation.as_dict() if self.evaluation else None,
            "failures": self.failures,
            "notes": self.notes,
        }


def _card(pin: ModelPin) -> ModelCard | None:
    from app.modelstore import ModelStoreError
    from app.modelstore.card import read_card

    try:
        found = read_card(pin.uri, pin.sha256)
    except ModelStoreError as exc:
        raise EnvbotError(f"model {pin.uri}: {exc}") from exc
    return found[0] if found else None


def _old_card(pin: ModelPin, notes: list[str]) -> ModelCard | None:
    """The replaced model's card. The model being replaced may be out of reach (a sample pin, a store
    this identity may not read, a deleted version): that must not block replacing it, so the reason
    becomes a note and the comparison is skipped; a card that fails verification still refuses."""
    from app.modelstore import ModelNotFound, ModelStoreError
    from app.modelstore.card import ModelCardInvalid, read_card

    try:
        found = read_card(pin.uri, pin.sha256)
    except ModelCardInvalid as exc:
        raise EnvbotError(f"model {pin.uri}: {exc}") from exc
    except (ModelNotFound, ModelStoreError) as exc:
        notes.append(f"the replaced model could not be read ({exc}); its card was not compared")
        return None
    return found[0] if found else None


def _measure(spec: EvaluationSpec, old: ModelPin | None, new: ModelPin) -> Evaluation:
    from app.modelstore import ModelStoreError, fetch_model, fetch_object
    from bot.evaluation import EvaluationError, evaluate

    with tempfile.TemporaryDirectory(prefix="envbot-eval-") as tmp:
        root = Path(tmp)
        try:
            dataset = fetch_object(spec.uri, spec.sha256, root / "dataset.csv")
            new_file = fetch_model(new.uri, new.sha256, root / "new")
            old_file = fetch_model(old.uri, old.sha256, root / "old") if old is not None else None
        except ModelStoreError as exc:
            raise EnvbotError(f"evaluation: {exc}") from exc
        try:
            return evaluate(old_file, new_file, dataset, spec.label, spec.metric)
        except EvaluationError as exc:
            raise EnvbotError(f"evaluation: {exc}") from exc


def model_report(gates: ModelGatePolicy, evaluation: EvaluationSpec | None, old: ModelPin | None,
                 new: ModelPin, *, measure: bool = True) -> ModelReport:
    """Compare OLD (the environment's current model; None for a first release) with NEW and apply GATES."""
    report = ModelReport(old, new)
    if not new.uri or not report.changed:
        return report
    report.new_card = _card(new)
    report.old_card = _old_card(old, report.notes) if old is not None and old.uri else None
    if report.old_card and report.new_card:
        report.changes = diff_signatures(report.old_card, report.new_card)
    if measure and evaluation is not None:
        reachable_old = old if old is not None and old.uri and not report.notes else None
        report.evaluation = _measure(evaluation, reachable_old, new)
    if gates.signature == "compatible":
        report.failures += [f"model-signature: {c.line()}" for c in report.changes if c.breaking]
    for rule in gates.metrics:
        problem = rule.check(report.figure("old", rule.metric), report.figure("new", rule.metric))
        if problem:
            report.failures.append(f"model-metric: {problem}")
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _delta(old: float | None, new: float | None) -> str:
    return "" if old is None or new is None else f"{new - old:+.4f}"


def model_section(report: ModelReport) -> str:
    """The "Model" section of a pull request description and of `envbot diff` (Markdown)."""
    if not report.changed:
        return ""
    old, new = report.old, report.new
    old_card, new_card = report.old_card, report.new_card

    def card_field(card: ModelCard | None, attr: str) -> str:
        if card is None:
            return "no card"
        value = getattr(card, attr)
        if attr == "size":
            return f"{value:,} bytes"
        if attr == "dataset":
            return f"{value['name']} ({short_digest(value['sha256'])})" if value else "-"
        return str(value or "-")

    lines = ["### Model", "", "| | Old | New |", "| --- | --- | --- |",
             f"| version | `{(old.name + '@' + old.version) if old and old.name else '-'}` | "
             f"`{new.name}@{new.version}` |",
             f"| sha256 | `{short_digest(old.sha256) if old and old.sha256 else '-'}` | `{short_digest(new.sha256)}` |"]
    for label, attr in (("size", "size"), ("producer", "producer"), ("lineage", "source"),
                        ("metrics measured on", "dataset")):
        lines.append(f"| {label} | {card_field(old_card, attr) if old else '-'} | {card_field(new_card, attr)} |")
    lines.append("")
    if old_card and new_card:
        if report.changes:
            lines += ["Signature changes:", ""]
            lines += [f"- {'**breaking**' if c.breaking else 'compatible'}: {c.line()}" for c in report.changes]
        else:
            lines.append("Signature: unchanged (" + ", ".join(t.describe() for t in new_card.inputs) + ").")
        lines.append("")
    elif old is not None and old.uri:
        lines += ["Signature: not compared (" + ("the old model has no card" if old_card is None
                                                  else "the new model has no card") + ").", ""]
    deltas = metric_deltas(old_card.metrics if old_card else {}, new_card.metrics if new_card else {})
    if deltas:
        lines += ["| Metric (model card) | Old | New | Delta |", "| --- | --- | --- | --- |"]
        lines += [f"| {name} | {_fmt(a)} | {_fmt(b)} | {_delta(a, b)} |" for name, a, b in deltas]
        lines.append("")
    if report.evaluation is not None:
        e = report.evaluation
        agreement = "-" if e.agreement is None else f"{100 * e.agreement:.2f}%"
        lines += [f"Measured by envbot on {e.rows:,} rows: {e.metric} {_fmt(e.old)} -> {_fmt(e.new)} "
                  f"({_delta(e.old, e.new) or 'first release'}); prediction agreement {agreement}.", ""]
    if report.notes:
        lines += [f"Note: {n}." for n in report.notes] + [""]
    if report.failures:
        lines += ["Gates refusing this model:", ""] + [f"- {f}" for f in report.failures] + [""]
    return "\n".join(lines)
