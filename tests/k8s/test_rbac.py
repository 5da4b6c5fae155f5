"""Least privilege, checked both ways: every API call the operator makes is allowed by deploy/'s
ClusterRole and Role, and every verb those grant is used by some call in the code."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from parley_operator import handlers
from parley_operator.settings import OperatorSettings
from tests.k8s import rbac, tools

OPERATOR_SRC = tools.ROOT / "operator" / "parley_operator"

# Each API path template in the operator's code ("{}" where the code interpolates) → the calls it
# makes through it. A new path in the code fails test_every_api_path_in_the_code_is_accounted_for
# until it is listed here, in rbac.OPERATOR_CALLS and in the RBAC of deploy/.
API_PATHS: dict[str, set[tuple[str, str, str]]] = {
    "/api/v1/namespaces/{}/secrets/{}": {("get", "", "secrets"), ("patch", "", "secrets")},
    "/api/v1/namespaces/{}/secrets": {("create", "", "secrets")},
    "/api/v1/namespaces/{}/pods/{}": {("get", "", "pods")},
    "/api/v1/namespaces/{}/events": {("create", "", "events")},
    "/apis/dapr.io/v1alpha1/namespaces/{}/configurations/{}": {("get", "dapr.io", "configurations")},
    "/apis/authentication.k8s.io/v1/tokenreviews": {("create", "authentication.k8s.io", "tokenreviews")},
    "/apis/admissionregistration.k8s.io/v1/{}/{}": {
        ("get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("get", "admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    },
}


def _template(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def api_paths_in_code() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(OPERATOR_SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        inside = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if id(node) in inside:
                continue
            text = _template(node)
            if text and re.match(r"/apis?/", text):
                found.setdefault(text, []).append(f"{path.relative_to(tools.ROOT)}:{getattr(node, 'lineno', '?')}")
    return found


def kopf_watched() -> set[tuple[str, str]]:
    """(group, plural) of every resource the operator's kopf registry lists and watches."""
    services = handlers.Services(settings=OperatorSettings(), login=None, metrics=None, events=None,  # type: ignore[arg-type]
                                 certs=None, hub=None)
    registry = handlers.build_registry(services)
    watched: set[tuple[str, str]] = set()
    for part in (registry._indexing, registry._watching, registry._spawning, registry._changing):
        for handler in part.get_all_handlers():
            selector = handler.selector
            name = selector and (selector.plural or selector.any_name)
            assert selector is not None and name, f"kopf handler {handler.id} has no exact resource"
            watched.add((selector.group or "", name))
    return watched


@pytest.fixture(scope="module")
def objects() -> tuple[dict[str, Any], ...]:
    return tools.kustomize(str(tools.BASE))


def test_every_api_path_in_the_code_is_accounted_for() -> None:
    found = api_paths_in_code()
    assert found, "the scan found no API paths: has kube.py's calling convention changed?"
    unknown = {p: where for p, where in found.items() if p not in API_PATHS}
    assert not unknown, ("the operator calls API paths that are not listed in tests/k8s/test_rbac.py "
                         f"API_PATHS (and need RBAC in deploy/): {unknown}")
    declared = {(c.verb, c.group, c.resource) for c in rbac.OPERATOR_CALLS}
    for path, calls in API_PATHS.items():
        assert calls <= declared, f"{path}: {calls - declared} missing from rbac.OPERATOR_CALLS"


def test_every_resource_kopf_watches_is_listed_as_a_call() -> None:
    declared = {(c.verb, c.group, c.resource) for c in rbac.OPERATOR_CALLS}
    watched = kopf_watched()
    assert ("dapr.io", "components") in watched and ("", "pods") in watched
    for group, plural in watched:
        for verb in ("list", "watch"):
            assert (verb, group, plural) in declared, f"kopf {verb}es {group or 'core'}/{plural}: add it"


@pytest.mark.parametrize("call", rbac.OPERATOR_CALLS, ids=str)
def test_each_operator_call_is_allowed(objects: tuple[dict[str, Any], ...], call: rbac.Call) -> None:
    assert rbac.allowed(objects, call), f"deploy/base RBAC does not allow: {call}"


@pytest.mark.parametrize("call", rbac.FORBIDDEN_CALLS, ids=str)
def test_what_the_operator_must_not_do_is_denied(objects: tuple[dict[str, Any], ...], call: rbac.Call) -> None:
    assert not rbac.allowed(objects, call), f"deploy/base RBAC allows more than needed: {call}"


def test_every_granted_verb_is_used_by_a_call(objects: tuple[dict[str, Any], ...]) -> None:
    used = {(c.group, c.resource, c.verb) for c in rbac.OPERATOR_CALLS}
    unused = [g for g in rbac.rule_grants(objects) if (g[1], g[2], g[3]) not in used]
    assert not unused, f"RBAC grants verbs no call needs (remove them or justify them with a call): {unused}"


def test_helm_chart_grants_exactly_what_the_kustomize_base_grants(objects: tuple[dict[str, Any], ...]) -> None:
    rendered = tools.helm_template()
    assert isinstance(rendered, tuple)
    for kind in ("ClusterRole", "Role"):
        assert tools.one(rendered, kind)["rules"] == tools.one(objects, kind)["rules"], kind
    for call in rbac.OPERATOR_CALLS:
        assert rbac.allowed(rendered, call), f"helm chart RBAC does not allow: {call}"
    for call in rbac.FORBIDDEN_CALLS:
        assert not rbac.allowed(rendered, call), f"helm chart RBAC allows: {call}"


def test_rbac_comments_name_the_code_for_every_rule() -> None:
    # The file a reviewer reads: each rule is preceded by a comment naming the call that needs it.
    lines = (tools.BASE / "rbac.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("- apiGroups"):
            assert lines[i - 1].startswith("#"), f"deploy/base/rbac.yaml:{i + 1}: rule without a comment naming its call"
