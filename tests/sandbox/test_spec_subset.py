"""The spec subset the sandbox is checked against: complete, clean, faithful to Miro's file; and the
checker itself really rejects what Miro's spec does not allow."""

from __future__ import annotations

import json

import pytest
import requests

from tests.data.make_miro_subset import DEFAULT_SPEC, DEFAULT_SPEC_SHA256, OPERATIONS, build_subset, collect_refs, load_spec, spec_sha256

from .openapi import SUBSET, Spec


def subset() -> dict:
    return json.loads(SUBSET.read_text())


def test_every_ref_resolves_and_no_placeholder_path_is_left():
    doc = subset()
    refs: set[str] = set()
    collect_refs(doc, refs)
    for ref in refs:
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    assert not [p for p in doc["paths"] if "{board_id_" in p]
    assert len(refs) > 20


def test_every_operation_the_sandbox_serves_is_there():
    doc = subset()
    ids = {op_id for item in doc["paths"].values() for op in item.values()
           for op_id in op.get("x-merged-operationIds", [op["operationId"]])}
    assert ids == {op_id for op_ids in OPERATIONS.values() for op_id in op_ids}


def test_the_copy_of_miros_spec_is_the_recorded_file():
    assert spec_sha256(DEFAULT_SPEC) == DEFAULT_SPEC_SHA256
    assert DEFAULT_SPEC_SHA256 in (DEFAULT_SPEC.parent / "README.md").read_text()  # provenance names this file


def test_subset_is_what_the_generator_makes_from_miros_spec():
    source = load_spec()
    assert build_subset(source) == subset()
    for name, schema in subset()["components"]["schemas"].items():
        assert schema == source["components"]["schemas"][name], name  # schemas are copied, never edited


@pytest.fixture(scope="module")
def checker() -> Spec:
    return Spec()


GOOD_ITEM = {"id": "3458764600000000001", "type": "image", "data": {"imageUrl": "http://x/y", "title": "t"},
             "position": {"x": 1, "y": 2, "origin": "center", "relativeTo": "canvas_center"},
             "geometry": {"width": 10, "height": 5}, "createdAt": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize("change", [
    {"id": 3458764600000000001}, {"extra": True}, {"position": {"x": 1, "y": 2, "relativeTo": "board"}},
    {"createdAt": "2026-01-01 00:00"}, {"data": {"imageUrl": "x", "url": "y"}},
], ids=["int-id", "unknown-field", "bad-relativeTo", "bad-date", "unknown-data-field"])
def test_checker_rejects_what_the_spec_does_not_allow(checker, change):
    assert checker.errors(GOOD_ITEM, "/components/schemas/ImageItem") == []
    assert checker.errors({**GOOD_ITEM, **change}, "/components/schemas/ImageItem")


def test_checker_needs_declared_statuses_and_error_bodies(checker):
    def response(status: int, body: object) -> requests.Response:
        resp = requests.Response()
        resp.status_code = status
        resp._content = json.dumps(body).encode()
        resp.headers.update({"Content-Type": "application/json", "X-RateLimit-Limit": "1",
                             "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1"})
        return resp

    path = "/v2/boards/b%3D/images"
    checker.check_response("POST", path, response(201, GOOD_ITEM))
    with pytest.raises(AssertionError, match="not declared"):
        checker.check_response("POST", path, response(200, GOOD_ITEM))
    with pytest.raises(AssertionError):
        checker.check_response("POST", path, response(400, {"status": 400, "code": "x"}))  # no type, no message
    no_headers = response(201, GOOD_ITEM)
    del no_headers.headers["X-RateLimit-Reset"]
    with pytest.raises(AssertionError, match="X-RateLimit-Reset"):
        checker.check_response("POST", path, no_headers)


def test_checker_rejects_requests_miro_would_not_know(checker):
    def prepared(method: str, url: str, **kwargs) -> requests.PreparedRequest:
        return requests.Request(method, "http://sandbox" + url, **kwargs).prepare()

    checker.check_request(prepared("POST", "/v2/boards/b%3D/images", json={"data": {"url": "http://x/a.png"}}))
    checker.check_request(prepared("POST", "/v2/boards/b%3D/images",
                                   files={"resource": ("a.png", b"x", "image/png"), "data": (None, '{"title": "t"}')}))
    checker.check_request(prepared("GET", "/v2/boards/b%3D/items?limit=50&type=image&parent_item_id=1&cursor=c"))
    bad = [
        prepared("POST", "/v2/boards/b%3D/images", json={"url": "http://x/a.png"}),
        prepared("POST", "/v2/boards/b%3D/images", files={"file": ("a.png", b"x", "image/png")}),
        prepared("POST", "/v2/boards/b%3D/images", files={"resource": ("a.png", b"x"), "data": (None, '{"url": "u"}')}),
        prepared("GET", "/v2/boards/b%3D/items?page=2"),
        prepared("GET", "/v2/boards/b%3D/items?type=picture"),
        prepared("PUT", "/v2/boards/b%3D/images/1", json={}),
    ]
    for request in bad:
        with pytest.raises(AssertionError):
            checker.check_request(request)
