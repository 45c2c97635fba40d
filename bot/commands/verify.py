"""envbot verify [ENV]: pinned image and chart digests are in their registries, pinned models match their sha256."""

from __future__ import annotations

import argparse

from bot.charts import check_allowed, resolve_chart
from bot.commands import session
from bot.errors import EnvbotError, VerifyFailed
from bot.models import check_model
from bot.output import emit, table
from bot.pins import read_release
from bot.registry import RegistryClient
from bot.steps.verify_release import check_image

JSON_SCHEMA = "verify"   # bot/schemas/verify.json: the shape of `--json` output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", nargs="?", help="environment (default: all)")
    parser.add_argument("--deep", action="store_true", help="download each model and hash every byte")


def run(args: argparse.Namespace) -> int:
    registry = RegistryClient()
    with session(args) as s:
        envs = [s.policy.env(args.env)] if args.env else s.policy.environments
        results = []
        for env in envs:
            path = s.policy.repo_path(s.app, env.name)
            chart_path = s.policy.chart_pin_repo_path(s.app, env.name)
            checks: list[tuple[str, str, str]] = []   # (check, problem, what was checked besides existence)
            try:
                pin = read_release(s.workspace, "HEAD", s.policy, s.app, env.name)
                if pin is None:
                    raise EnvbotError(f"{path}: no values file")
            except EnvbotError as exc:
                results.append({"env": env.name, "check": "values", "ok": False, "detail": str(exc)})
                continue
            if not pin.image.digest:
                checks.append(("image", f"{path}: image.digest is empty", ""))
            else:
                try:
                    check_image(registry, pin)
                    checks.append(("image", "", ""))
                except EnvbotError as exc:
                    checks.append(("image", str(exc), ""))
            if pin.model.uri:
                try:
                    checks.append(("model", "", check_model(pin.model, deep=args.deep)))
                except EnvbotError as exc:
                    checks.append(("model", str(exc), ""))
            if not pin.chart.repository:
                checks.append(("chart", f"{chart_path}: no chart pin; {env.name} would render whatever chart "
                                        f"promotion.yaml names", ""))
            elif not pin.chart.digest:
                checks.append(("chart", f"{chart_path}: spec.ref.digest is empty", ""))
            else:
                try:
                    check_allowed(pin.chart, s.app.chart, chart_path)
                    resolve_chart(pin.chart, registry, chart_path)
                    checks.append(("chart", "", ""))
                except EnvbotError as exc:
                    checks.append(("chart", str(exc), ""))
            subjects = {"image": pin.image.ref, "model": pin.model.uri, "chart": pin.chart.ref}
            for check, problem, extra in checks:
                subject = subjects[check]
                results.append({"env": env.name, "check": check, "ok": not problem,
                                "detail": problem or f"{subject} ok" + (f" ({extra})" if extra else "")})
        failed = [r for r in results if not r["ok"]]
        text = table(["ENV", "CHECK", "RESULT", "DETAIL"],
                     [[r["env"], r["check"], "ok" if r["ok"] else "FAIL", r["detail"]] for r in results])
        payload = {"app": s.app.name, "ok": not failed, "results": results}
        if failed:
            # Under --json the error object carries the results: one JSON document on stdout.
            if not args.json:
                emit(False, payload, text)
            raise VerifyFailed(f"{len(failed)} pin(s) failed verification", **payload)
        emit(args.json, payload, text)
    return 0
