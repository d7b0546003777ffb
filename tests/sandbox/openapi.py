"""Check HTTP exchanges against Miro's spec (the cleaned subset in tests/data/).

The subset is read the strict way: an object schema allows only the properties it names (plus the
ones it requires), so the sandbox cannot answer a field Miro's spec does not have, nor accept a
request field Miro would not know. The spec's ``WidgetDataOutput`` ``oneOf`` only discriminates
under that reading (every variant has optional fields only).

- a request the sandbox **accepted** (2xx/3xx) must be valid for its operation: path, query names
  and enums, JSON body or multipart parts;
- every response must be declared for the operation (an undeclared 4xx/5xx is checked against the
  spec's ``Error`` schema), with a JSON body valid for its schema, none for 204;
- and, the sandbox's own promise: ``X-RateLimit-Limit/Remaining/Reset`` on every API answer.
"""

from __future__ import annotations

import copy
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import requests
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from werkzeug.wrappers import Request

SUBSET = Path(__file__).resolve().parents[1] / "data" / "miro-openapi-subset.json"
BASE_URI = "urn:miro-openapi-subset"

NOT_IN_SPEC = [re.compile(r"^/v2/boards/[^/]+/resources/images/[^/]+$")]
"""Endpoints Miro serves but its spec does not describe (the ``data.imageUrl`` target)."""

DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _strict(node: Any) -> None:
    """Close object schemas in place and make ``$ref``s absolute (so any inner schema validates alone)."""
    if isinstance(node, list):
        for value in node:
            _strict(value)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node["$ref"] = BASE_URI + ref
    props = node.get("properties")
    if isinstance(props, dict) and all(isinstance(v, dict) for v in props.values()):
        for name in node.get("required", []):
            props.setdefault(name, {})  # e.g. BoardWithLinksAndLastOpened requires an unlisted "description"
        node.setdefault("additionalProperties", False)
        for value in props.values():
            _strict(value)
        for key, value in node.items():
            if key != "properties":
                _strict(value)
        return
    for value in node.values():
        _strict(value)


@dataclass(frozen=True)
class Operation:
    template: str
    method: str
    spec: dict[str, Any]
    pointer: str  # JSON pointer of the operation in the document

    @property
    def id(self) -> str:
        return self.spec["operationId"]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Spec:
    def __init__(self, path: Path = SUBSET) -> None:
        self.document = json.loads(path.read_text())
        strict = copy.deepcopy(self.document)
        _strict(strict)
        self.strict = strict
        self.registry = Registry().with_resource(BASE_URI, Resource.from_contents(strict, default_specification=DRAFT4))
        self.format_checker = jsonschema.FormatChecker()
        self.format_checker.checks("date-time")(lambda value: not isinstance(value, str) or bool(DATE_TIME.match(value)))
        self._routes = []
        for template, item in strict["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
            for method, op in item.items():
                self._routes.append((pattern, Operation(template, method.upper(), op, f"/paths/{_escape(template)}/{method}")))

    # ---- schema checks -------------------------------------------------------------------

    def errors(self, instance: Any, pointer: str) -> list[str]:
        """Validation errors of ``instance`` against the schema at ``pointer`` (e.g. ``/components/schemas/ImageItem``)."""
        validator = jsonschema.Draft4Validator({"$ref": f"{BASE_URI}#{pointer}"}, registry=self.registry,
                                               format_checker=self.format_checker)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(instance)]

    def assert_valid(self, instance: Any, pointer: str, what: str) -> None:
        problems = self.errors(instance, pointer)
        assert not problems, f"{what} does not match {pointer}:\n  " + "\n  ".join(problems[:10]) + f"\n{json.dumps(instance)[:2000]}"

    def operation(self, method: str, raw_path: str) -> Operation | None:
        for pattern, op in self._routes:
            if op.method == method and pattern.match(raw_path):
                return op
        return None

    # ---- exchanges -----------------------------------------------------------------------

    def check_request(self, request: requests.PreparedRequest) -> Operation:
        url = urlsplit(request.url)
        op = self.operation(request.method, url.path)
        assert op is not None, f"{request.method} {url.path}: no such operation in Miro's spec"
        params = {p["name"]: (i, p) for i, p in enumerate(op.spec.get("parameters", [])) if p["in"] == "query"}
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        for name, value in query.items():
            assert name in params, f"{op.id}: query parameter {name!r} is not in the spec ({sorted(params)})"
            index, param = params[name]
            self.assert_valid(value, f"{op.pointer}/parameters/{index}/schema", f"{op.id} query {name}")
        for name, (_, param) in params.items():
            assert not param.get("required") or name in query, f"{op.id}: required query parameter {name!r} missing"
        body_spec = op.spec.get("requestBody")
        if body_spec is None:
            assert not request.body, f"{op.id} takes no body"
            return op
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        assert content_type in body_spec["content"], f"{op.id}: body type {content_type!r} not in {sorted(body_spec['content'])}"
        pointer = f"{op.pointer}/requestBody/content/{_escape(content_type)}/schema"
        if content_type == "application/json":
            self.assert_valid(json.loads(request.body), pointer, f"{op.id} request body")
        else:
            self.assert_valid(self._multipart_instance(request), pointer, f"{op.id} multipart body")
        return op

    @staticmethod
    def _multipart_instance(request: requests.PreparedRequest) -> dict[str, Any]:
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        parsed = Request.from_values(input_stream=io.BytesIO(body), content_length=len(body),
                                     content_type=request.headers["Content-Type"], method="POST")
        instance: dict[str, Any] = {name: "<binary>" for name in parsed.files}
        for name, value in parsed.form.items():
            instance[name] = value
        if "data" in parsed.files:
            instance["data"] = parsed.files["data"].read().decode()
        if isinstance(instance.get("data"), str):
            instance["data"] = json.loads(instance["data"])
        return instance

    def check_response(self, method: str, raw_path: str, response: requests.Response) -> None:
        for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert response.headers.get(header, "").isdigit(), f"{method} {raw_path} -> {response.status_code}: {header} missing"
        if any(p.match(raw_path) for p in NOT_IN_SPEC):
            if response.status_code >= 400:
                self.assert_valid(response.json(), "/components/schemas/Error", f"{method} {raw_path} error")
            return
        op = self.operation(method, raw_path)
        status = str(response.status_code)
        if op is None:
            # Unknown route: still an error body in Miro's shape.
            assert response.status_code >= 400, f"{method} {raw_path} answered {status} but is not in the spec"
            self.assert_valid(response.json(), "/components/schemas/Error", f"{method} {raw_path} error")
            return
        declared = op.spec["responses"].get(status)
        if declared is None:
            assert response.status_code >= 400, f"{op.id}: status {status} is not declared ({sorted(op.spec['responses'])})"
            self.assert_valid(response.json(), "/components/schemas/Error", f"{op.id} {status} error body")
            return
        pointer = f"{op.pointer}/responses/{status}"
        if "$ref" in declared:
            pointer = declared["$ref"].removeprefix(BASE_URI + "#")
            declared = self.strict["components"]["responses"][status]
        if response.status_code == 204:
            assert response.content == b"", f"{op.id}: 204 with a body"
            return
        assert response.headers.get("Content-Type", "").startswith("application/json"), f"{op.id}: not JSON"
        self.assert_valid(response.json(), f"{pointer}/content/application~1json/schema", f"{op.id} {status} body")


class CheckedSession(requests.Session):
    """A ``requests`` session to the sandbox's Miro API that checks every exchange against the spec.

    Paths may be relative (``/v2/boards/...``); the token goes in ``Authorization`` unless a request
    sets its own headers. ``checked`` counts the exchanges checked (a test can make sure it ran).
    """

    def __init__(self, spec: Spec, base_url: str, token: str | None) -> None:
        super().__init__()
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.checked = 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", 30)
        kwargs["allow_redirects"] = False  # each hop is its own exchange; tests follow Location themselves
        return super().request(method, url, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().send(request, **kwargs)
        path = urlsplit(request.url).path
        if path.startswith("/v2/"):
            if response.status_code < 400 and not any(p.match(path) for p in NOT_IN_SPEC):
                self.spec.check_request(request)
            self.spec.check_response(request.method, path, response)
            self.checked += 1
        return response
