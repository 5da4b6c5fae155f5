"""Which Resiliency each sidecar gets (``delivery.resiliencies``): scopes as daprd applies them, the
last good version of one that turned bad, and the changes one stream needs. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from parley_operator import resiliency
from parley_operator.delivery import resiliencies
from parley_operator.delivery.resiliencies import Change, Views

NS = "shop"


def record(name: str = "p", *, timeout: Any = "5s", scopes: Any = None, uid: str = "u1") -> resiliency.ResiliencyRecord:
    body: dict[str, Any] = {"apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency",
                            "metadata": {"name": name, "namespace": NS, "uid": uid},
                            "spec": {"policies": {"timeouts": {"t": timeout}},
                                     "targets": {"components": {"llm": {"outbound": {"timeout": "t"}}}}}}
    if scopes is not None:
        body["scopes"] = scopes
    return resiliency.record_of(body)


def test_a_record_carries_what_the_user_wrote_and_the_parsers_verdict() -> None:
    good = record(scopes=["web"])
    assert good.error == "" and good.scopes == ("web",)
    assert good.document["spec"]["policies"] == {"timeouts": {"t": "5s"}} and good.document["scopes"] == ["web"]
    assert "uid" not in good.document["metadata"]  # what a sidecar needs, nothing more
    bad = record(timeout="soon")
    assert "field 'spec.policies.timeouts.t'" in bad.error and bad.digest != good.digest
    assert "field 'scopes'" in record(scopes="web").error


def test_scopes_empty_means_every_app_else_only_the_listed_ones() -> None:
    view = Views().view(NS, [record("all"), record("web-only", scopes=["web"])])
    assert [r.name for r in Views.visible(view, "web")[0]] == ["all", "web-only"]
    assert [r.name for r in Views.visible(view, "batch")[0]] == ["all"]


def test_a_bad_version_keeps_the_last_good_one_of_the_same_object() -> None:
    views = Views()
    good = record(timeout="5s")
    views.view(NS, [good])
    view = views.view(NS, [record(timeout="soon")])
    assert view == {"p": good}
    assert set(views.rejected) == {(NS, "p")}
    fixed = record(timeout="6s")
    assert views.view(NS, [fixed]) == {"p": fixed} and not views.rejected


def test_a_bad_one_with_no_good_past_is_withheld_for_every_app() -> None:
    views = Views()
    views.view(NS, [record(timeout="5s", uid="u1")])
    recreated = record(timeout="soon", uid="u2")  # deleted and created again, bad: the old one is not it
    view = views.view(NS, [recreated])
    assert view == {"p": recreated.error}
    assert Views.visible(view, "anyone") == ([], [("p", recreated.error)])


def test_a_deleted_resiliency_is_forgotten() -> None:
    views = Views()
    views.view(NS, [record(timeout="5s")])
    views.view(NS, [record(timeout="soon")])
    assert views.view(NS, []) == {} and not views.rejected
    assert views.view(NS, [record(timeout="soon")]) == {"p": record(timeout="soon").error}


def test_diff_sends_upserts_deletes_and_scope_moves_once() -> None:
    sent: dict[str, str] = {}
    a, scoped = record("a"), record("b", scopes=["web"])
    view: resiliencies.View = {"a": a, "b": scoped}
    assert list(resiliencies.diff(sent, view, "web")) == [Change("a", a), Change("b", scoped)]
    assert list(resiliencies.diff(sent, view, "web")) == []  # nothing changed: nothing sent
    moved = record("b", scopes=["batch"])
    assert list(resiliencies.diff(sent, {"a": a, "b": moved}, "web")) == [Change("b", None)]
    assert list(resiliencies.diff(sent, {"b": moved}, "web")) == [Change("a", None)]
    assert sent == {}


def test_diff_leaves_a_withheld_name_as_the_sidecar_has_it() -> None:
    a = record("a")
    sent = {"a": a.digest}
    assert list(resiliencies.diff(sent, {"a": "invalid: field ..."}, "web")) == []
    assert sent == {"a": a.digest}
