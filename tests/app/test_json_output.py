"""`ai-app VERB --json` matches the verb's documented schema (app/schemas/<JSON_SCHEMA>.json), on success
and on failure (error.json: one JSON error object on stdout, one line on stderr, the kind's exit code);
docs/cli.md lists every schema and every error kind of app/cli.py."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from app.cli import EXIT_CODES
from app.main import VERBS
from app.training import TrainedModel
from tests.fixtures.models import ModelStore

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = REPO_ROOT / "app" / "schemas"
DOC = (REPO_ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
VERBS_WITH_JSON = ("train", "check-model", "publish-model", "fetch-model")


def ai_app(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})}, check=False, timeout=300)


def schema(name: str) -> dict:
    document = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def validate(verb: str, line: str) -> dict:
    module = importlib.import_module(f"app.commands.{verb.replace('-', '_')}")
    document = json.loads(line)
    jsonschema.validate(document, schema(module.JSON_SCHEMA), cls=jsonschema.Draft202012Validator)
    return document


def test_every_verb_with_json_names_a_documented_schema() -> None:
    with_json = set()
    for verb in VERBS:
        module = importlib.import_module(f"app.commands.{verb.replace('-', '_')}")
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        if any("--json" in action.option_strings for action in parser._actions):
            with_json.add(verb)
            assert (SCHEMAS / f"{module.JSON_SCHEMA}.json").is_file(), verb
            assert f"`app/schemas/{module.JSON_SCHEMA}.json`" in DOC, f"docs/cli.md does not list {verb}'s schema"
    assert with_json == set(VERBS_WITH_JSON)
    assert {p.stem for p in SCHEMAS.glob("*.json")} == with_json | {"error"}


def test_error_kinds_are_one_list() -> None:
    assert set(schema("error")["properties"]["kind"]["enum"]) == set(EXIT_CODES)
    for kind, code in EXIT_CODES.items():
        assert f"| `{kind}` | {code} |" in DOC, f"docs/cli.md has no row for the error kind {kind}"


def test_every_verb_output_matches_its_schema(tmp_path: Path, model_store: ModelStore,
                                              trained_models: dict[str, TrainedModel]) -> None:
    done = ai_app("train", "--out", str(tmp_path / "models"), "--model-name", "iris-logreg", "--json")
    assert done.returncode == 0, done.stderr
    trained = validate("train", done.stdout)

    sample = tmp_path / "sample"
    subprocess.run([sys.executable, "docs/examples/convert_sklearn.py", str(sample)], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    done = ai_app("check-model", str(sample / "model.onnx"), "--reference", str(sample / "model.joblib"), "--json")
    assert done.returncode == 0, done.stderr
    assert validate("check-model", done.stdout)["passed"] is True
    # A mismatch still prints the result (passed: false), then refuses with exit code 1.
    wrong = tmp_path / "wrong.json"   # an iris setosa row said to be class 2
    wrong.write_text(json.dumps({"inputs": {"input": [[5.1, 3.5, 1.4, 0.2]]}, "outputs": {"label": [2]}}))
    done = ai_app("check-model", str(sample / "model.onnx"), "--samples", str(wrong), "--json")
    assert done.returncode == 1, done.stderr
    assert validate("check-model", done.stdout)["passed"] is False

    uri = model_store.unique_uri("json")
    done = ai_app("publish-model", trained["path"], "--uri", uri, "--json", env=model_store.env)
    assert done.returncode == 0, done.stderr
    published = validate("publish-model", done.stdout)
    assert published["sha256"] == trained["sha256"] and published["card"]["sha256"] == trained["sha256"]

    done = ai_app("fetch-model", "--uri", uri, "--sha256", trained["sha256"], "--dest", str(tmp_path / "fetched"),
                  "--json", env=model_store.env)
    assert done.returncode == 0, done.stderr
    assert validate("fetch-model", done.stdout)["size"] == published["size"]


@pytest.mark.parametrize(("args", "kind"), [
    (["train", "--json"], "bad-input"),                                   # usage: --out missing
    (["check-model", "missing.onnx", "--samples", "s.npz", "--json"], "bad-input"),
    (["check-model", "m.onnx", "--samples", "s.npz", "--rows", "0", "--json"], "bad-input"),
    (["publish-model", "README.md", "--uri", "s3://models/readme/1/model.onnx", "--json"], "failed"),
    (["fetch-model", "--dest", "out", "--json"], "bad-input"),            # no --uri/--sha256
    (["fetch-model", "--uri", "ftp://x/m/1/model.onnx", "--sha256", "0" * 64, "--dest", "out", "--json"], "failed"),
])
def test_every_failure_is_one_line_and_one_json_error_object(args: list[str], kind: str) -> None:
    done = ai_app(*args, env={"MODEL_URI": "", "MODEL_SHA256": ""})
    error = json.loads(done.stdout)
    jsonschema.validate(error, schema("error"), cls=jsonschema.Draft202012Validator)
    assert error["kind"] == kind and error["exit_code"] == done.returncode == EXIT_CODES[kind]
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"ai-app {args[0]}: "), done.stderr
    assert error["error"] in done.stderr


def test_usage_errors_are_one_line_without_json_too() -> None:
    done = ai_app("deploy")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "invalid choice: 'deploy'" in done.stderr
    assert done.stderr.startswith("ai-app: ") and "(see ai-app --help)" in done.stderr
