"""Kubernetes RBAC authorization (rbac.authorization.k8s.io/v1 rule matching) over rendered manifests,
and the list of every API call the operator makes, each with the code that makes it.

The evaluator follows the API server's ``RuleAllows``: verb, API group, resource (with
subresource) and, when a rule lists ``resourceNames``, the object's name. A ClusterRole bound by a
ClusterRoleBinding applies everywhere; a Role bound by a RoleBinding only in its namespace.
tests/envtest cross-checks it against the real API server's authorizer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

SERVICE_ACCOUNT = ("parley-system", "parley-operator")


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    verb: str
    group: str
    resource: str
    namespace: str | None = None
    """None for cluster-scoped resources and cluster-wide list/watch."""
    name: str | None = None
    where: str = ""
    """The code that makes this call."""

    def __str__(self) -> str:
        scope = f" in {self.namespace}" if self.namespace else " (cluster)"
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{named}{scope} [{self.where}]"


# Every call the operator makes. tests/k8s/test_rbac.py checks this list against the code (each API
# path in operator/parley_operator and each resource kopf watches must appear here) and against the
# ClusterRole/Role; tests/envtest checks it against the API server's audit log of a real run.
OPERATOR_CALLS: tuple[Call, ...] = (
    Call("list", "dapr.io", "components", where="kopf: index components_by_namespace, on.event component-events"),
    Call("watch", "dapr.io", "components", where="kopf: index components_by_namespace, on.event component-events"),
    Call("list", "", "pods", where="kopf: index sidecar_pods, on.event pod-events"),
    Call("watch", "", "pods", where="kopf: index sidecar_pods, on.event pod-events"),
    Call("get", "", "pods", "team-a", "app-1", where="app.Operator._find_pod (a sidecar connects before its watch event)"),
    Call("get", "", "secrets", "team-a", "openai", where="app.Operator._read_secret (Component secretKeyRef)"),
    Call("get", "", "secrets", "parley-system", "parley-operator-tls", where="certs.CertManager._from_secret_store"),
    Call("create", "", "secrets", "parley-system", where="certs.CertManager._from_secret_store (first start)"),
    Call("patch", "", "secrets", "parley-system", "parley-operator-tls",
         where="certs.CertManager._from_secret_store (renewal)"),
    Call("create", "", "events", "team-a", where="events.EventRecorder._post"),
    Call("create", "authentication.k8s.io", "tokenreviews", where="delivery.auth.Authenticator.authenticate"),
    Call("get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", name="parley-operator",
         where="certs.CertManager.patch_ca_bundles"),
    Call("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", name="parley-operator",
         where="certs.CertManager.patch_ca_bundles"),
    Call("get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", name="parley-operator",
         where="certs.CertManager.patch_ca_bundles"),
    Call("patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", name="parley-operator",
         where="certs.CertManager.patch_ca_bundles"),
    Call("list", "dapr.io", "resiliencies", where="kopf: index resiliencies_by_namespace, on.event resiliency-events"),
    Call("watch", "dapr.io", "resiliencies", where="kopf: index resiliencies_by_namespace, on.event resiliency-events"),
    Call("get", "dapr.io", "configurations", "team-a", "appconfig",
         where="app.Operator._read_configuration (the pod's dapr.io/config, when its sidecar connects)"),
    Call("list", "apiextensions.k8s.io", "customresourcedefinitions", where="kopf: resource observer"),
    Call("watch", "apiextensions.k8s.io", "customresourcedefinitions", where="kopf: resource observer"),
)

# Things a least-privilege operator must not be able to do (each would widen what a compromised
# operator pod could read or change).
FORBIDDEN_CALLS: tuple[Call, ...] = (
    Call("list", "", "secrets", where="would read every Secret in the cluster"),
    Call("watch", "", "secrets", "team-a", where="would stream a namespace's Secrets"),
    Call("create", "", "secrets", "team-a", where="writes outside parley-system"),
    Call("patch", "", "secrets", "parley-system", "someone-else", where="other Secrets of parley-system"),
    Call("patch", "", "pods", "team-a", "app-1", where="the webhook mutates pods at admission; no later writes"),
    Call("delete", "", "pods", "team-a", "app-1", where="no watchdog that deletes pods"),
    Call("update", "dapr.io", "components", "team-a", "openai", where="Components are the user's"),
    Call("patch", "dapr.io", "components", "team-a", "openai", where="no finalizers, no kopf annotations"),
    Call("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", name="dapr-sidecar-injector",
         where="someone else's webhook"),
    Call("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations",
         where="configurations ship with the deployment"),
    Call("create", "", "serviceaccounts/token", "team-a", "default", where="could mint tokens"),
    Call("get", "", "configmaps", "team-a", "x", where="not needed"),
    Call("create", "coordination.k8s.io", "leases", "parley-system", where="no leader election"),
)


def _rule_allows(rule: Mapping[str, Any], call: Call) -> bool:
    def has(field: str, value: str) -> bool:
        return value in (rule.get(field) or ()) or "*" in (rule.get(field) or ())

    if not has("verbs", call.verb) or not has("apiGroups", call.group):
        return False
    resources = rule.get("resources") or ()
    _, _, sub = call.resource.partition("/")
    if not (call.resource in resources or "*" in resources or (sub and f"*/{sub}" in resources)):
        return False
    names = rule.get("resourceNames") or ()
    return not names or (call.name is not None and call.name in names)


def _subject_matches(subjects: Iterable[Mapping[str, Any]], sa: tuple[str, str]) -> bool:
    return any(s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) == sa for s in subjects)


def allowed(objects: Iterable[Mapping[str, Any]], call: Call, sa: tuple[str, str] = SERVICE_ACCOUNT) -> bool:
    """Whether the RBAC objects among ``objects`` let ``sa`` make ``call``."""
    objects = list(objects)
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects
             if o.get("kind") in ("ClusterRole", "Role")}
    for binding in objects:
        kind = binding.get("kind")
        if kind not in ("ClusterRoleBinding", "RoleBinding") or not _subject_matches(binding.get("subjects") or (), sa):
            continue
        ref = binding["roleRef"]
        binding_ns = binding["metadata"].get("namespace") if kind == "RoleBinding" else None
        if kind == "RoleBinding" and call.namespace != binding_ns:
            continue
        role = roles.get((ref["kind"], binding_ns if ref["kind"] == "Role" else None, ref["name"]))
        if role is not None and any(_rule_allows(rule, call) for rule in role.get("rules") or ()):
            return True
    return False


def rule_grants(objects: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """Every (role, group, resource, verb, resourceNames) that the operator's roles grant."""
    out = []
    for o in objects:
        if o.get("kind") not in ("ClusterRole", "Role"):
            continue
        for rule in o.get("rules") or ():
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for verb in rule.get("verbs") or ():
                        out.append((f"{o['kind']}/{o['metadata']['name']}", group, resource, verb,
                                    tuple(rule.get("resourceNames") or ())))
    return out
