"""fill_namespace(): kopf #744, the namespace of controller-made pods."""

from __future__ import annotations

from parley_operator.webhook import fill_namespace


def test_request_namespace_fills_the_objects() -> None:
    review = {"request": {"namespace": "shop", "object": {"metadata": {"generateName": "w-"}},
                          "oldObject": {"metadata": {}}}}
    fill_namespace(review)
    assert review["request"]["object"]["metadata"]["namespace"] == "shop"
    assert review["request"]["oldObject"]["metadata"]["namespace"] == "shop"


def test_an_existing_namespace_and_cluster_scoped_requests_are_left_alone() -> None:
    review = {"request": {"namespace": "shop", "object": {"metadata": {"namespace": "other"}}, "oldObject": None}}
    fill_namespace(review)
    assert review["request"]["object"]["metadata"]["namespace"] == "other"
    cluster_scoped = {"request": {"object": {"metadata": {}}}}
    fill_namespace(cluster_scoped)
    assert cluster_scoped == {"request": {"object": {"metadata": {}}}}
