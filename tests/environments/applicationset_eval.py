"""Evaluates environments/argocd/applicationset.yaml the way the ApplicationSet controller would.

Only what that ApplicationSet uses is implemented, and anything else is refused loudly so a
change to the manifest cannot silently escape the tests:
- the git files generator: one parameter set per file matching the glob (`*` stays inside one
  path segment), made of the file's YAML content plus path.path, path.basename, path.filename,
  path.basenameNormalized, path.filenameNormalized and path.segments. With goTemplate the content
  keeps its nesting (`{{ .spec.ref.digest }}` walks maps) and the generator's `path` map replaces a
  top-level `path` key of the file; only fasttemplate flattens keys to "spec.ref.digest" strings
  (argo-cd applicationset/generators/git.go, generateParamsFromGitFile);
- goTemplate with field references only (`{{ .a.b }}`, optional `-` trim markers), applied to
  every string of the template; goTemplateOptions missingkey=error makes an unknown key an error.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_FIELD = re.compile(r"^(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class TemplateError(Exception):
    pass


def _normalize(name: str) -> str:
    # Argo CD: characters invalid in a DNS-1123 name become "-".
    return re.sub(r"[^a-z0-9.-]", "-", name.lower())


def git_files_params(repo_root: Path, pattern: str) -> list[dict[str, Any]]:
    """Parameter sets of a git files generator over the checked-out repository at repo_root."""
    params = []
    for file in sorted(repo_root.glob(pattern)):
        relative = PurePosixPath(file.relative_to(repo_root).as_posix())
        content = YAML(typ="safe").load(file.read_text()) or {}
        if not isinstance(content, dict):
            raise TemplateError(f"{relative}: the files generator needs a mapping, got {type(content).__name__}")
        directory = relative.parent
        params.append({
            **content,
            "path": {
                "path": str(directory),
                "basename": directory.name,
                "filename": relative.name,
                "basenameNormalized": _normalize(directory.name),
                "filenameNormalized": _normalize(relative.name),
                "segments": list(directory.parts),
            },
        })
    return params


def render_string(text: str, params: dict[str, Any], missingkey_error: bool) -> str:
    def substitute(match: re.Match[str]) -> str:
        expression = match.group(2)
        if not _FIELD.match(expression):
            raise TemplateError(f"unsupported template action {{{{ {expression} }}}} in {text!r}: "
                                "extend tests/environments/applicationset_eval.py")
        value: Any = params
        for key in expression.split(".")[1:]:
            if not isinstance(value, dict) or key not in value:
                if missingkey_error:
                    raise TemplateError(f"map has no entry for key {key!r} in {{{{ {expression} }}}}")
                return "<no value>"
            value = value[key]
        return str(value)

    rendered = _ACTION.sub(substitute, text)
    return rendered


def render(node: Any, params: dict[str, Any], missingkey_error: bool) -> Any:
    if isinstance(node, str):
        return render_string(node, params, missingkey_error)
    if isinstance(node, list):
        return [render(item, params, missingkey_error) for item in node]
    if isinstance(node, dict):
        return {key: render(value, params, missingkey_error) for key, value in node.items()}
    return node


def generate_applications(appset: dict[str, Any], repo_root: Path) -> list[dict[str, Any]]:
    """The Applications the ApplicationSet makes, given the environments repo checked out at repo_root."""
    spec = appset["spec"]
    if not spec.get("goTemplate"):
        raise TemplateError("only goTemplate: true is implemented")
    missingkey_error = "missingkey=error" in (spec.get("goTemplateOptions") or [])
    applications = []
    for generator in spec["generators"]:
        if set(generator) != {"git"} or "files" not in generator["git"]:
            raise TemplateError(f"only the git files generator is implemented, got {sorted(generator)}")
        for entry in generator["git"]["files"]:
            if entry.get("exclude"):
                raise TemplateError("exclude patterns are not implemented")
            for params in git_files_params(repo_root, entry["path"]):
                template = render(spec["template"], params, missingkey_error)
                applications.append({
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Application",
                    "metadata": {**template["metadata"], "namespace": appset["metadata"]["namespace"]},
                    "spec": template["spec"],
                })
    return applications
