"""envbot status: per environment, the pinned image, model and chart, and the commit, time and author that set them."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime

from bot.commands import session
from bot.output import emit, short_digest, table
from bot.pins import pin_origin, read_release, same_release
from bot.releases import envbot_commit

JSON_SCHEMA = "status"   # bot/schemas/status.json: the shape of `--json` output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # only the common options


def run(args: argparse.Namespace) -> int:
    from bot.argocd import ArgoCDClient, ArgoCDError

    argocd = ArgoCDClient.from_env()
    with session(args) as s:
        rows = []
        pins = {}
        for env in s.policy.environments:
            pins[env.name] = read_release(s.workspace, "HEAD", s.policy, s.app, env.name)
        for index, env in enumerate(s.policy.environments):
            pin = pins[env.name]
            path = s.policy.repo_path(s.app, env.name)
            origin = pin_origin(s.workspace, s.policy.env_paths(s.app, env.name), pin) if pin else None
            # The release behind the commit (bot/releases.py): a merged pull request's envbot commit.
            made = envbot_commit(s.workspace, origin, s.identity) if origin else None
            nxt = s.policy.environments[index + 1].name if index + 1 < len(s.policy.environments) else None
            differs = None if nxt is None or pin is None or pins[nxt] is None else not same_release(pin, pins[nxt])
            row = {
                "env": env.name, "values": path,
                "image": asdict(pin.image) if pin else None, "model": asdict(pin.model) if pin else None,
                "chart": asdict(pin.chart) if pin else None,
                "commit": origin.sha if origin else None,
                "when": datetime.fromtimestamp(origin.committed, UTC).isoformat() if origin else None,
                "by": origin.author if origin else None,
                "action": (made.trailers["Envbot-Action"] if made else "manual edit") if origin else None,
                "next": nxt, "differs_from_next": differs,
            }
            if argocd is not None:
                try:
                    state = argocd.application_status(s.app.application(env.name))
                    row["sync"], row["health"] = state.sync_status, state.health_status
                except ArgoCDError as exc:
                    row["sync"], row["health"] = "?", str(exc).splitlines()[0][:40]
            rows.append(row)
        headers = ["ENV", "IMAGE", "DIGEST", "MODEL", "MODEL SHA256", "CHART", "CHART DIGEST", "COMMIT", "WHEN", "BY",
                   "NEXT"]
        if argocd is not None:
            headers += ["SYNC", "HEALTH"]
        lines = []
        for row in rows:
            pin = pins[row["env"]]
            cells = [
                row["env"], pin.image.tag or "-" if pin else "missing", short_digest(pin.image.digest) if pin else "-",
                f"{pin.model.name} {pin.model.version}" if pin and pin.model.name else "-",
                short_digest(pin.model.sha256) if pin else "-",
                (pin.chart.version or "-") if pin else "-", short_digest(pin.chart.digest) if pin else "-",
                (row["commit"] or "-")[:12],
                (row["when"] or "-")[:16].replace("T", " "), row["by"] or "-",
                "-" if row["differs_from_next"] is None else
                (f"differs from {row['next']}" if row["differs_from_next"] else f"same as {row['next']}"),
            ]
            if argocd is not None:
                cells += [row["sync"], row["health"]]
            lines.append(cells)
        emit(args.json, {"app": s.app.name, "environments": rows}, f"app {s.app.name}\n" + table(headers, lines))
    return 0
