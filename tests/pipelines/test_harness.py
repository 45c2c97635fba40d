"""The harness's agent semantics, each on a small pipeline: checkout layout, job token scope, variables,
conditions and outputs, templates, task inputs. The rules come from Microsoft's documentation (cited in
tests/pipelines/harness/runner.py and tasks.py)."""

from __future__ import annotations

import textwrap

import pytest

from tests.pipelines.harness.expressions import evaluate_text
from tests.pipelines.harness.org import APP_REPOSITORY, Project, project
from tests.pipelines.harness.runner import PipelineError, Trigger
from tests.pipelines.harness.tasks import TASKS, ServiceConnection, TaskInputError
from tests.pipelines.harness.templates import TemplateError, expand_pipeline

RESOURCES = """\
resources:
  repositories:
    - repository: environments
      type: git
      name: ai-app-environments
"""


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory):
    with project(tmp_path_factory.mktemp("org"), "separate",
                 service_connections={"conn": ServiceConnection("azurerm", {"FROM_CONNECTION": "yes"})}) as proj:
        yield proj


def pipeline(proj: Project, name: str, *parts: str) -> str:
    path = proj.root / "src" / APP_REPOSITORY / "harness-tests" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    # Parts written inside a test function (8 spaces deep) are dedented; others are taken as they are.
    path.write_text("".join(textwrap.dedent(part) if part.startswith(" " * 8) else part for part in parts))
    return f"harness-tests/{name}"


def test_one_checkout_is_the_sources_directory_even_with_a_path(separate: Project) -> None:
    name = pipeline(separate, "single.yml", """\
        steps:
          - checkout: self
            path: s/app
          - bash: |
              set -euo pipefail
              test "$BUILD_SOURCESDIRECTORY" = "$AGENT_BUILDDIRECTORY/s/app"
              test "$PWD" = "$BUILD_SOURCESDIRECTORY"
              test -f pyproject.toml
              ! test -d app/app || { echo "app/ is the repository's own app package only"; exit 1; }
    """)
    result = separate.run(name).job("__default", "__default")
    assert result.result == "Succeeded", result.text


def test_no_checkout_step_means_self_in_s(separate: Project) -> None:
    name = pipeline(separate, "implicit.yml", """\
        steps:
          - bash: test "$PWD" = "$AGENT_BUILDDIRECTORY/s" && test -f azure-pipelines.yml
    """)
    assert separate.run(name).job("__default", "__default").result == "Succeeded"


def test_several_checkouts_go_to_s_slash_repository_name(separate: Project) -> None:
    name = pipeline(separate, "multi.yml", RESOURCES, """\
        steps:
          - checkout: self
          - checkout: environments
          - bash: |
              set -euo pipefail
              test "$BUILD_SOURCESDIRECTORY" = "$AGENT_BUILDDIRECTORY/s"
              test -f ai-app/azure-pipelines.yml
              test -f ai-app-environments/environments/promotion.yaml
    """)
    result = separate.run(name).job("__default", "__default")
    assert result.result == "Succeeded", result.text


def test_a_checkout_path_escaping_the_build_directory_is_refused(separate: Project) -> None:
    name = pipeline(separate, "escape.yml", """\
        steps:
          - checkout: self
            path: ../elsewhere
    """)
    with pytest.raises(PipelineError, match=r"relative to Agent\.BuildDirectory"):
        separate.run(name)


CLONE = """\
          - bash: |
              set -euo pipefail
              git -c "http.extraheader=AUTHORIZATION: bearer $TOKEN" clone -q \\
                "$(System.CollectionUri)${SYSTEM_TEAMPROJECT// /%20}/_git/ai-app-environments" env
            env:
              TOKEN: $(System.AccessToken)
"""


def test_the_job_token_reaches_only_referenced_repositories(separate: Project) -> None:
    name = pipeline(separate, "unreferenced.yml", RESOURCES, "steps:\n  - checkout: self\n",
                    "\n".join(line[8:] for line in CLONE.splitlines()) + "\n")
    result = separate.run(name).job("__default", "__default")
    assert result.result == "Failed" and "TF401019" in result.text


def test_uses_repositories_extends_the_job_token(separate: Project) -> None:
    name = pipeline(separate, "uses.yml", RESOURCES, """\
jobs:
  - job: Clone
    uses:
      repositories:
        - environments
    steps:
      - checkout: self
""", "\n".join(line[4:] for line in CLONE.splitlines()) + "\n")
    result = separate.run(name).job("__default", "Clone")
    assert result.result == "Succeeded", result.text


def test_uses_of_an_undeclared_repository_fails_the_run(separate: Project) -> None:
    name = pipeline(separate, "undeclared.yml", """\
jobs:
  - job: Clone
    uses:
      repositories:
        - environments
    steps:
      - bash: "true"
""")
    with pytest.raises(PipelineError, match=r"not declared in resources\.repositories"):
        separate.run(name)


def test_secrets_reach_scripts_only_through_env(separate: Project) -> None:
    name = pipeline(separate, "secret.yml", """\
        steps:
          - bash: test -z "${SYSTEM_ACCESSTOKEN:-}"
          - bash: test -n "$SYSTEM_ACCESSTOKEN"
            env:
              SYSTEM_ACCESSTOKEN: $(System.AccessToken)
    """)
    result = separate.run(name).job("__default", "__default")
    assert result.result == "Succeeded", result.text


def test_outputs_conditions_and_working_directories_across_steps_jobs_and_stages(separate: Project) -> None:
    name = pipeline(separate, "outputs.yml", """\
variables:
  greeting: hello
stages:
  - stage: A
    jobs:
      - job: Produce
        steps:
          - bash: |
              echo "##vso[task.setvariable variable=word;isOutput=true]$GREETING-world"
              echo "##vso[task.setvariable variable=local]in-job"
            name: make
          - bash: |
              test "$(make.word)" = hello-world && test "$LOCAL" = in-job
              test "$PWD" = "$AGENT_BUILDDIRECTORY/s/app"
            workingDirectory: app
      - job: Consume
        dependsOn: Produce
        condition: and(succeeded(), eq(dependencies.Produce.outputs['make.word'], 'HELLO-WORLD'))
        variables:
          word: $[ dependencies.Produce.outputs['make.word'] ]
        steps:
          - bash: test "$WORD" = hello-world
      - job: Never
        dependsOn: Produce
        condition: ne(dependencies.Produce.outputs['make.word'], 'hello-world')
        steps:
          - bash: "false"
  - stage: B
    condition: and(succeeded(), eq(dependencies.A.outputs['Produce.make.word'], 'hello-world'))
    jobs:
      - job: Later
        variables:
          word: $[ stageDependencies.A.Produce.outputs['make.word'] ]
        steps:
          - bash: test "$WORD" = hello-world
          - bash: "false"
            displayName: fails
          - bash: echo skipped
            displayName: after a failure
          - bash: echo always
            displayName: always
            condition: always()
  - stage: C
    jobs:
      - job: AfterAFailure
        steps:
          - bash: "true"
""")
    run = separate.run(name)
    assert run.job("A", "Produce").result == "Succeeded", run.job("A", "Produce").text
    assert run.job("A", "Consume").result == "Succeeded", run.job("A", "Consume").text
    assert run.job("A", "Never").result == "Skipped"
    later = run.job("B", "Later")
    assert later.result == "Failed" and dict(later.steps)["after a failure"] == "Skipped"
    assert dict(later.steps)["always"] == "Succeeded"
    assert run.stages == {"A": "Succeeded", "B": "Failed", "C": "Skipped"}


def test_templates_parameters_and_directives(separate: Project) -> None:
    pipeline(separate, "steps-template.yml", """\
        parameters:
          - name: names
            type: object
          - name: loud
            type: boolean
            default: false
        steps:
          - ${{ each name in parameters.names }}:
              - bash: echo "hi ${{ name }}"
                displayName: greet ${{ name }}
          - ${{ if parameters.loud }}:
              - bash: echo LOUD
                displayName: loud
          - ${{ else }}:
              - bash: echo quiet
                displayName: quiet
    """)
    name = pipeline(separate, "uses-template.yml", """\
        parameters:
          - name: loud
            type: boolean
            default: false
        steps:
          - template: steps-template.yml
            parameters:
              names: [ann, bob]
              loud: ${{ parameters.loud }}
    """)
    quiet = separate.run(name).job("__default", "__default")
    assert [s for s, _ in quiet.steps][1:] == ["greet ann", "greet bob", "quiet"]
    loud = separate.run(name, parameters={"loud": "true"}).job("__default", "__default")
    assert [s for s, _ in loud.steps][-1] == "loud"


def test_a_template_refuses_undeclared_and_missing_parameters(separate: Project) -> None:
    pipeline(separate, "needs.yml", "parameters:\n  - name: required\n    type: string\nsteps:\n  - bash: 'true'\n")
    wrong = pipeline(separate, "wrong.yml", "steps:\n  - template: needs.yml\n    parameters:\n      other: x\n")
    missing = pipeline(separate, "missing.yml", "steps:\n  - template: needs.yml\n")
    with pytest.raises(TemplateError, match="unexpected parameter"):
        expand_pipeline(separate.root / "src" / APP_REPOSITORY / wrong)
    with pytest.raises(TemplateError, match="required parameter 'required'"):
        expand_pipeline(separate.root / "src" / APP_REPOSITORY / missing)


def test_azure_cli_task_checks_inputs_and_uses_the_service_connection(separate: Project) -> None:
    name = pipeline(separate, "azcli.yml", """\
        steps:
          - task: AzureCLI@2
            name: az
            inputs:
              azureSubscription: conn
              scriptType: bash
              scriptLocation: inlineScript
              inlineScript: |
                test "$FROM_CONNECTION" = yes
                echo "##vso[task.setvariable variable=ok;isOutput=true]yes"
    """)
    result = separate.run(name).job("__default", "__default")
    assert result.result == "Succeeded" and result.outputs == {"az.ok": "yes"}, result.text
    unknown = pipeline(separate, "azcli-unknown.yml", """\
        steps:
          - task: AzureCLI@2
            inputs:
              azureSubscription: not-a-connection
              scriptType: bash
              scriptLocation: inlineScript
              inlineScript: "true"
    """)
    assert "not authorized to use service connection" in separate.run(unknown).job("__default", "__default").error


@pytest.mark.parametrize(("task", "inputs", "message"), [
    ("AzureCLI@2", {"azureSubscription": "c", "scriptType": "bash"}, "'scriptPath' is required"),
    ("AzureCLI@2", {"azureSubscription": "c", "scriptType": "zsh", "scriptLocation": "inlineScript",
                    "inlineScript": "x"}, "allowed: ps, pscore, batch, bash"),
    ("AzureCLI@2", {"azureSubscription": "c", "scriptType": "bash", "script": "x"}, "unknown input 'script'"),
    ("Cache@2", {"key": "k"}, "'path' is required"),
    ("Docker@2", {"command": "deploy"}, "allowed: buildAndPush"),
])
def test_task_inputs_are_checked_against_the_documented_inputs(task: str, inputs: dict, message: str) -> None:
    with pytest.raises(TaskInputError, match=message):
        TASKS[task.lower()].resolve(inputs)


def test_cache_key_files_must_exist(separate: Project) -> None:
    name = pipeline(separate, "cache.yml", """\
        steps:
          - task: Cache@2
            inputs:
              key: 'pip | "Linux" | app/pyproject.toml'
              path: $(Pipeline.Workspace)/.pip-cache
    """)
    result = separate.run(name).job("__default", "__default")
    assert result.result == "Failed" and "app/pyproject.toml" in result.error


@pytest.mark.parametrize(("expression", "expected"), [
    ("eq('False', false)", True),
    ("eq(variables['modelOnly'], 'false')", True),
    ("and(eq(1, '1'), ne('a', 'B'))", True),
    ("coalesce('', variables.missing, 'x')", "x"),
    ("iif(eq(variables.modelOnly, 'False'), 'build', 'skip')", "build"),
    ("or(startsWith('refs/heads/main', 'refs/heads/'), false)", True),
    ("in('b', 'a', 'B')", True),
])
def test_expression_semantics(expression: str, expected: object) -> None:
    assert evaluate_text(expression, {"variables": {"modelOnly": "False"}}) == expected


def test_pull_request_runs_set_the_pull_request_variables(separate: Project) -> None:
    name = pipeline(separate, "pr.yml", """\
        steps:
          - bash: test "$BUILD_REASON" = PullRequest && test "$SYSTEM_PULLREQUEST_TARGETBRANCH" = refs/heads/main
    """)
    trigger = Trigger(reason="PullRequest", source_branch="refs/heads/main", target_branch="refs/heads/main",
                      pull_request_id="7")
    assert separate.run(name, trigger=trigger).job("__default", "__default").result == "Succeeded"


def test_cache_saves_after_a_successful_job_and_restore_keys_match_by_prefix(separate: Project) -> None:
    name = pipeline(separate, "cache-restore.yml", """\
        jobs:
          - job: Fill
            steps:
              - task: Cache@2
                inputs:
                  key: 'harness | "one" | pyproject.toml'
                  path: $(Pipeline.Workspace)/cached
              - bash: mkdir -p "$(Pipeline.Workspace)/cached" && echo filled > "$(Pipeline.Workspace)/cached/f"
          - job: Reuse
            dependsOn: Fill
            steps:
              - task: Cache@2
                inputs:
                  key: 'harness | "two" | pyproject.toml'
                  restoreKeys: |
                    harness | "none"
                    harness
                  path: $(Pipeline.Workspace)/cached
                  cacheHitVar: HIT
              - bash: test "$(cat "$(Pipeline.Workspace)/cached/f")" = filled && test "$HIT" = inexact
    """)
    run = separate.run(name)
    assert run.job("__default", "Reuse").result == "Succeeded", run.job("__default", "Reuse").text


def test_a_jobs_virtualenvs_are_discarded_when_it_ends_and_the_rest_is_kept(separate: Project) -> None:
    """A hosted agent's VM goes away with the job; the harness keeps what tests read, not the virtualenvs."""
    name = pipeline(separate, "venv.yml", """\
        steps:
          - bash: |
              set -euo pipefail
              python3 -m venv --without-pip .venv
              python3 -m venv --without-pip tools/nested-env
              echo built > built.txt
    """)
    result = separate.run(name).job("__default", "__default")
    assert result.result == "Succeeded", result.text
    sources = result.workspace / "s"
    assert (sources / "built.txt").read_text() == "built\n"
    assert not (sources / ".venv").exists() and not (sources / "tools" / "nested-env").exists()
    assert (sources / "tools").is_dir() and (sources / "azure-pipelines.yml").is_file()
