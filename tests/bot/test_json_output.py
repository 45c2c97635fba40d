"""`--json` of every verb matches its documented schema (bot/schemas/<JSON_SCHEMA>.json), on success and on
failure (error.json); the error kinds, exit codes and docs/envbot-json.md agree with bot/errors.py."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import jsonschema
import pytest

from bot.commands import VERBS
from bot.errors import EXIT_CODES
from tests.bot.envrepo import REPO_ROOT, run_envbot

SCHEMAS = REPO_ROOT / "bot" / "schemas"
DOC = REPO_ROOT / "docs" / "envbot-json.md"


def schema(name: str) -> dict:
    document = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def validate(verb: str, output: str) -> dict:
    document = json.loads(output)
    module = importlib.import_module(f"bot.commands.{verb}")
    jsonschema.validate(document, schema(module.JSON_SCHEMA), cls=jsonschema.Draft202012Validator)
    return document


def test_every_verb_names_a_schema_and_every_schema_is_documented():
    used = {importlib.import_module(f"bot.commands.{verb}").JSON_SCHEMA for verb in VERBS} | {"error"}
    assert used == {path.stem for path in SCHEMAS.glob("*.json")}
    doc = DOC.read_text()
    for verb in VERBS:
        assert f"`envbot {verb}`" in doc, verb
    for name in used:
        assert f"bot/schemas/{name}.json" in doc, name


def test_error_kinds_and_exit_codes_are_one_list():
    assert schema("error")["properties"]["kind"]["enum"] == list(EXIT_CODES)
    documented = dict(re.findall(r"^\| `([a-z-]+)` \| (\d+) \|", DOC.read_text(), re.M))
    assert {kind: int(code) for kind, code in documented.items()} == EXIT_CODES


def test_every_verb_output_matches_its_schema(fast_repo, oci_images, models, bot_env):
    remote = ("--repo", str(fast_repo.remote), "--json")
    env = bot_env

    def run(*args: str) -> str:
        return run_envbot(*args, *remote, env=env).stdout

    update = validate("update", run("update", "dev", "--image", oci_images["v3"].ref))
    assert update["requested"]["digest"] == oci_images["v3"].digest
    validate("update", run("update", "dev", "--image", oci_images["v3"].ref))          # unchanged: no commit
    validate("update", run("update", "dev", "--image", oci_images["v1"].ref, "--dry-run"))
    promote = validate("promote", run("promote", "dev", "staging", "--override-reason", "schema test"))
    assert promote["override"] == "schema test" and promote["landed"] == "branch"
    validate("rollback", run("rollback", "dev"))
    validate("status", run("status"))
    history = validate("history", run("history", "dev"))
    assert [e["release"] for e in history["entries"]][:3] == [False, True, False]   # rollback, update, initial
    validate("diff", run("diff", "staging", "prod"))
    validate("verify", run("verify"))


@pytest.mark.parametrize("args", [
    ("status", "--dry-run"), ("update", "qa", "--image", "x.io/a:b"), ("history", "qa"), ("diff", "dev", "qa"),
    ("rollback", "qa"), ("promote", "prod", "dev"), ("verify", "qa"), ("update",),
])
def test_every_failure_is_one_json_error_object(fast_repo, bot_env, args):
    proc = run_envbot(*args, "--json", "--repo", str(fast_repo.remote), env=bot_env, check=False)
    error = json.loads(proc.stdout)
    jsonschema.validate(error, schema("error"), cls=jsonschema.Draft202012Validator)
    assert error["exit_code"] == proc.returncode == EXIT_CODES[error["kind"]]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("envbot: error: ")


def test_schemas_are_valid_json_schema():
    for path in Path(SCHEMAS).glob("*.json"):
        schema(path.stem)
