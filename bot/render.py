"""`helm template` of an app's chart with an environment's values, and per-resource unified diffs."""

from __future__ import annotations

import difflib
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bot import helm
from bot.output import EnvbotError, progress
from bot.policy import App, Policy
from bot.values import ChartPin
from bot.yamlfile import load_yaml

# GitHub caps a pull-request body at 65,536 characters, Azure Repos at 4,000 for the description shown
# inline; the rendered diff gets what the rest of the description leaves, shared between resources.
DEFAULT_DIFF_BUDGET = 50_000


@dataclass(frozen=True)
class ResourceDiff:
    resource: str                # Kind/name (namespace/Kind/name when not the release namespace)
    change: str                  # added | removed | changed
    diff: str                    # unified diff


def repo_root(policy: Policy) -> Path:
    """The git root of the environments repo: promotion.yaml's directory minus its prefix."""
    depth = len(PurePosixPath(policy.prefix).parts) if policy.prefix else 0
    return policy.root.parents[depth - 1] if depth else policy.root


def helm_template(policy: Policy, app: App, namespace: str, values: Path, display: str,
                  chart: ChartPin | None = None) -> str:
    """The manifests of the chart with the VALUES file: CHART, the environment's pin (checked against the
    repository promotion.yaml allows, pulled by digest), when it has one; else the chart promotion.yaml names."""
    progress(f"rendering {display} with helm template")
    if chart is not None and chart.repository:
        from bot.charts import check_allowed, fetch_chart

        check_allowed(chart, app.chart, display)
        proc = helm.template_package(fetch_chart(chart, display), app.name, namespace, values, display)
    elif app.chart.path or (app.chart.repo and app.chart.name):
        proc = helm.template(app.chart, policy.root, repo_root(policy), app.name, namespace, values,
                             f"{policy.file.name}: apps.{app.name}.chart")
    else:
        raise EnvbotError(f"{display}: no chart pin for this environment, and {policy.file.name} names no chart "
                          f"(apps.{app.name}.chart path, or repo and name)")
    if proc.returncode != 0:
        raise EnvbotError(f"helm template with {display} failed: {proc.stderr.strip()}")
    return proc.stdout


def render(policy: Policy, app: App, namespace: str, values_text: str, display: str,
           chart: ChartPin | None = None) -> dict[str, str]:
    """Resource key -> manifest text of the environment's chart (see helm_template) with VALUES_TEXT."""
    with tempfile.TemporaryDirectory(prefix="envbot-render-") as tmp:
        values = Path(tmp) / "values.yaml"
        values.write_text(values_text)
        text = helm_template(policy, app, namespace, values, display, chart)
    return split_manifests(text, namespace)


def split_manifests(text: str, namespace: str) -> dict[str, str]:
    resources: dict[str, str] = {}
    for chunk in text.split("\n---"):
        body = chunk.strip("\n")
        if body.startswith("---"):
            body = body[3:].lstrip("\n")
        # The one YAML loader (alias bombs refused): a chart's templates are repository content too.
        doc = load_yaml(body, "helm template output", typ="safe")
        if not isinstance(doc, dict) or "kind" not in doc:
            continue
        meta = doc.get("metadata") or {}
        key = f"{doc['kind']}/{meta.get('name', '?')}"
        if meta.get("namespace") not in (None, namespace):
            key = f"{meta['namespace']}/{key}"
        lines = [line for line in body.splitlines() if not line.startswith("# Source:")]
        resources[key] = "\n".join(lines) + "\n"
    return resources


def diff_resources(old: dict[str, str], new: dict[str, str], old_label: str, new_label: str) -> list[ResourceDiff]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, ""), new.get(key, "")
        if before == after:
            continue
        change = "added" if key not in old else "removed" if key not in new else "changed"
        text = "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                            f"{old_label}/{key}", f"{new_label}/{key}"))
        diffs.append(ResourceDiff(key, change, text))
    return diffs


def format_diffs(diffs: list[ResourceDiff], budget: int | None = None, fenced: bool = False) -> str:
    """All diffs; with BUDGET each resource gets an even share and longer ones are cut with a note."""
    if not diffs:
        return "No rendered change.\n"
    share = max(1_000, budget // len(diffs)) if budget else None
    parts = []
    for item in diffs:
        text = item.diff
        if share is not None and len(text) > share:
            kept = text[:share].rsplit("\n", 1)[0] + "\n"
            cut = text[len(kept):].count("\n")
            text = kept + f"... {cut} more diff lines of {item.resource} cut to fit the size limit " \
                          f"(envbot diff shows all)\n"
        if fenced:
            parts.append(f"<details><summary>{item.resource} ({item.change})</summary>\n\n```diff\n{text}```\n"
                         f"</details>\n")
        else:
            parts.append(text)
    return "\n".join(parts)
