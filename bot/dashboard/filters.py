"""Jinja filters shared by the dashboard's templates."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from bot.commands.metrics import format_seconds
from bot.output import short_digest
from bot.policy import format_duration


def when(value: int | datetime | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: int | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    seconds = (datetime.now(UTC) - value).total_seconds()
    return format_seconds(max(seconds, 0)) + " ago"


def register(app: Flask) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.filters["short"] = short_digest
    app.jinja_env.filters["seconds"] = format_seconds
    app.jinja_env.filters["duration"] = format_duration
    app.jinja_env.filters["iso"] = lambda v: v.isoformat() if v else ""
