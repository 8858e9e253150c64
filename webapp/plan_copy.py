"""The published plan copy: names, taglines, features and page text that marketing edits.

A fresh install serves the catalog file's default copy. Callers get a `PublishedCopy` with a
`version` that changes on every publish, so caches keyed by it are never stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.catalog import get_catalog


@dataclass(frozen=True)
class PublishedCopy:
    version: int
    document: dict[str, Any]

    def plan(self, plan_id: str) -> dict[str, Any]:
        return self.document["plans"][plan_id]

    @property
    def page(self) -> dict[str, Any]:
        return self.document["page"]


def published_copy() -> PublishedCopy:
    """The copy every visitor sees now."""
    return PublishedCopy(version=1, document=get_catalog().default_copy())
