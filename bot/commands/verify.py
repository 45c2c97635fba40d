"""envbot verify [ENV]: every pinned image digest is in its registry and every pinned model matches its sha256."""

from __future__ import annotations

import argparse

from bot.commands import session
from bot.errors import EnvbotError, VerifyFailed
from bot.models import check_model
from bot.output import emit, table
from bot.registry import RegistryClient
from bot.steps.verify_release import check_image
from bot.values import read_pin_text

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
            text = s.workspace.show("HEAD", path)
            checks: list[tuple[str, str, str]] = []   # (check, problem, what was checked besides existence)
            try:
                if text is None:
                    raise EnvbotError(f"{path}: no values file")
                pin = read_pin_text(text, path)
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
            for check, problem, extra in checks:
                subject = pin.image.ref if check == "image" else pin.model.uri
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
