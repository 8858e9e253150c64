"""Plan copy revisions (what visitors see) and editors' drafts (what they are working on).

Only `webapp.plan_copy` writes these tables (see STYLE.md, "commits happen in few places").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow


class CopyRevision(Model):
    """One published version of all the copy. The highest `number` is what visitors see.

    `number` is unique, so two publishes racing to become revision N+1 cannot both succeed.
    """

    __tablename__ = "copy_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who published, as a label that outlives the account ("ada@example.com", "command line").
    author_label: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    summary: Mapped[str] = mapped_column(String(200), default="")
    # Readable changes against the previous revision: [{"where", "field", "before", "after"}].
    changes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    reverted_from: Mapped[int | None] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<CopyRevision {self.number}>"


class CopyDraft(Model):
    """An editor's unpublished copy, and the revision it started from (to detect overwrites)."""

    __tablename__ = "copy_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    base_revision: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<CopyDraft editor={self.editor_id} base={self.base_revision}>"
