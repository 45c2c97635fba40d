"""envbot promote SRC DST: copy SRC's image, model and chart pin to the next environment DST, behind its gates.

Gates (all bypassed by --override-reason TEXT, which records the reason, each bypassed gate and the
actor as trailers): order (DST follows SRC in promotion.yaml), soak (SRC's pin landed at least DST's
`soak` ago, from git history), Argo CD (SRC's Application Synced and Healthy that long, when
ARGOCD_SERVER is set), DST's freeze windows, and DST's model gates (signature compatibility and metric
rules, measured on the app's evaluation data set when promotion.yaml names one). Before landing, the
image digest, model and chart are checked to still exist and match (also bypassed by --override-reason).
Every retry after a rejected push re-reads SRC's pin and re-evaluates the gates.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bot import gates as gate
from bot.commands import Session, report, session
from bot.errors import EnvbotError, GateRefused
from bot.git import Workspace
from bot.modelgates import ModelReport, model_report, model_section
from bot.output import info
from bot.pins import pin_origin, read_release
from bot.policy import Environment
from bot.registry import RegistryClient
from bot.steps import Promotion, pin_release, run_steps
from bot.steps.verify_release import release_check
from bot.values import ModelPin, ReleasePin

JSON_SCHEMA = "promotion"   # bot/schemas/promotion.json: the shape of `--json` output
WRITES = True   # commits: --dry-run and the commit identity options

OVERRIDE_BYPASSES = ("the order gate (DST need not follow SRC), the soak gate, the Argo CD health/sync gate, "
                     "DST's freeze windows, its model gates and the check that the image and model still exist")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="environment to promote from")
    parser.add_argument("dst", help="environment to promote to (the next one in promotion.yaml)")
    gate.add_override_arguments(parser, OVERRIDE_BYPASSES)
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelog "
                                              "(default: the image's org.opencontainers.image.source label)")


@dataclass(frozen=True)
class Source:
    """What a promotion reads at one tip of the branch: SRC's pin, where it landed, the gates' verdicts."""

    pin: ReleasePin
    origin_sha: str
    results: tuple[gate.Gate, ...]
    models: ModelReport
    failures: tuple[str, ...]
    bypassed: tuple[str, ...]


def retry_after(results: tuple[gate.Gate, ...], model_failures: list[str]) -> str | None:
    """When every failing gate passes by itself (soak, freeze); None when one will not (health, model)."""
    failing = [g for g in results if not g.ok]
    if model_failures or not failing or any(g.passes_at is None for g in failing):
        return None
    return max(g.passes_at for g in failing if g.passes_at is not None).isoformat()


def read_source(s: Session, ws: Workspace, src: Environment, dst: Environment, order_failure: str | None,
                reason: str | None, models_cache: dict[tuple[Any, ...], ModelReport]) -> Source:
    """SRC's pin at HEAD of WS and the gates for it; GateRefused unless they pass or are overridden."""
    src_path = s.policy.repo_path(s.app, src.name)
    src_text = ws.show("HEAD", src_path)
    if src_text is None:
        raise EnvbotError(f"{src_path}: no values file for app {s.app.name} in {src.name}")
    pin = read_release(ws, "HEAD", s.policy, s.app, src.name)
    assert pin is not None
    if not pin.image.digest:
        raise EnvbotError(f"{src_path}: {src.name} pins no image digest; nothing to promote")
    origin = pin_origin(ws, s.policy.env_paths(s.app, src.name), pin)
    if origin is None:
        raise EnvbotError(f"{src_path}: not in the history of {ws.branch}")
    now = datetime.now(UTC)
    landed = datetime.fromtimestamp(origin.committed, UTC)
    results = tuple(gate.promotion_gates(s.app, src, dst, origin.sha, landed, now))
    failures = gate.failures(list(results))
    dst_release = read_release(ws, "HEAD", s.policy, s.app, dst.name)
    current: ModelPin | None = dst_release.model if dst_release is not None else None
    # Measuring a model (evaluation data set) is costly: a retry re-measures only when a model changed.
    key = (current, pin.model)
    if key not in models_cache:
        models_cache[key] = model_report(dst.model_gates, s.app.evaluation, current, pin.model)
    models = models_cache[key]
    failures += models.failures
    if failures and reason is None:
        raise GateRefused(f"promotion {src.name} -> {dst.name} blocked:\n  " + "\n  ".join(failures)
                          + "\n(--override-reason TEXT bypasses the gates and records why)",
                          gates=failures, retry_after=retry_after(results, models.failures))
    # One name per bypassed gate (model gates by the text before the first ':'), so audits can count them.
    bypassed = ([gate.ORDER] if order_failure else []) + [g.name for g in results if not g.ok] + list(
        dict.fromkeys(failure.split(":", 1)[0] for failure in models.failures))
    return Source(pin, origin.sha, results, models, tuple(failures), tuple(bypassed))


def run(args: argparse.Namespace) -> int:
    reason = gate.override_reason(args)
    registry = RegistryClient()
    with session(args) as s:
        src, dst = s.policy.env(args.src), s.policy.env(args.dst)
        if src.name == dst.name:
            raise EnvbotError(f"cannot promote {src.name} to itself")
        following = s.policy.next_env(src.name)
        order_failure = None
        if following is None or following.name != dst.name:
            order = " -> ".join(e.name for e in s.policy.environments)
            order_failure = (f"cannot promote {src.name} to {dst.name}: promotions follow {order}"
                             + (f"; {src.name} promotes to {following.name}" if following else ""))
            if reason is None:
                raise GateRefused(order_failure + " (--override-reason TEXT bypasses the order and records why)",
                                  gates=[f"{gate.ORDER}: {order_failure}"], retry_after=None)
        actor = gate.resolve_actor(args.actor) if reason is not None else ""
        models_cache: dict[tuple[Any, ...], ModelReport] = {}
        source = read_source(s, s.workspace, src, dst, order_failure, reason, models_cache)
        if reason is not None:
            for failure in ([f"order: {order_failure}"] if order_failure else []) + list(source.failures):
                info(f"override: {failure}")

        def inputs(source: Source, base: Promotion | None = None) -> Promotion:
            pin = source.pin
            trailers = [("Envbot-From", f"{src.name}@{source.origin_sha}")]
            if reason is not None:
                trailers += gate.override_trailers(reason, actor, list(source.bypassed))
            fields = dict(
                pin=pin, trailers=tuple(trailers), override_reason=reason,
                model_section=model_section(source.models),
                subject=f"envbot: promote {s.app.name} {src.name} -> {dst.name} "
                        f"({pin.image.tag or pin.image.digest[:19]})",
            )
            if base is not None:
                return replace(base, **fields)
            return Promotion(workspace=s.workspace, policy=s.policy, app=s.app, env=dst, action="promote",
                             identity=s.identity, dry_run=args.dry_run, render=dst.landing != "push" or args.dry_run,
                             reads=tuple(s.policy.env_paths(s.app, src.name)), release_check=release_check(registry),
                             **fields)

        def refresh(p: Promotion) -> Promotion:
            # The source environment may have been rolled back or re-pinned, and gates move with time.
            nonlocal source
            source = read_source(s, p.workspace, src, dst, order_failure, reason, models_cache)
            return inputs(source, p)

        promotion, outcome = run_steps(inputs(source), pin_release.steps(registry, args.source_repo),
                                       refresh=refresh)
        return report(args, promotion, outcome, {
            "from": f"{src.name}@{source.origin_sha}", "gates": list(source.failures),
            "gate_results": [g.as_dict() for g in source.results],
            "bypassed": list(source.bypassed) if reason is not None else [], "override": reason,
            "model": source.models.as_dict()})
