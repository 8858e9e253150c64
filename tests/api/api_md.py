"""API.md as the tests read it: its ```json examples by section heading, and the field-by-field
comparison of a response with an example (shared by the API tests that replay API.md)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from webapp.config import PROJECT_ROOT

# In CI the contract sits beside the repository (../shared/API.md); API_MD names another copy.
API_MD = Path(os.environ.get("API_MD") or PROJECT_ROOT.parent / "shared/API.md")

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# "cs_test_…", "txn_…", "llmgen_…": an opaque id whose prefix API.md fixes.
ID_PREFIX = re.compile(r"^([a-z]+_(?:test_)?)…$")
HEADING = re.compile(r"^(#{1,6}) (.+)$")
JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.S)

# Fields an example shows as null that are null only until something happens (then a string).
NULL_OR_STRING = {"siteId", "description", "lastUsedAt", "expiresAt", "name"}


def sections(text: str | None = None) -> dict[str, str]:
    """Each heading's text (without the #s) to the body under it, up to the next heading."""
    text = API_MD.read_text(encoding="utf-8") if text is None else text
    found: dict[str, str] = {}
    heading, lines = "", []
    for line in text.splitlines():
        match = HEADING.match(line)
        if match and not lines_in_fence(lines):
            found[heading] = "\n".join(lines)
            heading, lines = match.group(2).strip(), []
        else:
            lines.append(line)
    found[heading] = "\n".join(lines)
    return found


def lines_in_fence(lines: list[str]) -> bool:
    """True inside an open ``` block (a "#" there is not a heading)."""
    return sum(line.startswith("```") for line in lines) % 2 == 1


def json_examples() -> dict[str, list[Any]]:
    """Every section that has ```json examples, parsed, by heading."""
    return {
        heading: [json.loads(block) for block in JSON_BLOCK.findall(body)]
        for heading, body in sections().items()
        if JSON_BLOCK.search(body)
    }


def json_example(heading_start: str) -> Any:
    """The one ```json example of the section whose heading starts with `heading_start`."""
    matches = {h: blocks for h, blocks in json_examples().items() if h.startswith(heading_start)}
    assert len(matches) == 1, f"API.md: no single section {heading_start!r} with JSON: {matches}"
    [blocks] = matches.values()
    assert len(blocks) == 1, f"API.md {heading_start!r}: expected one JSON example"
    return blocks[0]


def assert_like_api_md(
    actual: Any, example: Any, where: str = "", exact: frozenset[str] = frozenset()
) -> None:
    """Every field of API.md's example is there, with a value of the same JSON type; ids keep
    their prefix, timestamps are ISO 8601 in UTC with `Z`, URLs are absolute. Paths in `exact`
    (like "plan.monthlyCredits") must also have the example's value."""
    if where.lstrip(".") in exact:
        assert actual == example, f"{where}: {actual!r} differs from API.md's {example!r}"
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in example.items():
            assert key in actual, f"{where}.{key} missing (API.md has it): got {sorted(actual)}"
            assert_like_api_md(actual[key], value, f"{where}.{key}", exact)
    elif isinstance(example, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not an array"
        for item in actual if example else []:
            assert_like_api_md(item, example[0], f"{where}[]", exact)
    elif example is None:
        field = where.rsplit(".", 1)[-1]
        allowed = actual is None or (field in NULL_OR_STRING and isinstance(actual, str))
        assert allowed, f"{where}: {actual!r} where API.md has null"
    else:
        assert type(actual) is type(example), f"{where}: {actual!r} is not like {example!r}"
        if isinstance(example, str):
            assert_string_like(actual, example, where)


def assert_string_like(actual: str, example: str, where: str) -> None:
    prefix = ID_PREFIX.match(example)
    if prefix:
        assert re.fullmatch(re.escape(prefix.group(1)) + r"[0-9A-Za-z_-]+", actual), (
            f"{where}: {actual!r} is not an id like {example!r}"
        )
    if ISO_Z.match(example):
        assert ISO_Z.match(actual), f"{where}: {actual!r} is not ISO 8601 with Z like {example!r}"
    if example.startswith("https://"):
        url = urlsplit(actual)
        assert url.scheme in ("http", "https") and url.netloc, f"{where}: {actual!r} is no URL"
