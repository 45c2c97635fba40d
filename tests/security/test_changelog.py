"""Image labels are data: the changelog of a promotion (docs/security.md, cases 4, 5 and the low ones).

Images whose labels an attacker chose are pushed to the real local registry; envbot builds the
pull-request description from them with real git and helm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.values import ImagePin, ModelPin, ReleasePin
from tests.bot.envrepo import git, make_env_repo, policy_text, run_envbot
from tests.security.conftest import envbot_env, push_labelled_image

REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"
HOSTILE_SUBJECT = "<img src=x onerror=alert(1)> [click](https://evil.example) **bold** `code`"
FORGE_URL = "https://github.com/example/ai-app-src.git"   # a forge URL, served locally through insteadOf
MORE = 60


@dataclass(frozen=True)
class Source:
    path: Path
    first: str            # the running image's revision
    last: str             # the new image's revision
    count: int            # commits in first..last


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = tmp_path_factory.mktemp("src") / "ai-app-src"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    identity = ["-c", "user.name=Mallory [site](https://evil.example) **x**", "-c", "user.email=m@example.com"]
    # Oldest first: the hostile subjects are among the newest, which the description lists.
    subjects = ["base"] + [f"routine change {i}" for i in range(MORE)] + [HOSTILE_SUBJECT, "x" * 100_000]
    shas = []
    for subject in subjects:
        git(path, *identity, "commit", "-q", "--allow-empty", "-m", subject)
        shas.append(git(path, "rev-parse", "HEAD"))
    return Source(path, shas[0], shas[-1], len(shas) - 1)


def promote_with_labels(tmp_path: Path, registry, helm_bin: str, old_labels: dict[str, str],
                        new_labels: dict[str, str], *extra: str, env_extra: dict[str, str] | None = None,
                        policy: str | None = None) -> tuple[dict, str]:
    """`envbot update staging --image NEW --dry-run --json` where staging runs OLD; (result, stderr)."""
    tag = tmp_path.name[-20:].lower().replace("_", "-").strip("-.") or "t"
    old_digest = push_labelled_image(registry.url, registry.ca_file, "sec/ai-app", f"{tag}-old", old_labels)
    push_labelled_image(registry.url, registry.ca_file, "sec/ai-app", f"{tag}-new", new_labels)
    model = ModelPin("blob", "iris-logreg", "2", "https://aiappmodels.blob.core.windows.net/models/iris-logreg/2/"
                     "model.onnx", "0" * 64)
    pins = {"staging": ReleasePin(ImagePin(f"{registry.host}/sec/ai-app", f"{tag}-old", old_digest), model)}
    repo = make_env_repo(tmp_path, policy=policy, pins=pins)
    env = envbot_env(tmp_path, REQUESTS_CA_BUNDLE=str(registry.ca_file), ENVBOT_HELM=helm_bin, **(env_extra or {}))
    # staging is gated (it follows dev): the direct write is an override, as a hotfix would be.
    proc = run_envbot("update", "staging", "--image", f"{registry.host}/sec/ai-app:{tag}-new", "--dry-run", "--json",
                      "--override-reason", "security test", "--repo", str(repo.remote), *extra, env=env)
    return json.loads(proc.stdout), proc.stderr


def changelog_of(description: str) -> str:
    return description.split("### Source changes", 1)[1].split("### Rendered manifests", 1)[0]


@pytest.mark.parametrize("label", ["file", "path"])
def test_local_source_labels_are_not_read(tmp_path: Path, oci_registry, helm_bin: str, source: Source,
                                          label: str) -> None:
    where = source.path.as_uri() if label == "file" else str(source.path)
    result, _ = promote_with_labels(tmp_path, oci_registry, helm_bin, {REVISION: source.first, SOURCE: where},
                                    {REVISION: source.last, SOURCE: where})
    changelog = changelog_of(result["description"])
    assert "routine change" not in changelog and "onerror" not in changelog
    assert "source label is not used" in changelog and "only https or ssh URLs" in changelog


def test_revision_label_cannot_become_a_git_option(tmp_path: Path, oci_registry, helm_bin: str,
                                                    source: Source) -> None:
    target = tmp_path / "pwned"
    result, _ = promote_with_labels(tmp_path, oci_registry, helm_bin, {REVISION: f"--output={target}"},
                                    {REVISION: source.last}, "--source-repo", str(source.path))
    assert not list(tmp_path.glob("pwned*"))
    assert "is not a 40- or 64-hex-character commit id" in changelog_of(result["description"])


def test_subjects_are_escaped_and_capped_with_a_truthful_count(tmp_path: Path, oci_registry, helm_bin: str,
                                                               source: Source) -> None:
    result, _ = promote_with_labels(tmp_path, oci_registry, helm_bin, {REVISION: source.first},
                                    {REVISION: source.last}, "--source-repo", str(source.path))
    changelog = changelog_of(result["description"])
    assert f"{source.count} commit(s)" in changelog
    assert "<img" not in changelog and "](https://evil" not in changelog and "**" not in changelog
    assert "&lt;img src=x onerror=alert\\(1\\)&gt; \\[click\\]" in changelog
    assert "(Mallory \\[site\\]\\(https:\\/\\/evil.example\\) \\*\\*x\\*\\*)" in changelog
    listed = [line for line in changelog.splitlines() if line.startswith("- [`") or line.startswith("- `")]
    assert len(listed) == 50
    assert f"… and {source.count - 50} more" in changelog
    assert max(len(line) for line in changelog.splitlines()) < 600
    # The diff still fits: the long subject did not push it out of the body.
    assert "### Rendered manifests (helm template)" in result["description"]


@pytest.mark.parametrize("given_as", ["--source-repo", "apps.source"])
def test_credentials_in_source_urls_are_never_printed(tmp_path: Path, oci_registry, helm_bin: str,
                                                      source: Source, given_as: str) -> None:
    secret = "s3cr3t-userinfo-token"
    url = f"https://envbot:{secret}@127.0.0.1:9/src.git"
    if given_as == "--source-repo":
        extra, policy = ["--source-repo", url], None
    else:
        extra, policy = [], policy_text().replace("  ai-app:\n", f"  ai-app:\n    source: {url}\n", 1)
    result, stderr = promote_with_labels(tmp_path, oci_registry, helm_bin, {REVISION: source.first},
                                         {REVISION: source.last}, *extra, policy=policy)
    assert "are not available from `https://127.0.0.1:9/src.git`" in result["description"]
    assert secret not in json.dumps(result) and secret not in stderr


def test_label_with_credentials_for_a_foreign_host_is_neither_used_nor_printed(
        tmp_path: Path, oci_registry, helm_bin: str, source: Source) -> None:
    secret = "label-userinfo-token"
    label = f"https://envbot:{secret}@127.0.0.1:9/src.git"
    result, stderr = promote_with_labels(tmp_path, oci_registry, helm_bin, {REVISION: source.first, SOURCE: label},
                                         {REVISION: source.last, SOURCE: label})
    assert "127.0.0.1 is not a known forge host" in changelog_of(result["description"])
    assert secret not in json.dumps(result) and secret not in stderr


def test_forge_source_label_is_used(tmp_path: Path, oci_registry, helm_bin: str, source: Source) -> None:
    # git's url.<base>.insteadOf serves the forge URL from the local repository: no network.
    insteadof = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{source.path.as_uri()}.insteadOf",
                 "GIT_CONFIG_VALUE_0": FORGE_URL}
    result, _ = promote_with_labels(tmp_path, oci_registry, helm_bin, {REVISION: source.first, SOURCE: FORGE_URL},
                                    {REVISION: source.last, SOURCE: FORGE_URL}, env_extra=insteadof)
    changelog = changelog_of(result["description"])
    assert f"{source.count} commit(s)" in changelog
    assert f"(https://github.com/example/ai-app-src/commit/{source.last})" in changelog
