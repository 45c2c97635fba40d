"""envbot update ENV --image REF [--model URI]: pin an image digest (and a model) in one environment."""

from __future__ import annotations

import argparse

from bot.commands import report, session
from bot.errors import Conflict, EnvbotError
from bot.models import resolve_model
from bot.registry import REVISION_LABEL, ImageRef, RegistryClient, parse_image_ref
from bot.steps import Promotion, pin_release, run_steps
from bot.values import ImagePin, ReleasePin, read_pin_text

JSON_SCHEMA = "promotion"   # bot/schemas/promotion.json: the shape of `--json` output
WRITES = True   # commits: --dry-run and the commit identity options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment to pin (from promotion.yaml)")
    parser.add_argument("--image", required=True, help="registry/repo:tag, registry/repo@sha256:... or both")
    parser.add_argument("--model", help="model URI (blob https://..., s3://...) published with its sha256")
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelog")


def run(args: argparse.Namespace) -> int:
    ref = parse_image_ref(args.image)
    registry = RegistryClient()
    image = registry.resolve(ref)
    model = resolve_model(args.model) if args.model else None

    def tag_unchanged() -> None:
        # The tag may be re-pushed between resolving it and committing: re-resolve and compare.
        if ref.tag:
            now = registry.digest(ImageRef(ref.registry, ref.repository, ref.tag))
            if now != image.digest:
                raise Conflict(f"tag {ref.name}:{ref.tag} moved from {image.digest} to {now} while envbot "
                                  f"worked; nothing was committed (run again to pin the new digest)")
        if model is not None and resolve_model(model.uri).sha256 != model.sha256:
            raise Conflict(f"model {model.uri} changed while envbot worked; nothing was committed")

    with session(args) as s:
        env = s.policy.env(args.env)
        path = s.policy.repo_path(s.app, env.name)
        current_text = s.workspace.show("HEAD", path)
        if current_text is None:
            raise EnvbotError(f"{path}: no values file for app {s.app.name} in {env.name}")
        current = read_pin_text(current_text, path)
        tag = ref.tag or image.labels.get(REVISION_LABEL, "")[:12] or current.image.tag
        pin = ReleasePin(ImagePin(ref.name, tag, image.digest), model or current.model)
        promotion = Promotion(
            workspace=s.workspace, policy=s.policy, app=s.app, env=env, action="update",
            identity=s.identity, dry_run=args.dry_run, pin=pin, prechecks=(tag_unchanged,),
            subject=f"envbot: update {s.app.name} in {env.name} to {tag or image.digest[:19]}",
            render=env.landing != "push" or args.dry_run,
        )
        promotion, outcome = run_steps(promotion, pin_release.steps(registry, args.source_repo))
        return report(args, promotion, outcome, {"requested": {"image": str(ref), "digest": image.digest}})
