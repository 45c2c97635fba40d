"""envbot promote SRC DST: copy SRC's image and model pin to the next environment DST, behind its gates.

Gates (all bypassed, and recorded as an Envbot-Override trailer, by --override-reason TEXT):
order (DST follows SRC in promotion.yaml), soak (SRC's pin landed at least DST's `soak` ago, from git
history, and Argo CD reports SRC's Application Synced and Healthy that long when ARGOCD_SERVER is set),
DST's freeze windows, and DST's model gates (signature compatibility and metric rules, measured on the
app's evaluation data set when promotion.yaml names one).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from bot.commands import report, session
from bot.modelgates import model_report, model_section
from bot.output import EnvbotError, info
from bot.pins import pin_origin
from bot.policy import format_duration
from bot.registry import ImageRef, RegistryClient, parse_image_ref
from bot.steps import Promotion, pin_release, run_steps
from bot.values import read_pin_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="environment to promote from")
    parser.add_argument("dst", help="environment to promote to (the next one in promotion.yaml)")
    parser.add_argument("--override-reason", metavar="TEXT",
                        help="bypass the soak, health and freeze gates; TEXT is recorded in the commit")
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelog "
                                              "(default: the image's org.opencontainers.image.source label)")


def gate_failures(s, src, dst, origin_sha: str, landed: datetime, now: datetime) -> list[str]:
    failures = []
    if dst.soak:
        age = now - landed
        if age < dst.soak:
            failures.append(f"soak: the release landed in {src.name} {format_duration(age)} ago "
                            f"(commit {origin_sha[:12]}, {landed.isoformat()}); {dst.name} requires "
                            f"{format_duration(dst.soak)}")
    from bot.argocd import ArgoCDClient, check_promotion_gate

    client = ArgoCDClient.from_env()
    if client is not None:
        gate = check_promotion_gate(client, s.app.application(src.name), origin_sha, dst.soak, now)
        if not gate.ok:
            failures.append(f"argo cd: {gate.reason}")
    freeze = dst.active_freeze(now)
    if freeze is not None:
        window, start = freeze
        failures.append(f"freeze: {dst.name} is frozen by window '{window.schedule}' ({window.timezone}) "
                        f"from {start.isoformat()} for {format_duration(window.duration)}")
    return failures


def run(args: argparse.Namespace) -> int:
    if args.override_reason is not None and not args.override_reason.strip():
        raise EnvbotError("--override-reason needs a text saying why the gates are bypassed")
    registry = RegistryClient()
    with session(args) as s:
        src, dst = s.policy.env(args.src), s.policy.env(args.dst)
        following = s.policy.next_env(src.name)
        if following is None or following.name != dst.name:
            order = " -> ".join(e.name for e in s.policy.environments)
            raise EnvbotError(f"cannot promote {src.name} to {dst.name}: promotions follow {order}"
                              + (f"; {src.name} promotes to {following.name}" if following else ""))
        src_path = s.policy.repo_path(s.app, src.name)
        src_text = s.workspace.show("HEAD", src_path)
        if src_text is None:
            raise EnvbotError(f"{src_path}: no values file for app {s.app.name} in {src.name}")
        pin = read_pin_text(src_text, src_path)
        if not pin.image.digest:
            raise EnvbotError(f"{src_path}: {src.name} pins no image digest; nothing to promote")
        origin = pin_origin(s.workspace, src_path, pin)
        if origin is None:
            raise EnvbotError(f"{src_path}: not in the history of {s.workspace.branch}")
        now = datetime.now(UTC)
        landed = datetime.fromtimestamp(origin.committed, UTC)
        failures = gate_failures(s, src, dst, origin.sha, landed, now)
        dst_path = s.policy.repo_path(s.app, dst.name)
        dst_text = s.workspace.show("HEAD", dst_path)
        current = read_pin_text(dst_text, dst_path) if dst_text is not None else None
        models = model_report(dst.model_gates, s.app.evaluation, current.model if current else None, pin.model)
        failures += models.failures
        trailers = [("Envbot-From", f"{src.name}@{origin.sha}")]
        if failures and args.override_reason is None:
            raise EnvbotError(f"promotion {src.name} -> {dst.name} blocked:\n  " + "\n  ".join(failures)
                              + "\n(--override-reason TEXT bypasses the gates and records why)")
        if args.override_reason is not None:
            for failure in failures:
                info(f"override: {failure}")
            trailers.append(("Envbot-Override", " ".join(args.override_reason.split())))
            # One trailer per bypassed gate (the text before the first ':'), so audits can count them.
            for gate in dict.fromkeys(failure.split(":", 1)[0] for failure in failures):
                trailers.append(("Envbot-Bypassed-Gate", gate))

        image_ref = parse_image_ref(pin.image.ref)

        def image_still_there() -> None:
            registry.digest(ImageRef(image_ref.registry, image_ref.repository, digest=pin.image.digest))

        promotion = Promotion(
            workspace=s.workspace, policy=s.policy, app=s.app, env=dst, action="promote", identity=s.identity,
            dry_run=args.dry_run, pin=pin, trailers=trailers, prechecks=[image_still_there],
            subject=f"envbot: promote {s.app.name} {src.name} -> {dst.name} ({pin.image.tag or pin.image.digest[:19]})",
            render=dst.landing != "push" or args.dry_run, model_section=model_section(models),
        )
        run_steps(promotion, pin_release.steps(registry, args.source_repo))
        return report(args, promotion, {"from": f"{src.name}@{origin.sha}", "gates": failures,
                                        "override": args.override_reason, "model": models.as_dict()})
