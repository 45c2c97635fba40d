"""Alias bombs are refused in every YAML file envbot reads (bot/yamlfile.py is the one loader)."""

from __future__ import annotations

import json

import pytest

from bot.errors import BadInput
from bot.policy import load_policy
from bot.values import read_pin_text
from bot.yamlfile import MAX_EXPANDED_NODES, load_yaml
from tests.bot.envrepo import run_envbot

# Nine levels of ten aliases each: 10^9 nodes once expanded, 100 lines of text.
BOMB = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))


def test_bomb_in_a_values_file_is_refused_before_it_expands():
    text = "image:\n  repository: a.io/x\n  tag: t\n  digest: ''\n" + BOMB
    with pytest.raises(BadInput, match=r"^dev/values.yaml:\d+: YAML aliases expand to more than"):
        read_pin_text(text, "dev/values.yaml")


def test_recursive_alias_is_refused():
    with pytest.raises(BadInput, match="recursive YAML alias"):
        load_yaml("a: &a [*a]\n", "x.yaml")


def test_ordinary_aliases_are_fine():
    doc = load_yaml("base: &b {x: 1}\nuse: [*b, *b]\n", "x.yaml")
    assert doc["use"][1]["x"] == 1
    small = "a0: &a0 [1, 2]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 10))
    assert MAX_EXPANDED_NODES > 2 ** 10 and load_yaml(small, "x.yaml")["a9"]


def test_bomb_in_promotion_yaml_is_refused(tmp_path):
    (tmp_path / "promotion.yaml").write_text("environments:\n  - name: dev\n" + BOMB)
    with pytest.raises(BadInput, match=r"^promotion.yaml:\d+: YAML aliases expand"):
        load_policy(tmp_path)


def test_bomb_in_a_values_file_through_the_cli(fast_repo, oci_images, bot_env):
    fast_repo.pull()
    path = fast_repo.work / "environments" / "dev" / "values.yaml"
    path.write_text(path.read_text() + BOMB)
    fast_repo.commit_as_human("bomb")
    before = fast_repo.head()
    proc = run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--json", "--repo", str(fast_repo.remote),
                      env=bot_env, check=False)
    assert json.loads(proc.stdout)["kind"] == "bad-input" and "YAML aliases expand" in proc.stderr
    assert fast_repo.head() == before


def test_bomb_in_rendered_manifests_is_refused():
    from bot.render import split_manifests

    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n" + "".join(
        "  " + line + "\n" for line in BOMB.splitlines())
    with pytest.raises(BadInput, match=r"^helm template output:\d+: YAML aliases expand"):
        split_manifests("---\n" + manifest, "ns")
