"""envbot history ENV: the audit trail of ENV's pin from git history and envbot's commit trailers."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from bot.commands import session
from bot.output import emit, table
from bot.releases import is_release, made_by_envbot

JSON_SCHEMA = "history"   # bot/schemas/history.json: the shape of `--json` output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment")
    parser.add_argument("--limit", type=int, default=50, help="newest N entries (default 50)")


def run(args: argparse.Namespace) -> int:
    with session(args) as s:
        env = s.policy.env(args.env)
        path = s.policy.repo_path(s.app, env.name)
        entries = []
        # All parents: envbot's commits inside merged pull requests carry the trailers. Every commit
        # listed here is accepted by `rollback --to` (bot/releases.py decides what is a release).
        for commit in s.workspace.walk(s.policy.env_paths(s.app, env.name), first_parent=False):
            mine = made_by_envbot(commit, s.identity)
            t = commit.trailers if mine else {}
            if t and (t.get("Envbot-App") != s.app.name or t.get("Envbot-Env") != env.name):
                continue
            entries.append({
                "commit": commit.sha, "when": datetime.fromtimestamp(commit.committed, UTC).isoformat(),
                "by": f"{commit.author} <{commit.email}>", "action": t.get("Envbot-Action", "manual edit"),
                "release": is_release(commit, s.app.name, env.name) if mine else False,
                "image": t.get("Envbot-Image") or None, "model": t.get("Envbot-Model") or None,
                "chart": t.get("Envbot-Chart") or None,
                "from": t.get("Envbot-From") or None, "override": t.get("Envbot-Override") or None,
                "reverts": list(commit.multi_trailers.get("Envbot-Reverts", ())) if mine else [],
                "subject": commit.subject,
            })
            if len(entries) >= args.limit:
                break
        rows = []
        for e in entries:
            notes = []
            if e["from"]:
                notes.append(f"from {e['from'].split('@')[0]}@{e['from'].split('@')[-1][:12]}")
            if e["reverts"]:
                notes.append("reverts " + ",".join(r[:12] for r in e["reverts"]))
            if e["override"]:
                notes.append(f"OVERRIDE: {e['override']}")
            image = e["image"].split("@")[-1].split(":")[-1][:12] if e["image"] else "-"
            # oci://host/helm/ai-app:VERSION@sha256:... -> VERSION
            chart = e["chart"].split("@")[0].rsplit(":", 1)[-1] if e["chart"] else "-"
            rows.append([e["when"][:16].replace("T", " "), e["commit"][:12], e["action"], e["by"].split(" <")[0],
                         image, (e["model"] or "").split(" sha256:")[0] or "-", chart,
                         "; ".join(notes) or e["subject"][:60]])
        text = f"{s.app.name} in {env.name} ({path})\n" + table(
            ["WHEN", "COMMIT", "ACTION", "BY", "IMAGE", "MODEL", "CHART", "NOTES"], rows)
        emit(args.json, {"app": s.app.name, "env": env.name, "entries": entries}, text)
    return 0
