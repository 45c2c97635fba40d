"""Promotion proposals: for every app and every environment with an upstream, one pull request (or, on a
plain git remote, one branch) that brings the upstream's release, kept in step with the upstream.

Like GitOps Promoter, the proposal is a standing object reconciled on every run:
- upstream and environment run the same release (bot.pins.same_release): nothing to propose; an
  open proposal is closed and its branch deleted (an upstream rollback that made them equal);
- the proposal branch already holds exactly the change that would be made now: nothing is written
  (no commit, no push, no pull-request edit); only gate statuses that changed are posted;
- otherwise the branch is rebuilt from the current main with the promote step list (same branch,
  description, rendered diff and changelog as `envbot promote`) and force-pushed; a different release
  it carried is named in an Envbot-Supersedes trailer, shown in the description.
Gates (bot.gates) become statuses; with autoMerge (or landing: push) the proposal is completed once
every gate is green.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import git

from bot import gates as gate
from bot.errors import Conflict, EnvbotError, Unreachable
from bot.forges import ForgeError, forge_client
from bot.git import Identity, PushRejected, Workspace
from bot.modelgates import model_report, model_section
from bot.models import check_model
from bot.output import short_digest
from bot.pins import pin_origin, release_from_texts, same_release
from bot.policy import App, Environment, Policy
from bot.registry import ImageRef, RegistryClient, parse_image_ref
from bot.render import render
from bot.steps import Promotion, pin_release, run_steps
from bot.steps.land import branch_remote
from bot.values import ReleasePin, edit_chart_pin_text, edit_pin_text, read_chart_pin_text, read_pin_fast, read_pin_text

ACTIONS = ("opened", "updated", "unchanged", "merged", "closed", "blocked", "error")
STATUS_GENRE = "envbot"
MERGE_ATTEMPTS = 10


class ProposalStale(Conflict):
    """main changed the environment's file under the proposal: not merged; the next run rebuilds it."""


def proposal_branch(app: App, env: Environment) -> str:
    """The branch `envbot promote` uses too: a proposal and a manual promotion are the same pull request."""
    return f"envbot/promote-{app.name}-{env.name}"


def release_label(pin: ReleasePin) -> str:
    image = f"{pin.image.tag or '-'} ({short_digest(pin.image.digest)})"
    if pin.model.name:
        return f"{image}, model {pin.model.name} {pin.model.version} ({short_digest(pin.model.sha256)})"
    return image


@dataclass
class Proposal:
    app: str
    env: str
    upstream: str
    action: str = "unchanged"
    reason: str = ""
    branch: str | None = None
    commit: str | None = None              # head of the proposal branch
    pull_request: str | None = None
    release: ReleasePin | None = None      # what the proposal brings
    superseded: ReleasePin | None = None
    gates: list[gate.Gate] = field(default_factory=list)
    statuses_posted: int = 0
    merged_commit: str | None = None
    kind: str | None = None                # action "error": the error's kind (bot/errors.py)

    def as_dict(self) -> dict[str, Any]:
        blocked = [g for g in self.gates if not g.ok]
        # When every blocking gate passes by itself: the latest of their times; None if one needs a person.
        passes_at = (max(g.passes_at for g in blocked if g.passes_at)
                     if blocked and all(g.passes_at for g in blocked) else None)
        return {
            "app": self.app, "env": self.env, "upstream": self.upstream, "action": self.action,
            "reason": self.reason, "branch": self.branch, "commit": self.commit,
            "pull_request": self.pull_request,
            "release": self.release.as_dict() if self.release else None,
            "superseded": self.superseded.as_dict() if self.superseded else None,
            "gates": [g.as_dict() for g in self.gates],
            "green": bool(self.gates) and not blocked,
            "passes_at": passes_at.isoformat() if passes_at else None,
            "statuses_posted": self.statuses_posted, "merged_commit": self.merged_commit,
            "kind": self.kind,
        }


@dataclass
class Proposer:
    """Reconciles the proposals of one workspace (a clone of the environments repo's main)."""

    workspace: Workspace
    policy: Policy
    identity: Identity
    dry_run: bool = False
    source_repo: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    registry: RegistryClient = field(default_factory=RegistryClient)
    remote_branches: dict[str, str] = field(default_factory=dict)
    _forge: Any = None
    _pins: dict[str, ReleasePin] = field(default_factory=dict)
    _forge_checked: bool = False

    # --- setup ---------------------------------------------------------------------------------------

    def prepare(self, apps: list[App]) -> None:
        """Check out every values file and chart of APPS (one batched blob fetch) and list the proposal branches."""
        ws = self.workspace
        # Values files and chart pins: a release is image + model + chart, and a proposal moves all three.
        paths = {path for app in apps for env in self.policy.environments
                 for path in self.policy.env_paths(app, env.name)}
        root = ws.path.resolve()
        for app in apps:
            if app.chart.path:
                chart = (self.policy.root / app.chart.path).resolve()
                if chart.is_relative_to(root):
                    paths.add(chart.relative_to(root).as_posix())
        ws.include(sorted(paths))
        self.main_sha = ws.head()
        self.remote = branch_remote(ws)
        try:
            listed = ws.g.ls_remote(self.remote, "refs/heads/envbot/promote-*")
        except git.GitCommandError as exc:
            raise Unreachable(f"cannot list the proposal branches of {ws.target}: {exc.stderr or exc}") from exc
        for line in listed.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/"):
                self.remote_branches[ref[len("refs/heads/"):]] = sha
        if self.remote_branches:
            # One fetch for every open proposal (their tips only), instead of one per proposal.
            with contextlib.suppress(git.GitCommandError):
                ws.g.fetch("--quiet", "--depth=1", self.remote,
                           "+refs/heads/envbot/promote-*:refs/envbot/promote-*")

    @property
    def forge(self) -> Any:
        """The pull-request client (GitHub, Azure Repos), created on first use; None for plain git."""
        if not self._forge_checked:
            self._forge = forge_client(self.workspace.forge_url)
            self._forge_checked = True
        return self._forge

    def _pin(self, path: str, text: str, chart_path: str) -> ReleasePin:
        # Each upstream is also an environment: its files are read once for both comparisons.
        if path not in self._pins:
            pin = read_pin_fast(text, path)
            chart_text = self._read(chart_path)
            if chart_text is not None:
                pin = replace(pin, chart=read_chart_pin_text(chart_text, chart_path))
            self._pins[path] = pin
        return self._pins[path]

    def _strict(self, text: str, path: str, chart_path: str) -> ReleasePin:
        return release_from_texts(text, self._read(chart_path), path, chart_path)

    def _read(self, path: str) -> str | None:
        file = self.workspace.path / path
        return file.read_text() if file.is_file() else None

    # --- one app and environment -----------------------------------------------------------------

    def reconcile(self, app: App, env: Environment) -> Proposal:
        upstream = self.policy.upstream(env.name)
        assert upstream is not None
        proposal = Proposal(app.name, env.name, upstream.name, branch=proposal_branch(app, env))
        try:
            self._reconcile(app, upstream, env, proposal)
        except EnvbotError as exc:
            proposal.action, proposal.reason, proposal.kind = "error", str(exc), exc.kind
            self._reset()
        return proposal

    def _reset(self) -> None:
        with contextlib.suppress(git.GitCommandError):
            self.workspace.g.reset("--quiet", "--hard", self.main_sha)

    def _reconcile(self, app: App, src: Environment, dst: Environment, proposal: Proposal) -> None:
        src_path, dst_path = self.policy.repo_path(app, src.name), self.policy.repo_path(app, dst.name)
        src_chart, dst_chart = self.policy.chart_pin_repo_path(app, src.name), self.policy.chart_pin_repo_path(
            app, dst.name)
        src_text, dst_text = self._read(src_path), self._read(dst_path)
        if src_text is None or dst_text is None:
            missing = src_path if src_text is None else dst_path
            raise EnvbotError(f"{missing}: no values file for app {app.name}")
        # The fast reader decides "nothing to do" for hundreds of files; a proposal re-reads strictly.
        src_pin, dst_pin = self._pin(src_path, src_text, src_chart), self._pin(dst_path, dst_text, dst_chart)
        branch = proposal.branch
        assert branch is not None
        branch_sha = self.remote_branches.get(branch)
        if not src_pin.image.digest:
            proposal.reason = f"{src.name} pins no image digest"
            proposal.branch = None
            return
        if same_release(src_pin, dst_pin):
            proposal.reason = f"{dst.name} runs {src.name}'s release"
            if branch_sha is None:
                proposal.branch = None
                return
            self._close(proposal, branch, branch_sha)
            return
        src_pin = self._strict(src_text, src_path, src_chart)
        dst_pin = self._strict(dst_text, dst_path, dst_chart)
        if same_release(src_pin, dst_pin):
            raise EnvbotError(f"{src_path}, {dst_path}: read differently by the fast and the strict YAML reader")
        proposal.release = src_pin
        wanted = edit_pin_text(dst_text, src_pin, dst_path)
        dst_chart_text = self._read(dst_chart)
        wanted_chart = dst_chart_text
        if src_pin.chart.repository:
            if dst_chart_text is None:
                raise EnvbotError(f"{dst_chart}: {dst.name} has no chart pin file to pin {src_pin.chart.ref} in")
            wanted_chart = edit_chart_pin_text(dst_chart_text, src_pin.chart, dst_chart)
        # The files the proposal writes, and what main has now: compared with the branch, merged as one.
        files = {dst_path: wanted} | ({dst_chart: wanted_chart} if wanted_chart is not None else {})
        base = {dst_path: dst_text} | ({dst_chart: dst_chart_text} if wanted_chart is not None else {})
        origin = pin_origin(self.workspace, self.policy.env_paths(app, src.name), src_pin)
        if origin is None:
            raise EnvbotError(f"{src_path}: not in the history of {self.workspace.branch}")
        landed = datetime.fromtimestamp(origin.committed, UTC)
        gates = gate.promotion_gates(app, src, dst, origin.sha, landed, self.now)
        gates += self._artifact_gates(app, dst, src_pin, wanted, dst_path)
        models = model_report(dst.model_gates, app.evaluation, dst_pin.model if dst_pin.model.uri else None,
                              src_pin.model)
        if models.changed:
            gates.append(gate.Gate(gate.MODEL, gate.FAILURE if models.failures else gate.SUCCESS,
                                   "; ".join(models.failures) or f"{dst.name}'s model gates pass"))
        proposal.gates = gates

        branch_text = self._branch_file(branch, branch_sha, dst_path) if branch_sha else None
        pull = self._find_pull(branch) if branch_sha and self.forge is not None else None
        on_branch = branch_text == wanted and all(
            self._branch_file(branch, branch_sha, path) == text for path, text in files.items() if path != dst_path
        ) if branch_sha else False
        current = on_branch and (self.forge is None or pull is not None)
        if current:
            proposal.commit = branch_sha
            proposal.reason = "the proposal is up to date"
        else:
            if branch_text is not None:
                try:
                    old = read_pin_text(branch_text, f"{dst_path}@{branch}")
                    if not same_release(old, src_pin):
                        proposal.superseded = old
                except EnvbotError:
                    pass
            # A chart that does not render still gets its proposal (without the rendered diff): the
            # failed chart status on it says why it cannot merge.
            chart_ok = all(g.ok for g in gates if g.name == gate.CHART)
            self._write_proposal(app, src, dst, proposal, src_pin, origin.sha, render=chart_ok,
                                 model=model_section(models))
            if proposal.commit is None and not self.dry_run:
                # A concurrent writer held the branch; the retry rebuilt it on a newer main that already
                # has the release (another run merged the proposal meanwhile): nothing left to propose.
                proposal.action = "unchanged"
                proposal.reason = f"{self.workspace.branch} already has {src.name}'s release (merged meanwhile)"
                return
            proposal.action = "updated" if branch_sha else "opened"
            if not self.dry_run:
                pull = self._find_pull(branch) if self.forge is not None else None
        if pull is not None:
            proposal.pull_request = self.forge.pull_url(pull)
        green = all(g.ok for g in gates)
        automatic = dst.auto_merge or dst.landing == "push"
        if self.dry_run:
            if automatic and green:
                proposal.action, proposal.reason = "merged", "every gate is green (dry run: not merged)"
            elif current and not green:
                proposal.action, proposal.reason = "blocked", "; ".join(gate.failures(gates))
            return
        if pull is not None and proposal.commit:
            proposal.statuses_posted = self.forge.publish_statuses(pull, proposal.commit, [
                (f"{STATUS_GENRE}/{g.name}", g.state, g.description) for g in gates])
        if automatic and green:
            self._merge(dst, proposal, pull, base, files)
        elif current and not green:
            proposal.action = "blocked"
            proposal.reason = "; ".join(gate.failures(gates))

    def _artifact_gates(self, app: App, dst: Environment, pin: ReleasePin, wanted: str, path: str) -> list[gate.Gate]:
        def image_exists() -> None:
            ref = parse_image_ref(pin.image.ref)
            self.registry.digest(ImageRef(ref.registry, ref.repository, digest=pin.image.digest))

        def artifacts_exist() -> None:
            image_exists()
            if pin.model.uri:
                check_model(pin.model)

        def chart_renders() -> None:
            # With the chart the proposal pins (the upstream's), as Argo CD or Flux would deploy it.
            render(self.policy, app, dst.namespace, wanted, f"{path}@proposal",
                   pin.chart if pin.chart.repository else None)

        checks: list[tuple[str, Callable[[], None], str]] = [
            (gate.ARTIFACTS, artifacts_exist,
             f"image {short_digest(pin.image.digest)} in the registry"
             + (f", model sha256 {short_digest(pin.model.sha256)} in the store" if pin.model.uri else "")),
            (gate.CHART, chart_renders, f"the chart renders {dst.name}'s proposed values"),
        ]
        return [gate.check_gate(name, check, ok) for name, check, ok in checks]

    def _branch_file(self, branch: str, sha: str, path: str) -> str | None:
        ws = self.workspace
        if ws.show(sha, path) is None:
            try:
                ws.g.fetch("--quiet", "--depth=1", self.remote, f"+refs/heads/{branch}:refs/{branch}")
            except git.GitCommandError as exc:
                raise Unreachable(f"cannot fetch the proposal branch {branch}: {exc.stderr or exc}") from exc
        return ws.show(sha, path)

    def _find_pull(self, branch: str) -> dict[str, Any] | None:
        try:
            return self.forge.find_open(branch, self.workspace.branch)
        except ForgeError as exc:
            raise Unreachable(f"pull request for {branch}: {exc}") from exc

    def _write_proposal(self, app: App, src: Environment, dst: Environment, proposal: Proposal,
                        pin: ReleasePin, origin_sha: str, render: bool, model: str) -> None:
        trailers = [("Envbot-From", f"{src.name}@{origin_sha}"), ("Envbot-Proposed-By", "envbot propose")]
        if proposal.superseded is not None:
            trailers.append(("Envbot-Supersedes", release_label(proposal.superseded)))
        # A direct-push environment is still proposed through its branch; propose merges it when green.
        landing_env = replace(dst, landing="pull-request") if dst.landing == "push" else dst
        promotion = Promotion(
            workspace=self.workspace, policy=self.policy, app=app, env=landing_env, action="promote",
            identity=self.identity, dry_run=self.dry_run, pin=pin, trailers=tuple(trailers), render=render,
            model_section=model, reads=tuple(self.policy.env_paths(app, src.name)),
            subject=f"envbot: promote {app.name} {src.name} -> {dst.name} ({pin.image.tag or pin.image.digest[:19]})",
        )
        try:
            _, outcome = run_steps(promotion, pin_release.steps(self.registry, self.source_repo))
        finally:
            self._reset()
        proposal.commit = outcome.commit
        if outcome.commit:
            self.remote_branches[proposal.branch or ""] = outcome.commit

    def _close(self, proposal: Proposal, branch: str, branch_sha: str) -> None:
        proposal.action = "closed"
        if self.dry_run:
            return
        if self.forge is not None:
            pull = self._find_pull(branch)
            if pull is not None:
                proposal.pull_request = self.forge.pull_url(pull)
                try:
                    self.forge.close(pull)
                except ForgeError as exc:
                    raise Unreachable(f"cannot close the pull request of {branch}: {exc}") from exc
        self._delete_branch(branch, branch_sha)

    def _delete_branch(self, branch: str, sha: str) -> None:
        # With a lease: a branch another writer just moved is left to the next run.
        with contextlib.suppress(git.GitCommandError):
            self.workspace.g.push("--quiet", "--porcelain", f"--force-with-lease=refs/heads/{branch}:{sha}",
                                  self.remote, f":refs/heads/{branch}")
            self.remote_branches.pop(branch, None)

    # --- auto-merge ----------------------------------------------------------------------------------

    def _merge(self, dst: Environment, proposal: Proposal, pull: dict[str, Any] | None,
               base: dict[str, str | None], files: dict[str, str]) -> None:
        assert proposal.commit and proposal.branch
        message = self.workspace.g.log("-1", "--format=%B", proposal.commit)
        if pull is not None:
            try:
                self.forge.complete(pull, proposal.commit, dst.merge_strategy, message)
            except ForgeError as exc:
                raise Unreachable(f"cannot complete the pull request of {proposal.branch}: {exc}") from exc
            proposal.action, proposal.reason = "merged", "every gate is green; the pull request was completed"
            # GitHub keeps a merged pull request's branch unless the repository deletes head branches.
            self._delete_branch(proposal.branch, proposal.commit)
            return
        if self.forge is not None:
            raise Conflict(f"no open pull request for {proposal.branch} to complete")
        try:
            proposal.merged_commit = self._merge_on_plain_git(dst, proposal, message, base, files)
        except ProposalStale as exc:
            proposal.action, proposal.reason = "blocked", str(exc)
            return
        self._delete_branch(proposal.branch, proposal.commit)
        if proposal.merged_commit is None:
            proposal.reason = f"{self.workspace.branch} already has the proposal (merged meanwhile)"
            return
        proposal.action, proposal.reason = "merged", f"every gate is green; merged into {self.workspace.branch}"

    def _merge_on_plain_git(self, dst: Environment, proposal: Proposal, message: str,
                            base: dict[str, str | None], files: dict[str, str]) -> str | None:
        """Merge the proposal into main: main's tree with the proposal's files (values, chart pin), as a merge commit
        (noFastForward, parents main and the proposal) or a squash (parent main), keeping its trailers.

        BASE holds the files the proposal was built on; if main's copies differ now, the next run rebuilds it.
        Returns the merge commit, or None when main already has the change (a concurrent merge).
        """
        ws = self.workspace
        assert proposal.commit is not None
        env = {"GIT_AUTHOR_NAME": self.identity.name, "GIT_AUTHOR_EMAIL": self.identity.email,
               "GIT_COMMITTER_NAME": self.identity.name, "GIT_COMMITTER_EMAIL": self.identity.email}
        subject, _, rest = message.partition("\n")
        if dst.merge_strategy == "noFastForward":
            message = f"Merge {proposal.branch}: {subject}\n{rest}"
        for _attempt in range(MERGE_ATTEMPTS):
            current = {path: self._read(path) for path in files}
            if current == files:
                return None      # another run (or a reviewer) merged the same change meanwhile
            moved = [path for path in files if current[path] != base.get(path)]
            if moved:
                # main moved under the proposal (someone changed these files): the next run rebuilds it.
                raise ProposalStale(f"{', '.join(moved)} changed on {ws.branch} while envbot worked; the next run "
                                    "rebuilds the proposal")
            for path, text in files.items():
                (ws.path / path).write_text(text)
            runner = ws.g
            runner.update_environment(**env)
            runner.add("--", *files)
            tree = runner.write_tree()
            parents = ["-p", self.main_sha] + (["-p", proposal.commit] if dst.merge_strategy == "noFastForward" else [])
            message_file = ws.path / ".git" / "ENVBOT_MERGE_MSG"
            message_file.write_text(message)
            merged = runner.commit_tree(tree, *parents, "-F", str(message_file))
            runner.reset("--quiet", "--hard", merged)
            try:
                ws.push(f"refs/heads/{ws.branch}")
            except PushRejected:
                self.main_sha = ws.reset_to_remote()
                ws.include(list(files))
                continue
            self.main_sha = merged
            return merged
        raise Conflict(f"{ws.branch} kept moving; {proposal.branch} not merged (the next run retries)")


def reconcile_all(proposer: Proposer, apps: list[App], on_result: Callable[[Proposal], None] | None = None
                  ) -> list[Proposal]:
    proposer.prepare(apps)
    results = []
    for app in apps:
        for env in proposer.policy.environments:
            if proposer.policy.upstream(env.name) is None:
                continue
            proposal = proposer.reconcile(app, env)
            results.append(proposal)
            if on_result is not None:
                on_result(proposal)
    return results


def describe_gates(gates: list[gate.Gate]) -> str:
    return ", ".join(f"{g.name} {g.state}" + (f" until {g.passes_at.strftime('%Y-%m-%d %H:%M UTC')}"
                                              if g.passes_at and not g.ok else "") for g in gates)

