"""An AdmissionReview read strictly, before kopf or a handler touches it. Pure functions, no I/O.

kopf trusts the body it is given: ``null`` or ``[]`` raise inside it (HTTP 500), a Pod sent to
``/validate`` finds no handler there and is allowed, a ``spec.type`` that is a list is "not a
conversation Component" and is allowed. With ``failurePolicy: Ignore`` every HTTP error is also an
"allowed". So a body is first read here and gets one of two answers:

- It carries ``request.uid`` (readable from the parsed body, or, when the body cannot be parsed,
  from its first bytes, which kube-apiserver always writes as ``{"kind":"AdmissionReview",
  "apiVersion":…,"request":{"uid":…``): anything wrong with it is a **denial**, an AdmissionReview
  with ``allowed: false``, ``status.code`` 400 and a message naming the field.
- It carries no uid: it is not an AdmissionReview at all (kube-apiserver never sends one without),
  and the answer is **HTTP 400** (413 when over :data:`MAX_BODY`) with ``{"error": message}``.

:data:`MAX_BODY` is above anything kube-apiserver sends (request bodies up to 3 MiB, stored objects
up to 1.5 MiB, so an UPDATE's ``object`` plus ``oldObject`` stays under 5 MiB), so no genuine review
is ever turned away unread. Messages name fields and kinds, never quote values.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

__all__ = [
    "API_VERSIONS",
    "MAX_BODY",
    "MAX_DEPTH",
    "Expected",
    "Refusal",
    "check",
    "denial",
    "parse",
    "uid_in_prefix",
]

MAX_BODY = 8 * 1024 * 1024
"""Bytes read at most; see the module docstring for why no genuine AdmissionReview is larger."""
MAX_DEPTH = 100
"""Nesting of objects and lists; a Pod is about 12 deep, and deeper input would exhaust recursion in
the code that walks it later (copies, diffs)."""
API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
_OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
# kube-apiserver's field order (Go struct order): TypeMeta (kind, apiVersion), then request.uid.
_PREFIX = re.compile(
    rb'\A\s*\{\s*(?:"(?:kind|apiVersion)"\s*:\s*"(?P<v1>[^"\\]{0,64})"\s*,\s*){0,2}'
    rb'"request"\s*:\s*\{\s*"uid"\s*:\s*"(?P<uid>[A-Za-z0-9._:-]{1,128})"')


class Refusal(Exception):
    """The body cannot be reviewed. With a ``uid`` the answer is a denial, without one HTTP ``status``."""

    def __init__(self, message: str, *, uid: str = "", api_version: str = API_VERSIONS[0], status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.uid = uid
        self.api_version = api_version
        self.status = status


@dataclasses.dataclass(frozen=True, slots=True)
class Expected:
    """What one webhook path reviews: the resource of its webhook configuration's rule."""

    group: str
    version: str
    resource: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.api_version} {self.resource}"


def uid_in_prefix(data: bytes) -> tuple[str, str] | None:
    """``(apiVersion, uid)`` from the start of a body written as kube-apiserver writes one."""
    match = _PREFIX.match(data[:4096])
    if match is None:
        return None
    version = next((v for v in API_VERSIONS if v.encode() in data[:match.end()]), API_VERSIONS[0])
    return version, match["uid"].decode()


def _too_deep(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: the point is not to recurse
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def parse(data: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`Refusal` (a denial when the uid is readable)."""
    def refuse(reason: str) -> Refusal:
        found = uid_in_prefix(data)
        if found is None:
            return Refusal(f"not an AdmissionReview: {reason}")
        return Refusal(f"the AdmissionReview cannot be read: {reason}", api_version=found[0], uid=found[1])

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("the body is not UTF-8") from None
    try:
        review = json.loads(text)
    except RecursionError:
        raise refuse(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise refuse("the body is not JSON") from None
    if not isinstance(review, dict):
        raise refuse(f"the body is a JSON {type(review).__name__ if review is not None else 'null'}, "
                     "not an object")
    if _too_deep(review):
        raise refuse(f"JSON nested deeper than {MAX_DEPTH} levels")
    return review


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _list_of_named(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value)


def _object_problem(obj: Any, where: str, expected: Expected) -> str | None:
    if not isinstance(obj, dict):
        return f"{where} must be an object"
    if obj.get("apiVersion") != expected.api_version or obj.get("kind") != expected.kind:
        return f"{where} must be a {expected.kind} ({expected.api_version})"
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return f"{where}.metadata must be an object"
    for key in ("name", "generateName", "namespace", "uid", "resourceVersion"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"{where}.metadata.{key} must be a string"
    for key in ("labels", "annotations"):
        if meta.get(key) is not None and not _string_map(meta[key]):
            return f"{where}.metadata.{key} must map strings to strings"
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return f"{where}.spec must be an object"
    if expected.kind == "Component":
        # What decides whether a Component is parley's (conversation.*) at all; its other fields are
        # component.validate's business and are reported there field by field.
        if not isinstance(spec.get("type"), str) or not spec["type"]:
            return f"{where}.spec.type must be a non-empty string"
        if spec.get("version") is not None and not isinstance(spec["version"], str):
            return f"{where}.spec.version must be a string"
    elif expected.kind == "Pod":
        # What the injector reads of a pod (injection.patch): named lists of objects.
        for key in ("containers", "initContainers", "volumes"):
            if spec.get(key) is not None and not _list_of_named(spec[key]):
                return f"{where}.spec.{key} must be a list of objects with a name"
        for key in ("containers", "initContainers"):
            for i, container in enumerate(spec.get(key) or ()):
                if container.get("env") is not None and not _list_of_named(container["env"]):
                    return f"{where}.spec.{key}[{i}].env must be a list of objects with a name"
    return None


def _problem(request: dict[str, Any], expected: Expected) -> str | None:
    for key in ("kind", "resource"):
        part = request.get(key)
        if not isinstance(part, dict) or not all(isinstance(part.get(f), str) for f in ("group", "version", key)):
            return f"request.{key} must be an object with group, version and {key}"
    resource = request["resource"]
    if (resource["group"], resource["version"], resource["resource"]) != (
            expected.group, expected.version, expected.resource):
        return f"this webhook reviews {expected}, not {resource['group'] or 'core'}/{resource['version']} " \
               f"{resource['resource']}"
    if request.get("operation") not in _OPERATIONS:
        return "request.operation must be one of " + ", ".join(_OPERATIONS)
    for key in ("name", "namespace", "subResource"):
        if request.get(key) is not None and not isinstance(request[key], str):
            return f"request.{key} must be a string"
    if not isinstance(request.get("userInfo"), dict):
        return "request.userInfo must be an object"
    if request.get("dryRun") is not None and not isinstance(request["dryRun"], bool):
        return "request.dryRun must be true or false"
    new, old = request.get("object"), request.get("oldObject")
    if new is None and old is None:
        return "request.object is missing"
    if request["operation"] in ("CREATE", "UPDATE") and new is None:
        return f"request.object is required for {request['operation']}"
    for key, obj in (("request.object", new), ("request.oldObject", old)):
        if obj is not None and (problem := _object_problem(obj, key, expected)):
            return problem
    return None


def check(review: dict[str, Any], expected: Expected) -> None:
    """A :class:`Refusal` unless ``review`` is a well-formed AdmissionReview of ``expected``."""
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise Refusal("not an AdmissionReview: request.uid is missing")
    uid = request["uid"]
    api_version = review.get("apiVersion")
    if api_version not in API_VERSIONS or review.get("kind") != "AdmissionReview":
        raise Refusal("not an AdmissionReview: kind/apiVersion must be AdmissionReview/"
                      + " or ".join(API_VERSIONS), uid=uid)
    problem = _problem(request, expected)
    if problem:
        raise Refusal(f"malformed AdmissionReview: {problem}", uid=uid, api_version=str(api_version))


def denial(*, api_version: str, uid: str, message: str, code: int = 400) -> dict[str, Any]:
    """An AdmissionReview answer that refuses the operation with ``message``."""
    return {"apiVersion": api_version, "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": False, "status": {"message": message, "code": code}}}
