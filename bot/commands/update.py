"""envbot update ENV [--image REF] [--model URI] [--chart OCI-REF]: pin an image digest, a model and/or a
chart in one environment.

An environment with an upstream (it follows another in promotion.yaml), a soak time or freeze
windows receives releases through `envbot promote`/`envbot propose`; writing into it directly is
refused unless --override-reason TEXT says why (recorded with each bypassed gate and the actor).
"""

from __future__ import annotations

import argparse

from bot import gates as gate
from bot.charts import parse_chart_ref, resolve_chart
from bot.commands import report, session
from bot.errors import Conflict, EnvbotError, GateRefused
from bot.models import resolve_model
from bot.output import info
from bot.pins import read_release
from bot.registry import REVISION_LABEL, ImageRef, RegistryClient, parse_image_ref
from bot.steps import Promotion, pin_release, run_steps
from bot.values import ImagePin, ReleasePin

JSON_SCHEMA = "promotion"   # bot/schemas/promotion.json: the shape of `--json` output
WRITES = True   # commits: --dry-run and the commit identity options

OVERRIDE_BYPASSES = ("the gates of ENV that a direct write skips: its order (ENV has an upstream and normally "
                     "receives releases only by promotion), its soak time and its freeze windows")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment to pin (from promotion.yaml)")
    parser.add_argument("--image", help="registry/repo:tag, registry/repo@sha256:... or both "
                                        "(default: keep the pinned image; then --model is required)")
    parser.add_argument("--model", help="model URI (blob https://..., s3://...) published with its sha256")
    parser.add_argument("--chart", help="chart CI pushed: oci://<registry>/<path>/<chart>:<version>[@sha256:...] "
                                        "(default: keep ENV's chart pin)")
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelog")
    gate.add_override_arguments(parser, OVERRIDE_BYPASSES)


def run(args: argparse.Namespace) -> int:
    if args.image is None and args.model is None and args.chart is None:
        raise EnvbotError("update needs --image REF, --model URI, --chart OCI-REF or several of them")
    reason = gate.override_reason(args)
    ref = parse_image_ref(args.image) if args.image is not None else None
    registry = RegistryClient()
    image = registry.resolve(ref) if ref is not None else None
    model = resolve_model(args.model) if args.model else None
    chart = resolve_chart(parse_chart_ref(args.chart), registry, "--chart") if args.chart else None

    def inputs_unchanged() -> None:
        # The tag may be re-pushed between resolving it and committing: re-resolve and compare.
        if ref is not None and image is not None and ref.tag:
            now = registry.digest(ImageRef(ref.registry, ref.repository, ref.tag))
            if now != image.digest:
                raise Conflict(f"tag {ref.name}:{ref.tag} moved from {image.digest} to {now} while envbot "
                                  f"worked; nothing was committed (run again to pin the new digest)")
        if model is not None and resolve_model(model.uri).sha256 != model.sha256:
            raise Conflict(f"model {model.uri} changed while envbot worked; nothing was committed")

    with session(args) as s:
        env = s.policy.env(args.env)
        bypassed = gate.write_gates(s.policy, env)
        trailers: list[tuple[str, str]] = []
        if bypassed and reason is None:
            raise GateRefused(f"{env.name} is gated ({', '.join(bypassed)}): releases reach it through "
                              f"`envbot promote`/`envbot propose`; --override-reason TEXT writes it directly",
                              gates=[f"{name}: a direct write to {env.name} skips it" for name in bypassed],
                              retry_after=None)
        if bypassed and reason is not None:
            info(f"override: writing {env.name} directly bypasses its gates: {', '.join(bypassed)}")
            trailers = gate.override_trailers(reason, gate.resolve_actor(args.actor), bypassed)
        path = s.policy.repo_path(s.app, env.name)
        current_text = s.workspace.show("HEAD", path)
        if current_text is None:
            raise EnvbotError(f"{path}: no values file for app {s.app.name} in {env.name}")
        current = read_release(s.workspace, "HEAD", s.policy, s.app, env.name)
        assert current is not None
        if ref is not None and image is not None:
            tag = ref.tag or image.labels.get(REVISION_LABEL, "")[:12] or current.image.tag
            image_pin = ImagePin(ref.name, tag, image.digest)
        else:
            if not current.image.digest:
                raise EnvbotError(f"{path}: {env.name} pins no image digest yet; pass --image")
            image_pin = current.image
        pin = ReleasePin(image_pin, model or current.model, chart or current.chart)
        what = image_pin.tag or image_pin.digest[:19]
        if ref is None and model is not None:
            what = f"model {model.name} {model.version}"
        if chart is not None and chart != current.chart:
            what += f", chart {chart.version}"
        promotion = Promotion(
            workspace=s.workspace, policy=s.policy, app=s.app, env=env, action="update",
            identity=s.identity, dry_run=args.dry_run, pin=pin, prechecks=(inputs_unchanged,),
            trailers=tuple(trailers), subject=f"envbot: update {s.app.name} in {env.name} to {what}",
            render=env.landing != "push" or args.dry_run,
        )
        promotion, outcome = run_steps(promotion, pin_release.steps(registry, args.source_repo))
        return report(args, promotion, outcome, {
            "requested": {"image": str(ref) if ref else image_pin.ref, "digest": image_pin.digest,
                          "chart": chart.ref if chart else None},
            "bypassed": bypassed if reason is not None else [], "override": reason})
