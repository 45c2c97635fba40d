"""envbot rollback ENV [--to REV]: git revert ENV's newest update/promotion (or all of them after REV).

Without --to: the newest envbot update or promotion of ENV that is not reverted yet (so rolling back
twice walks back two releases). With --to REV: every such commit after REV, newest first, in one
commit. Reverting rather than rewriting the pin as of REV keeps the hand edits people made to ENV's
other settings meanwhile, and a conflict with them is reported instead of silently overwritten.
The revert must touch only ENV's release files (values and chart pin: the image, the model and the chart
go back together); a conflict stops with nothing committed or pushed.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from bot import gates as gate
from bot.commands import report, session
from bot.errors import Conflict, EnvbotError
from bot.registry import RegistryClient
from bot.releases import commits_to_revert
from bot.steps import Promotion, commit, describe, land, recheck, render_diff, revert, run_steps
from bot.steps.verify_release import release_check

JSON_SCHEMA = "promotion"   # bot/schemas/promotion.json: the shape of `--json` output
WRITES = True   # commits: --dry-run and the commit identity options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment to roll back")
    parser.add_argument("--to", metavar="REV", help="revert every envbot update/promotion of ENV after REV "
                                                    "(any commit `envbot history ENV` lists)")
    gate.add_override_arguments(parser, "the check that the image and model the rollback returns to still "
                                        "exist in the registry and store")


def reverts_trailers(shas: list[str], override: str | None, actor: str) -> tuple[tuple[str, str], ...]:
    trailers = [("Envbot-Reverts", sha) for sha in shas]
    if override is not None:
        trailers += gate.override_trailers(override, actor, [gate.ARTIFACTS])
    return tuple(trailers)


def run(args: argparse.Namespace) -> int:
    override = gate.override_reason(args)
    actor = gate.resolve_actor(args.actor) if override is not None else ""
    registry = RegistryClient()
    with session(args) as s:
        env = s.policy.env(args.env)
        paths = s.policy.env_paths(s.app, env.name)
        shas = commits_to_revert(s.workspace, paths, s.app.name, env.name, s.identity, args.to)
        if not shas:
            raise EnvbotError(f"no envbot update or promotion of {s.app.name} in {env.name} "
                              f"{'after ' + args.to if args.to else ''} left to roll back".replace("  ", " "))
        listed = ", ".join(sha[:12] for sha in shas)
        promotion = Promotion(
            workspace=s.workspace, policy=s.policy, app=s.app, env=env, action="rollback", identity=s.identity,
            dry_run=args.dry_run, revert_commits=tuple(shas), trailers=reverts_trailers(shas, override, actor),
            release_check=release_check(registry), override_reason=override,
            subject=f"envbot: roll back {s.app.name} in {env.name} (revert {listed})",
            render=env.landing != "push" or args.dry_run,
        )

        def refresh(p: Promotion) -> Promotion:
            # A replay on a newer tip re-chooses: another writer may have rolled back meanwhile.
            chosen = commits_to_revert(p.workspace, paths, s.app.name, env.name, s.identity, args.to)
            if not chosen:
                raise Conflict(f"{s.app.name} in {env.name} was rolled back meanwhile; nothing to do")
            return replace(p, revert_commits=tuple(chosen), trailers=reverts_trailers(chosen, override, actor))

        steps = [revert.run, render_diff.run, describe.run, recheck.run, commit.run, land.run]
        promotion, outcome = run_steps(promotion, steps,
                                       refresh=refresh)
        return report(args, promotion, outcome, {"reverted": list(promotion.revert_commits),
                                                    "override": override})
