"""Cut the operations the sandbox serves out of Miro's OpenAPI spec, and clean them.

    python tests/data/make_miro_subset.py [SPEC_JSON] > tests/data/miro-openapi-subset.json

SPEC_JSON (``.json`` or gzipped ``.json.gz``) defaults to the copy of Miro's whole spec kept in this
folder, ``miro-openapi-spec.json.gz``. What is cleaned, and why, is in ``tests/data/README.md``; keep the
two in step.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_SPEC = Path(__file__).resolve().parent / "miro-openapi-spec.json.gz"
"""Miro's spec, byte for byte, gzipped (80 KB instead of 1 MB); provenance in tests/data/README.md."""
DEFAULT_SPEC_SHA256 = "f0e17b5b43c92ff2d85c7fbe9a84301e39df1d3c14e6738cd939a6d7142f44dd"
"""Of the uncompressed file, as Miro's repository has it."""

# (path in the subset, method) -> operationIds merged into it, the first one's metadata wins.
OPERATIONS: dict[tuple[str, str], list[str]] = {
    ("/v2/boards/{board_id}", "get"): ["get-specific-board"],
    ("/v2/boards/{board_id}/images", "post"): ["create-image-item-using-url", "create-image-item-using-local-file"],
    ("/v2/boards/{board_id}/images/{item_id}", "get"): ["get-image-item"],
    ("/v2/boards/{board_id}/images/{item_id}", "patch"): ["update-image-item-using-url", "update-image-item-using-file-from-device"],
    ("/v2/boards/{board_id}/images/{item_id}", "delete"): ["delete-image-item"],
    ("/v2/boards/{board_id}/frames", "post"): ["create-frame-item"],
    ("/v2/boards/{board_id}/frames/{item_id}", "get"): ["get-frame-item"],
    ("/v2/boards/{board_id}/frames/{item_id}", "patch"): ["update-frame-item"],
    ("/v2/boards/{board_id}/frames/{item_id}", "delete"): ["delete-frame-item"],
    ("/v2/boards/{board_id}/items", "get"): ["get-items", "get-items-within-frame"],
    ("/v2/boards/{board_id}/items/{item_id}", "get"): ["get-specific-item"],
    ("/v2/boards/{board_id}/items/{item_id}", "patch"): ["update-item-position-or-parent"],
    ("/v2/boards/{board_id}/items/{item_id}", "delete"): ["delete-item"],
}

DROPPED_KEYS = ("x-readme", "x-settings")
"""Code samples and generator switches: bulky, and not part of the contract."""

ERROR_DESCRIPTIONS = {
    "400": "Malformed request", "401": "Unauthorized", "403": "Forbidden", "404": "Not found",
    "409": "Conflict", "413": "Payload too large", "429": "Too many requests", "500": "Internal error",
}


def read_spec_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def spec_sha256(path: Path) -> str:
    return hashlib.sha256(read_spec_bytes(path)).hexdigest()


def load_spec(path: Path = DEFAULT_SPEC) -> dict:
    return json.loads(read_spec_bytes(path))


def find_operations(spec: dict) -> dict[str, tuple[str, str, dict]]:
    found = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                found[op["operationId"]] = (path, method, op)
    return found


def is_test_error_object(response: dict) -> bool:
    """The inline ``"Test error obj"`` schema some operations carry instead of a shared response."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("description") == "Test error obj"


def clean_operation(op: dict, placeholder: str | None) -> dict:
    op = {k: copy.deepcopy(v) for k, v in op.items() if k not in DROPPED_KEYS}
    for param in op.get("parameters", []):
        if placeholder and param.get("name") == placeholder:
            param["name"] = "board_id"
    for status, response in list(op.get("responses", {}).items()):
        if status.startswith(("4", "5")) and is_test_error_object(response):
            op["responses"][status] = {"$ref": f"#/components/responses/{status}"}
    return op


def merge(ops: list[dict]) -> dict:
    """One operation per method and path, as OpenAPI requires; the variants' bodies and params joined."""
    merged = ops[0]
    if len(ops) == 1:
        return merged
    merged["x-merged-operationIds"] = [o["operationId"] for o in ops]
    names = {p["name"] for p in merged.get("parameters", [])}
    for other in ops[1:]:
        for param in other.get("parameters", []):
            if param["name"] not in names:
                # get-items-within-frame's required parent_item_id is optional once merged into get-items.
                merged.setdefault("parameters", []).append(dict(param, required=False))
                names.add(param["name"])
        if "requestBody" in other:
            merged["requestBody"]["content"].update(other["requestBody"]["content"])
        for status, response in other.get("responses", {}).items():
            merged["responses"].setdefault(status, response)
    return merged


def collect_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            collect_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            collect_refs(value, out)


def build_subset(spec: dict) -> dict:
    found = find_operations(spec)
    paths: dict[str, dict] = {}
    for (path, method), op_ids in OPERATIONS.items():
        cleaned = []
        for op_id in op_ids:
            src_path, src_method, op = found[op_id]
            assert src_method == method, (op_id, src_method)
            placeholder = next((seg[1:-1] for seg in src_path.split("/") if seg.startswith("{board_id_")), None)
            cleaned.append(clean_operation(op, placeholder))
        paths.setdefault(path, {})[method] = merge(cleaned)

    # The shared error responses the operations point at; missing from the spec since 2026-02.
    refs: set[str] = set()
    collect_refs(paths, refs)
    responses = {
        ref.rsplit("/", 1)[1]: {
            "description": ERROR_DESCRIPTIONS.get(ref.rsplit("/", 1)[1], "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for ref in sorted(refs) if ref.startswith("#/components/responses/")
    }

    schemas: dict[str, Any] = {}
    pending = {r for r in refs if r.startswith("#/components/schemas/")} | {"#/components/schemas/Error"}
    while pending:
        name = pending.pop().rsplit("/", 1)[1]
        if name in schemas:
            continue
        schemas[name] = copy.deepcopy(spec["components"]["schemas"][name])
        more: set[str] = set()
        collect_refs(schemas[name], more)
        pending |= {r for r in more if r.rsplit("/", 1)[1] not in schemas}

    return {
        "openapi": spec["openapi"],
        "info": {
            "title": spec["info"]["title"] + " (subset served by the miro-sync sandbox)",
            "version": spec["info"]["version"],
        },
        "servers": spec["servers"],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": responses,
            "securitySchemes": spec["components"]["securitySchemes"],
        },
    }


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    subset = build_subset(load_spec(source))
    json.dump(subset, sys.stdout, indent=1, ensure_ascii=False, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
