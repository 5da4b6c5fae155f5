"""Dapr ``Resiliency`` resources: the model, its validation, and its overlay on a component's policy.

A ``Resiliency`` (``apiVersion: dapr.io/v1alpha1``, ``kind: Resiliency``) names policies under
``spec.policies`` (``timeouts``, ``retries``, ``circuitBreakers``) and points components at them
under ``spec.targets.components.<name>.outbound``. Only component targets concern parley: ``apps``
and ``actors`` targets are accepted and ignored. :func:`parse` checks one document and raises
:class:`ResiliencyError` naming the field at fault; :meth:`Outbound.apply` turns a target into the
fields of ``ResiliencySettings`` it overrides (a Resiliency wins over the component's metadata for
what it sets). ``docs/resiliency.md`` lists what is read and how. No I/O here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from parley_sidecar.components.component_settings import ResiliencySettings
from parley_sidecar.durations import parse_duration

__all__ = ["BreakerPolicy", "Outbound", "Resiliency", "ResiliencyError", "RetryPolicy", "overlays", "parse"]

# dapr/kit's retry.DefaultConfig: what a retry policy gets for the fields it leaves out.
_DEFAULT_DURATION = 5.0
_DEFAULT_INITIAL_INTERVAL = 0.5
_DEFAULT_MAX_INTERVAL = 60.0
# daprd's breaker defaults (pkg/resiliency/breaker): trip `consecutiveFailures > 5`, timeout 60s.
_DEFAULT_TRIP = 6
_DEFAULT_BREAKER_TIMEOUT = 60.0

_TRIP = re.compile(r"\s*consecutiveFailures\s*(>=|>)\s*(\d+)\s*")


class ResiliencyError(ValueError):
    """A Resiliency problem, phrased for the person who wrote the file (names the field)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    policy: str
    """``constant`` (every wait is ``duration``) or ``exponential`` (from ``initialInterval``)."""
    duration: float
    initial_interval: float
    max_interval: float
    max_retries: int
    """-1: no limit but the call's deadline (``callTimeout``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int
    """Consecutive failures that open the circuit (from ``trip``)."""
    timeout: float
    max_requests: int


@dataclasses.dataclass(frozen=True, slots=True)
class Outbound:
    """The policies one component target names; None: the component's own metadata decides."""

    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: BreakerPolicy | None = None

    def apply(self, own: ResiliencySettings) -> ResiliencySettings:
        """The effective policy: this target's fields over the component's own (``callTimeout``
        and ``fallback`` stay the component's: a Resiliency has no such policy)."""
        settings = own
        if self.timeout is not None:
            settings = dataclasses.replace(settings, timeout=self.timeout or None)
        if self.retry is not None:
            r = self.retry
            settings = dataclasses.replace(
                settings, max_retries=r.max_retries, backoff_policy=r.policy, max_interval=r.max_interval,
                backoff=r.duration if r.policy == "constant" else r.initial_interval,
            )
        if self.breaker is not None:
            settings = dataclasses.replace(
                settings, breaker_failures=self.breaker.failures, breaker_timeout=self.breaker.timeout,
                breaker_max_requests=self.breaker.max_requests,
            )
        return settings


@dataclasses.dataclass(frozen=True, slots=True)
class Resiliency:
    name: str
    scopes: tuple[str, ...]
    targets: Mapping[str, Outbound]
    """Component name → its outbound policies."""
    where: str


def overlays(resiliencies: Iterable[Resiliency]) -> dict[str, Outbound]:
    """Every target of ``resiliencies``, merged: for a component named twice, the later one wins."""
    merged: dict[str, Outbound] = {}
    for resiliency in resiliencies:
        merged.update(resiliency.targets)
    return merged


def _duration(value: Any, field: str) -> float:
    # daprd's resiliency reads a bare integer as milliseconds (pkg/resiliency parseDuration).
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ResiliencyError(f"field {field!r}: expected a duration like 5s, got {value!r}")
    try:
        seconds = value / 1000 if isinstance(value, int) else (
            int(value) / 1000 if value.strip().isdigit() else parse_duration(value))
    except ValueError as exc:
        raise ResiliencyError(f"field {field!r}: {exc}") from None
    if seconds < 0:
        raise ResiliencyError(f"field {field!r}: must not be negative, got {value!r}")
    return float(seconds)


def _int(value: Any, field: str, *, minimum: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ResiliencyError(f"field {field!r}: expected an integer >= {minimum}, got {value!r}")
    return value


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ResiliencyError(f"field {field!r}: expected a mapping, got {type(value).__name__}")
    return value


def _codes(value: Any, field: str, low: int, high: int) -> None:
    """Checks ``matching`` as daprd does (``500,502-504``); daprd applies it only to service
    invocation, never to a component call, and neither does parley."""
    if not isinstance(value, str):
        raise ResiliencyError(f"field {field!r}: expected a string like \"500,502-504\", got {value!r}")
    for part in filter(None, (p.strip() for p in value.split(","))):
        bounds = part.split("-")
        if len(bounds) > 2 or not all(b.strip().isdigit() for b in bounds):
            raise ResiliencyError(f"field {field!r}: {part!r} is not a code or a range of codes")
        start, end = int(bounds[0]), int(bounds[-1])
        if not low <= start <= end <= high:
            raise ResiliencyError(f"field {field!r}: {part!r} is outside {low}-{high}")


def _retry(raw: Any, field: str) -> RetryPolicy:
    spec = _mapping(raw, field)
    policy = spec.get("policy", "constant")
    if policy not in ("constant", "exponential"):
        raise ResiliencyError(f"field '{field}.policy': expected constant or exponential, got {policy!r}")
    matching = _mapping(spec.get("matching"), f"{field}.matching")
    if "httpStatusCodes" in matching:
        _codes(matching["httpStatusCodes"], f"{field}.matching.httpStatusCodes", 100, 599)
    if "gRPCStatusCodes" in matching:
        _codes(matching["gRPCStatusCodes"], f"{field}.matching.gRPCStatusCodes", 0, 16)

    def duration(key: str, default: float) -> float:
        return _duration(spec[key], f"{field}.{key}") if key in spec else default

    return RetryPolicy(
        policy=policy,
        duration=duration("duration", _DEFAULT_DURATION),
        initial_interval=duration("initialInterval", _DEFAULT_INITIAL_INTERVAL),
        max_interval=duration("maxInterval", _DEFAULT_MAX_INTERVAL),
        max_retries=_int(spec.get("maxRetries", -1), f"{field}.maxRetries", minimum=-1),
    )


def _breaker(raw: Any, field: str) -> BreakerPolicy:
    spec = _mapping(raw, field)
    failures = _DEFAULT_TRIP
    if "trip" in spec:
        trip = spec["trip"]
        match = _TRIP.fullmatch(trip) if isinstance(trip, str) else None
        if match is None:
            raise ResiliencyError(
                f"field '{field}.trip': parley supports 'consecutiveFailures > N' and "
                f"'consecutiveFailures >= N', got {trip!r}")
        failures = int(match.group(2)) + (1 if match.group(1) == ">" else 0)
        if failures < 1:
            raise ResiliencyError(f"field '{field}.trip': {trip!r} would open the circuit before any failure")
    if "interval" in spec:
        _duration(spec["interval"], f"{field}.interval")  # checked; consecutive counts need no window
    return BreakerPolicy(
        failures=failures,
        timeout=_duration(spec["timeout"], f"{field}.timeout") if "timeout" in spec else _DEFAULT_BREAKER_TIMEOUT,
        max_requests=_int(spec.get("maxRequests", 1), f"{field}.maxRequests", minimum=1),
    )


def parse(raw: Mapping[str, Any], label: str) -> Resiliency:
    """One ``kind: Resiliency`` document → :class:`Resiliency`; raise ResiliencyError naming the field."""
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ResiliencyError(f"{label}: field 'metadata.name' is required")
    where = f"{label}, resiliency {meta['name']!r}"
    try:
        spec = _mapping(raw.get("spec"), "spec")
        policies = _mapping(spec.get("policies"), "spec.policies")
        timeouts = {name: _duration(value, f"spec.policies.timeouts.{name}")
                    for name, value in _mapping(policies.get("timeouts"), "spec.policies.timeouts").items()}
        retries = {name: _retry(value, f"spec.policies.retries.{name}")
                   for name, value in _mapping(policies.get("retries"), "spec.policies.retries").items()}
        breakers = {name: _breaker(value, f"spec.policies.circuitBreakers.{name}")
                    for name, value in _mapping(policies.get("circuitBreakers"),
                                                "spec.policies.circuitBreakers").items()}
        targets_raw = _mapping(_mapping(spec.get("targets"), "spec.targets").get("components"),
                               "spec.targets.components")
        targets: dict[str, Outbound] = {}
        for component, target in targets_raw.items():
            field = f"spec.targets.components.{component}.outbound"
            outbound = _mapping(_mapping(target, f"spec.targets.components.{component}").get("outbound"), field)

            def named(key: str, known: Mapping[str, Any], field: str = field,
                      outbound: Mapping[str, Any] = outbound) -> Any:
                name = outbound.get(key)
                if name is None:
                    return None
                if name not in known:
                    raise ResiliencyError(f"field '{field}.{key}': no {key} policy named {name!r}")
                return known[name]

            targets[str(component)] = Outbound(
                timeout=named("timeout", timeouts), retry=named("retry", retries),
                breaker=named("circuitBreaker", breakers),
            )
        scopes = raw.get("scopes") or []
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ResiliencyError("field 'scopes': expected a list of app ids")
    except ResiliencyError as exc:
        raise ResiliencyError(f"{where}: {exc}") from None
    return Resiliency(name=meta["name"], scopes=tuple(scopes), targets=targets, where=where)
