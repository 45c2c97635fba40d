"""envbot promote SRC DST: copy SRC's image and model pin to the next environment DST, behind its gates.

Gates (all bypassed by --override-reason TEXT, which records the reason, each bypassed gate and the
actor as trailers): order (DST follows SRC in promotion.yaml), soak (SRC's pin landed at least DST's
`soak` ago, from git history), Argo CD (SRC's Application Synced and Healthy that long, when
ARGOCD_SERVER is set), DST's freeze windows, and DST's model gates (signature compatibility and metric
rules, measured on the app's evaluation data set when promotion.yaml names one).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from bot import gates as gate
from bot.commands import report, session
from bot.modelgates import model_report, model_section
from bot.output import EnvbotError, info
from bot.pins import pin_origin
from bot.registry import ImageRef, RegistryClient, parse_image_ref
from bot.steps import Promotion, pin_release, run_steps
from bot.values import read_pin_text

OVERRIDE_BYPASSES = ("the order gate (DST need not follow SRC), the soak gate, the Argo CD health/sync gate "
                     "and DST's freeze windows")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="environment to promote from")
    parser.add_argument("dst", help="environment to promote to (the next one in promotion.yaml)")
    gate.add_override_arguments(parser, OVERRIDE_BYPASSES)
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelog "
                                              "(default: the image's org.opencontainers.image.source label)")


def run(args: argparse.Namespace) -> int:
    reason = gate.override_reason(args)
    registry = RegistryClient()
    with session(args) as s:
        src, dst = s.policy.env(args.src), s.policy.env(args.dst)
        following = s.policy.next_env(src.name)
        order_failure = None
        if src.name == dst.name:
            raise EnvbotError(f"cannot promote {src.name} to itself")
        if following is None or following.name != dst.name:
            order = " -> ".join(e.name for e in s.policy.environments)
            order_failure = (f"cannot promote {src.name} to {dst.name}: promotions follow {order}"
                             + (f"; {src.name} promotes to {following.name}" if following else ""))
            if reason is None:
                raise EnvbotError(order_failure + " (--override-reason TEXT bypasses the order and records why)")
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
        results = gate.promotion_gates(s.app, src, dst, origin.sha, landed, now)
        failures = gate.failures(results)
        dst_path = s.policy.repo_path(s.app, dst.name)
        dst_text = s.workspace.show("HEAD", dst_path)
        current = read_pin_text(dst_text, dst_path) if dst_text is not None else None
        models = model_report(dst.model_gates, s.app.evaluation, current.model if current else None, pin.model)
        failures += models.failures
        trailers = [("Envbot-From", f"{src.name}@{origin.sha}")]
        if failures and reason is None:
            raise EnvbotError(f"promotion {src.name} -> {dst.name} blocked:\n  " + "\n  ".join(failures)
                              + "\n(--override-reason TEXT bypasses the gates and records why)")
        # One name per bypassed gate (model gates by the text before the first ':'), so audits can count them.
        bypassed = ([gate.ORDER] if order_failure else []) + [g.name for g in results if not g.ok] + list(
            dict.fromkeys(failure.split(":", 1)[0] for failure in models.failures))
        if reason is not None:
            for failure in ([f"order: {order_failure}"] if order_failure else []) + failures:
                info(f"override: {failure}")
            trailers += gate.override_trailers(reason, gate.resolve_actor(args.actor), bypassed)

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
                                        "gate_results": [g.as_dict() for g in results],
                                        "bypassed": bypassed if reason is not None else [], "override": reason,
                                        "model": models.as_dict()})
