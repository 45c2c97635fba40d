"""Constructed environments-repo histories with fixed commit dates, for metrics and dashboard tests.

A bare remote plus a work clone; each step is a commit made at a given time (GIT_AUTHOR_DATE and
GIT_COMMITTER_DATE), with envbot's trailers where envbot would have made it, and pull requests merged
with a merge commit (--no-ff) the way a reviewer merges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.git import format_message
from bot.values import ImagePin, ModelPin, ReleasePin, edit_pin_text
from tests.bot.envrepo import git

ENVS = ("dev", "staging", "prod")
POLICY = """\
apps:
{apps}
environments:
  - name: dev
    namespace: ai-app-dev
  - name: staging
    namespace: ai-app-staging
    landing: pull-request
    soak: 30m
  - name: prod
    namespace: ai-app-prod
    landing: pull-request
    soak: 24h
"""
APP_ENTRY = """\
  {app}:
    values: "{{env}}/{values}"
    chart:
      path: ../charts/ai-app
{source}"""
VALUES = """\
# {app} in {env}
image:
  repository: {repository}
  tag: "{tag}"
  digest: "{digest}"
model:
  source: blob
  name: iris-logreg
  version: "{model_version}"
  uri: https://models.example.invalid/iris-logreg/{model_version}/model.onnx
  sha256: "{model_sha}"
replicaCount: 1
"""


def digest_of(name: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def pin(tag: str, model_version: str = "1", repository: str = "registry.example.invalid/ai-app",
        digest: str | None = None) -> ReleasePin:
    return ReleasePin(ImagePin(repository, tag, digest or digest_of(tag)),
                      ModelPin("blob", "iris-logreg", model_version,
                               f"https://models.example.invalid/iris-logreg/{model_version}/model.onnx",
                               digest_of(f"model-{model_version}").split(":")[1]))


def dated(when: str, name: str = "Human", email: str = "human@example.com") -> dict[str, str]:
    return {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}


@dataclass
class History:
    """The environments repo being built: `remote` is what envbot and the dashboard are given."""

    root: Path
    apps: tuple[str, ...] = ("ai-app",)
    values_name: str = "values.yaml"
    sources: dict[str, str] = field(default_factory=dict)     # app -> promotion.yaml `source`
    remote: Path = field(init=False)
    work: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.remote = self.root / "environments.git"
        self.work = self.root / "work"
        git(self.root, "init", "-q", "--bare", "-b", "main", str(self.remote))
        git(self.root, "clone", "-q", str(self.remote), str(self.work))
        git(self.work, "checkout", "-q", "-b", "main")

    def path(self, app: str, env: str) -> Path:
        name = self.values_name if app == "ai-app" else f"{app}.yaml"
        return self.work / "environments" / env / name

    def values_file(self, app: str, env: str) -> str:
        return self.path(app, env).relative_to(self.work).as_posix()

    def init(self, pins: dict[str, ReleasePin], when: str, chart_from: Path | None = None) -> str:
        """promotion.yaml, every app's values in every env (PINS per env), the chart; one commit."""
        entries = "".join(APP_ENTRY.format(app=a, values=self.values_name if a == "ai-app" else f"{a}.yaml",
                                           source=f'    source: "{self.sources[a]}"\n' if a in self.sources else "")
                          for a in self.apps)
        (self.work / "environments").mkdir(exist_ok=True)
        (self.work / "environments" / "promotion.yaml").write_text(POLICY.format(apps=entries.rstrip("\n")))
        for app in self.apps:
            for env in ENVS:
                p = pins[env]
                self.path(app, env).parent.mkdir(parents=True, exist_ok=True)
                self.path(app, env).write_text(VALUES.format(
                    app=app, env=env, repository=p.image.repository, tag=p.image.tag, digest=p.image.digest,
                    model_version=p.model.version, model_sha=p.model.sha256))
        if chart_from is not None:
            import shutil

            shutil.copytree(chart_from, self.work / "charts" / "ai-app")
        return self._commit("environments: initial pins", when, None)

    def _commit(self, message: str, when: str, trailers: list[tuple[str, str]] | None,
                who: tuple[str, str] = ("Human", "human@example.com")) -> str:
        text = format_message(message, "", trailers) if trailers else message + "\n"
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", text, env=dated(when, *who))
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")

    def _set_pin(self, app: str, env: str, new: ReleasePin) -> None:
        path = self.path(app, env)
        path.write_text(edit_pin_text(path.read_text(), new, self.values_file(app, env)))

    @staticmethod
    def _trailers(action: str, app: str, env: str, new: ReleasePin | None) -> list[tuple[str, str]]:
        result = [("Envbot-Action", action), ("Envbot-App", app), ("Envbot-Env", env)]
        if new is not None:
            result += [("Envbot-Image", f"{new.image.repository}@{new.image.digest}"),
                       ("Envbot-Model", new.model.label)]
        return result

    def update(self, env: str, new: ReleasePin, when: str, app: str = "ai-app") -> str:
        """`envbot update` landed with a direct push."""
        self._set_pin(app, env, new)
        return self._commit(f"envbot: update {app} in {env} to {new.image.tag}", when,
                            self._trailers("update", app, env, new), ("envbot", "envbot@example.invalid"))

    def _merge(self, branch_commit_msg: str, trailers: list[tuple[str, str]], when: str, merged: str,
               branch: str) -> str:
        """Commit on a branch at WHEN, a reviewer merges it --no-ff at MERGED; the merge sha."""
        git(self.work, "checkout", "-q", "-b", branch)
        text = format_message(branch_commit_msg, "", trailers)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", text, env=dated(when, "envbot", "envbot@example.invalid"))
        git(self.work, "checkout", "-q", "main")
        git(self.work, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch,
            env=dated(merged, "Riley Reviewer", "riley@example.invalid"))
        git(self.work, "branch", "-q", "-D", branch)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")

    def promote(self, src: str, env: str, new: ReleasePin, when: str, merged: str | None = None,
                app: str = "ai-app") -> str:
        """`envbot promote` as a pull request merged at MERGED (default: WHEN)."""
        self._set_pin(app, env, new)
        trailers = [*self._trailers("promote", app, env, new), ("Envbot-From", f"{src}@{'0' * 40}")]
        return self._merge(f"envbot: promote {app} {src} -> {env}", trailers, when, merged or when,
                           f"envbot/promote-{app}-{env}")

    def rollback(self, env: str, reverted: list[str], back_to: ReleasePin, when: str, merged: str | None = None,
                 app: str = "ai-app") -> str:
        """`envbot rollback` as a pull request: the pin goes back to BACK_TO, naming the reverted commits."""
        self._set_pin(app, env, back_to)
        trailers = [*self._trailers("rollback", app, env, back_to), *[("Envbot-Reverts", s) for s in reverted]]
        return self._merge(f"envbot: roll back {app} in {env}", trailers, when, merged or when,
                           f"envbot/rollback-{app}-{env}")

    def hand_edit_pin(self, env: str, new: ReleasePin, when: str, app: str = "ai-app") -> str:
        self._set_pin(app, env, new)
        return self._commit(f"{env}: pin {new.image.tag} by hand", when, None)

    def hand_edit_other(self, env: str, when: str, app: str = "ai-app") -> str:
        """A settings change that is no release (replicaCount)."""
        path = self.path(app, env)
        path.write_text(path.read_text().replace("replicaCount: 1", "replicaCount: 2"))
        return self._commit(f"{env}: two replicas", when, None)

    def git_revert(self, sha: str, when: str) -> str:
        """`git revert` by hand (its message names the reverted commit)."""
        args = ["revert", "--no-edit"]
        if len(git(self.work, "rev-list", "--parents", "-n", "1", sha).split()) > 2:
            args += ["-m", "1"]
        git(self.work, *args, sha, env=dated(when))
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")


@dataclass
class SourceHistory:
    """The app's source repository with commits at fixed times."""

    path: Path
    commits: dict[str, str] = field(default_factory=dict)    # name -> sha

    def __post_init__(self) -> None:
        self.path.mkdir(parents=True)
        git(self.path, "init", "-q", "-b", "main")

    def commit(self, name: str, when: str) -> str:
        (self.path / "app.txt").write_text(name + "\n")
        git(self.path, "add", "app.txt")
        git(self.path, "commit", "-q", "-m", f"app: {name}", env=dated(when, "Dev", "dev@example.com"))
        self.commits[name] = git(self.path, "rev-parse", "HEAD")
        return self.commits[name]
