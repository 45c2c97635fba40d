"""envbot update ENV --image REF [--model URI] [--chart OCI-REF]: pin an image digest (and a model, a chart) in ENV."""

from __future__ import annotations

import argparse

from bot.charts import parse_chart_ref, resolve_chart
from bot.commands import report, session
from bot.models import resolve_model
from bot.output import EnvbotError
from bot.pins import read_release
from bot.registry import REVISION_LABEL, ImageRef, RegistryClient, parse_image_ref
from bot.steps import Promotion, pin_release, run_steps
from bot.values import ImagePin, ReleasePin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment to pin (from promotion.yaml)")
    parser.add_argument("--image", required=True, help="registry/repo:tag, registry/repo@sha256:... or both")
    parser.add_argument("--model", help="model URI (blob https://..., s3://...) published with its sha256")
    parser.add_argument("--chart", help="chart CI pushed: oci://<registry>/<path>/<chart>:<version>[@sha256:...] "
                                        "(default: keep ENV's chart pin)")
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelog")


def run(args: argparse.Namespace) -> int:
    ref = parse_image_ref(args.image)
    registry = RegistryClient()
    image = registry.resolve(ref)
    model = resolve_model(args.model) if args.model else None
    chart = resolve_chart(parse_chart_ref(args.chart), registry, "--chart") if args.chart else None

    def tag_unchanged() -> None:
        # The tag may be re-pushed between resolving it and committing: re-resolve and compare.
        if ref.tag:
            now = registry.digest(ImageRef(ref.registry, ref.repository, ref.tag))
            if now != image.digest:
                raise EnvbotError(f"tag {ref.name}:{ref.tag} moved from {image.digest} to {now} while envbot "
                                  f"worked; nothing was committed (run again to pin the new digest)")
        if model is not None and resolve_model(model.uri).sha256 != model.sha256:
            raise EnvbotError(f"model {model.uri} changed while envbot worked; nothing was committed")
        if chart is not None:
            resolve_chart(chart, registry, "--chart")   # the version tag still points at the digest pinned

    with session(args) as s:
        env = s.policy.env(args.env)
        path = s.policy.repo_path(s.app, env.name)
        current_text = s.workspace.show("HEAD", path)
        if current_text is None:
            raise EnvbotError(f"{path}: no values file for app {s.app.name} in {env.name}")
        current = read_release(s.workspace, "HEAD", s.policy, s.app, env.name)
        assert current is not None
        tag = ref.tag or image.labels.get(REVISION_LABEL, "")[:12] or current.image.tag
        pin = ReleasePin(ImagePin(ref.name, tag, image.digest), model or current.model, chart or current.chart)
        promotion = Promotion(
            workspace=s.workspace, policy=s.policy, app=s.app, env=env, action="update",
            identity=s.identity, dry_run=args.dry_run, pin=pin, prechecks=[tag_unchanged],
            subject=f"envbot: update {s.app.name} in {env.name} to {tag or image.digest[:19]}"
                    + (f", chart {chart.version}" if chart is not None and chart != current.chart else ""),
            render=env.landing != "push" or args.dry_run,
        )
        run_steps(promotion, pin_release.steps(registry, args.source_repo))
        return report(args, promotion, {"image": str(ref), "digest": image.digest,
                                        "chart": chart.ref if chart else None})
