"""envbot promote SRC DST: copy SRC's image and model pin to the next environment DST, behind its gates.

Gates (all bypassed, and recorded as an Envbot-Override trailer, by --override-reason TEXT):
order (DST follows SRC in promotion.yaml), soak (SRC's pin landed at least DST's `soak` ago, from git
history, and Argo CD reports SRC's Application Synced and Healthy that long when ARGOCD_SERVER is set),
and DST's freeze windows.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.commands import Session, add_override_argument, override_reason, report, session
from bot.errors import EnvbotError, GateRefused
from bot.git import Workspace
from bot.output import info
from bot.pins import pin_origin
from bot.policy import Environment, format_duration
from bot.registry import RegistryClient
from bot.steps import Promotion, pin_release, run_steps
from bot.steps.verify_release import release_check
from bot.values import ReleasePin, read_pin_text

JSON_SCHEMA = "promotion"   # bot/schemas/promotion.json: the shape of `--json` output
WRITES = True   # commits: --dry-run and the commit identity options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="environment to promote from")
    parser.add_argument("dst", help="environment to promote to (the next one in promotion.yaml)")
    add_override_argument(parser, "bypass the soak, health and freeze gates and the check that the image "
                                  "and model still exist; TEXT is recorded in the commit")
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelog "
                                              "(default: the image's org.opencontainers.image.source label)")


def gate_failures(s, src, dst, origin_sha: str, landed: datetime, now: datetime) -> tuple[list[str], datetime | None]:
    """Why the gates refuse now, and when they can all pass (None: unknown, e.g. Argo CD health)."""
    failures: list[str] = []
    passes_at: list[datetime | None] = []
    if dst.soak:
        age = now - landed
        if age < dst.soak:
            failures.append(f"soak: the release landed in {src.name} {format_duration(age)} ago "
                            f"(commit {origin_sha[:12]}, {landed.isoformat()}); {dst.name} requires "
                            f"{format_duration(dst.soak)}")
            passes_at.append(landed + dst.soak)
    from bot.argocd import ArgoCDClient, check_promotion_gate

    client = ArgoCDClient.from_env()
    if client is not None:
        gate = check_promotion_gate(client, s.app.application(src.name), origin_sha, dst.soak, now)
        if not gate.ok:
            failures.append(f"argo cd: {gate.reason}")
            passes_at.append(None)
    freeze = dst.active_freeze(now)
    if freeze is not None:
        window, start = freeze
        failures.append(f"freeze: {dst.name} is frozen by window '{window.schedule}' ({window.timezone}) "
                        f"from {start.isoformat()} for {format_duration(window.duration)}")
        passes_at.append(start + window.duration)
    when = None if not passes_at or None in passes_at else max(t for t in passes_at if t is not None)
    return failures, when


@dataclass(frozen=True)
class Source:
    """What a promotion reads from SRC at one tip of the branch: its pin, where it landed, the gates."""

    pin: ReleasePin
    origin_sha: str
    failures: tuple[str, ...]


def read_source(s: Session, ws: Workspace, src: Environment, dst: Environment, override: str | None) -> Source:
    """SRC's pin at HEAD of WS and the gates for it; GateRefused unless they pass or are overridden."""
    src_path = s.policy.repo_path(s.app, src.name)
    src_text = ws.show("HEAD", src_path)
    if src_text is None:
        raise EnvbotError(f"{src_path}: no values file for app {s.app.name} in {src.name}")
    pin = read_pin_text(src_text, src_path)
    if not pin.image.digest:
        raise EnvbotError(f"{src_path}: {src.name} pins no image digest; nothing to promote")
    origin = pin_origin(ws, src_path, pin)
    if origin is None:
        raise EnvbotError(f"{src_path}: not in the history of {ws.branch}")
    now = datetime.now(UTC)
    landed = datetime.fromtimestamp(origin.committed, UTC)
    failures, passes_at = gate_failures(s, src, dst, origin.sha, landed, now)
    if failures and override is None:
        raise GateRefused(f"promotion {src.name} -> {dst.name} blocked:\n  " + "\n  ".join(failures)
                          + "\n(--override-reason TEXT bypasses the gates and records why)",
                          gates=failures, retry_after=passes_at.isoformat() if passes_at else None)
    return Source(pin, origin.sha, tuple(failures))


def run(args: argparse.Namespace) -> int:
    override = override_reason(args)
    registry = RegistryClient()
    with session(args) as s:
        src, dst = s.policy.env(args.src), s.policy.env(args.dst)
        following = s.policy.next_env(src.name)
        if following is None or following.name != dst.name:
            order = " -> ".join(e.name for e in s.policy.environments)
            raise EnvbotError(f"cannot promote {src.name} to {dst.name}: promotions follow {order}"
                              + (f"; {src.name} promotes to {following.name}" if following else ""))
        source = read_source(s, s.workspace, src, dst, override)
        for failure in source.failures:
            info(f"override: {failure}")

        def inputs(source: Source, base: Promotion | None = None) -> Promotion:
            pin = source.pin
            trailers = [("Envbot-From", f"{src.name}@{source.origin_sha}")]
            if override is not None:
                trailers.append(("Envbot-Override", override))
            fields = dict(
                pin=pin, trailers=tuple(trailers), override_reason=override,
                subject=f"envbot: promote {s.app.name} {src.name} -> {dst.name} "
                        f"({pin.image.tag or pin.image.digest[:19]})",
            )
            if base is not None:
                return replace(base, **fields)
            return Promotion(workspace=s.workspace, policy=s.policy, app=s.app, env=dst, action="promote",
                             identity=s.identity, dry_run=args.dry_run, render=dst.landing != "push" or args.dry_run,
                             reads=(s.policy.repo_path(s.app, src.name),), release_check=release_check(registry),
                             **fields)

        def refresh(p: Promotion) -> Promotion:
            # The source environment may have been rolled back or re-pinned, and gates move with time.
            nonlocal source
            source = read_source(s, p.workspace, src, dst, override)
            return inputs(source, p)

        promotion, outcome = run_steps(inputs(source), pin_release.steps(registry, args.source_repo),
                                       refresh=refresh)
        return report(args, promotion, outcome, {"from": f"{src.name}@{source.origin_sha}",
                                                 "gates": list(source.failures), "override": override})
