"""The README's `envbot status` and pull-request description samples are what envbot prints today.

Both are made here the way the README says (a model-only release reached staging, prod runs the older
release), against the local registry and Azurite; the values differ run to run (digests, dates,
ports), so the samples are compared with those masked: same columns, same sections, same fields, same
rendered resources. A new column or section in envbot fails this test until the README shows it.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.bot.envrepo import REPO_ROOT, make_env_repo, run_envbot
from tests.fixtures.envbot import release

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def fenced(language: str, after: str) -> str:
    """The first ```LANGUAGE block after the text AFTER in the README."""
    start = README.index(after)
    match = re.compile(rf"^(`{{3,}}){language}\n(.*?)^\1$", re.M | re.S).search(README, start)
    assert match, f"no ```{language} block after {after!r} in README.md"
    return match.group(2)


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def masked(text: str) -> str:
    """Values that change run to run -> placeholders; structure and wording stay."""
    text = re.sub(r"https?://[^\s`|]+", "URL", text)
    text = re.sub(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d\S*", "DATE", text)
    text = re.sub(r"\b[0-9a-f]{12,64}\b", "HEX", text)
    text = re.sub(r"@@ -\d+,\d+ \+\d+,\d+ @@", "@@", text)
    text = re.sub(r"\b\d[\d,]* bytes\b", "N bytes", text)
    return text


@pytest.fixture
def model_release_repo(tmp_path, oci_images, models, charts):
    """dev and staging run model 2, prod model 1, all on image v2 and chart build 1: a model-only release."""
    pins = {"dev": release(oci_images["v2"], models["2"], charts["1"]),
            "staging": release(oci_images["v2"], models["1"], charts["1"]),
            "prod": release(oci_images["v2"], models["1"], charts["1"])}
    return make_env_repo(tmp_path, pins=pins)


def test_status_sample_has_the_columns_and_rows_envbot_prints(model_release_repo, bot_env):
    sample = fenced("text", "What a release looks like").splitlines()
    printed = run_envbot("status", "--repo", str(model_release_repo.remote), env=bot_env).stdout.splitlines()
    assert sample[0] == printed[0]                      # app ai-app
    assert columns(sample[1]) == columns(printed[1])    # the header
    assert [columns(line)[0] for line in sample[2:]] == [columns(line)[0] for line in printed[2:]]
    for line in sample[2:]:
        cells = columns(line)
        assert len(cells) == len(columns(printed[1])), f"README status row {line!r} has other columns"
        assert re.fullmatch(r"-|same as \w+|differs from \w+", cells[-1]), cells[-1]


def test_pull_request_sample_has_the_sections_envbot_writes(model_release_repo, bot_env):
    sample = fenced("markdown", "and the description of the pull request")
    proc = run_envbot("promote", "dev", "staging", "--dry-run", "--json", "--repo", str(model_release_repo.remote),
                      env=bot_env)
    written = json.loads(proc.stdout)["description"]

    def skeleton(text: str) -> list[str]:
        # Headings, the field table, the rendered resources and the trailers: what a reviewer reads first.
        keep = re.compile(r"^(#{2,3} |\| |<details>|Environment \*\*|Same image|`Envbot-)")
        return [masked(line).rstrip() for line in text.splitlines() if keep.match(line)]

    assert skeleton(sample) == skeleton(written)
    # The diff lines the README shows are lines of the written diff (the sample elides two hunks).
    diff_lines = [line for line in sample.split("```diff\n", 1)[1].split("\n```", 1)[0].splitlines()
                  if not line.startswith("@@ …")]
    written_lines = set(masked(written).splitlines())
    missing = [line for line in diff_lines if masked(line) not in written_lines]
    assert missing == [], "README diff lines envbot no longer writes"
