"""The published plan copy: names, taglines, features and page text that marketing edits.

The document is `{"page": …, "plans": {plan id: …}, "packs": {pack id: …}}`: the credit packs'
display names, short descriptions and badges are copy too. Documents published before packs had
copy have no "packs"; they load, validate and diff with the catalog's default pack copy.

Copy lives in numbered revisions (`CopyRevision`); the highest number is what visitors see. A fresh
install lazily creates revision 1 from the catalog file's default copy. Editors work on drafts
(`CopyDraft`) that remember the revision they started from, so a publish made on top of somebody
else's newer publish is refused instead of silently overwriting it.

Every request reads the current revision number (one indexed query) and reuses a per-process parsed
document while that number is unchanged, so every worker serves a new publish on its next request.
Prices, credits, plan ids and lookup keys are never part of a copy document: they come from the
catalog only.
"""

from __future__ import annotations

import copy as deepcopy_module
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from webapp.catalog import Pack, get_catalog
from webapp.extensions import db
from webapp.models.base import utcnow
from webapp.models.copy import CopyDraft, CopyRevision
from webapp.security import CSRF_PLACEHOLDER

log = logging.getLogger(__name__)

# Length limits, shown next to each field in the editor and enforced on every way in.
LIMITS = {
    "headline": 120,
    "subheadline": 300,
    "faq_question": 200,
    "faq_answer": 1000,
    "name": 40,
    "tagline": 120,
    "description": 600,
    "feature": 80,
    "badge": 32,
    "cta_label": 40,
    "pack_description": 160,
}
MAX_FEATURES = 12
MAX_FAQ_ENTRIES = 12
DISPLAY_ORDER_RANGE = (1, 99)
ALLOWED_LINK_PREFIXES = ("http://", "https://", "mailto:")

PAGE_FIELDS = ("headline", "subheadline", "faq")
PLAN_FIELDS = (
    "name",
    "tagline",
    "description",
    "features",
    "badge",
    "highlighted",
    "cta_label",
    "display_order",
)
# A pack's copy; its credits, price and lookup key are the catalog's alone.
PACK_FIELDS = ("name", "description", "badge")
FIELD_LABELS = {
    "headline": "Headline",
    "subheadline": "Sub-headline",
    "faq": "FAQ",
    "name": "Display name",
    "tagline": "Tagline",
    "description": "Description",
    "features": "Features",
    "badge": "Badge",
    "highlighted": "Highlighted",
    "cta_label": "Call-to-action label",
    "display_order": "Display order",
}
NOT_COPY_NOTE = (
    "prices, credits, plan and pack ids and lookup keys are not copy; "
    "engineering changes them in the catalog"
)


class InvalidCopy(ValueError):
    """A copy document that breaks a rule; `problems` names each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class StaleDraft(RuntimeError):
    """The copy was published by someone else after this draft (or page) started from it."""

    def __init__(self, base_revision: int, latest: CopyRevision) -> None:
        super().__init__(
            f"revision {latest.number} was published after revision {base_revision}, "
            "which this change started from"
        )
        self.base_revision = base_revision
        self.latest = latest


class NothingToPublish(ValueError):
    """The document is identical to the published copy."""


class UnknownRevision(LookupError):
    """No revision has that number."""


@dataclass(frozen=True)
class PublishedCopy:
    """A copy document and the revision number it came from. Treat `document` as read-only."""

    version: int
    document: dict[str, Any]

    def plan(self, plan_id: str) -> dict[str, Any]:
        return self.document["plans"][plan_id]

    def pack(self, pack_id: str) -> dict[str, Any]:
        """A pack's copy; the catalog's default for a pack the document predates (a preview of
        an old draft, an old revision)."""
        packs = self.document.get("packs") or {}
        return packs.get(pack_id) or get_catalog().pack(pack_id).default_copy

    @property
    def page(self) -> dict[str, Any]:
        return self.document["page"]


@dataclass(frozen=True)
class PackOffer:
    """What a "Buy credits" row shows: a catalog pack (credits, price) under its published copy."""

    pack: Pack
    copy: dict[str, Any]

    @property
    def id(self) -> str:
        return self.pack.id

    @property
    def name(self) -> str:
        return self.copy["name"]

    @property
    def description(self) -> str:
        return self.copy["description"]

    @property
    def badge(self) -> str:
        return self.copy["badge"]

    @property
    def credits(self) -> int:
        return self.pack.credits

    @property
    def amount_cents(self) -> int:
        return self.pack.amount_cents


def pack_offers(copy: PublishedCopy) -> list[PackOffer]:
    """Every catalog pack, in the catalog's order, under `copy`'s names."""
    return [PackOffer(pack, copy.pack(pack.id)) for pack in get_catalog().packs.values()]


# --- Validation -----------------------------------------------------------------------------

_MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]*)")
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def link_problems(text: str) -> list[str]:
    """Links in Markdown `text` that do not start with http://, https:// or mailto:."""
    targets = _MARKDOWN_LINK.findall(text) + _AUTOLINK.findall(text)
    return [
        f"link “{target or '(empty)'}” must start with http://, https:// or mailto:"
        for target in targets
        if not target.lower().startswith(ALLOWED_LINK_PREFIXES)
    ]


def placeholder_problem(text: str) -> str | None:
    """Why `text` may not be copy if it holds the CSRF placeholder of cached pages, else None.

    Pages are cached with the placeholder where each visitor's CSRF token goes; copy repeating
    it could try to carry members' tokens off (in a link, say). Any case: it is never wording.
    """
    if CSRF_PLACEHOLDER in text.lower():
        return (
            f"cannot contain “{CSRF_PLACEHOLDER}”: the site uses it to put security tokens in forms"
        )
    return None


def clean_line(value: str) -> str:
    """One line of plain text: control characters and line breaks become single spaces."""
    return " ".join(_CONTROL_CHARS.sub(" ", value).split())


def clean_markdown(value: str) -> str:
    """Markdown keeps its line breaks; other control characters go."""
    return _CONTROL_CHARS.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()


def _text(
    value: Any,
    where: str,
    limit: int,
    problems: list[str],
    *,
    required: bool = True,
    markdown: bool = False,
) -> str:
    if not isinstance(value, str):
        problems.append(f"{where}: must be text")
        return ""
    text = clean_markdown(value) if markdown else clean_line(value)
    if required and not text:
        problems.append(f"{where}: is required")
    if len(text) > limit:
        problems.append(f"{where}: at most {limit} characters (has {len(text)})")
    if markdown:
        problems.extend(f"{where}: {problem}" for problem in link_problems(text))
    if problem := placeholder_problem(text):
        problems.append(f"{where}: {problem}")
    return text


def _check_keys(raw: dict[str, Any], allowed: tuple[str, ...], where: str, problems: list[str]):
    for key in raw:
        if key not in allowed:
            problems.append(f"{where}: unknown field {key!r} ({NOT_COPY_NOTE})")
    for key in allowed:
        if key not in raw:
            problems.append(f"{where}: missing field {key!r}")


def _faq(value: Any, problems: list[str]) -> list[dict[str, str]]:
    if not isinstance(value, list):
        problems.append("page.faq: must be a list")
        return []
    if len(value) > MAX_FAQ_ENTRIES:
        problems.append(f"page.faq: at most {MAX_FAQ_ENTRIES} entries")
    entries = []
    for index, raw in enumerate(value, start=1):
        where = f"page.faq[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must have a question and an answer")
            continue
        _check_keys(raw, ("question", "answer"), where, problems)
        question = _text(raw.get("question"), f"{where}.question", LIMITS["faq_question"], problems)
        answer = _text(
            raw.get("answer"), f"{where}.answer", LIMITS["faq_answer"], problems, markdown=True
        )
        entries.append({"question": question, "answer": answer})
    return entries


def _page(raw: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.append("page: must be an object")
        return {}
    _check_keys(raw, PAGE_FIELDS, "page", problems)
    return {
        "headline": _text(raw.get("headline"), "page.headline", LIMITS["headline"], problems),
        "subheadline": _text(
            raw.get("subheadline", ""),
            "page.subheadline",
            LIMITS["subheadline"],
            problems,
            required=False,
        ),
        "faq": _faq(raw.get("faq", []), problems),
    }


def _features(value: Any, where: str, problems: list[str]) -> list[str]:
    if not isinstance(value, list):
        problems.append(f"{where}: must be a list")
        return []
    features = [
        _text(item, f"{where}[{i}]", LIMITS["feature"], problems)
        for i, item in enumerate(value, start=1)
    ]
    if not features:
        problems.append(f"{where}: list at least one feature")
    if len(features) > MAX_FEATURES:
        problems.append(f"{where}: at most {MAX_FEATURES} features")
    return features


def _display_order(value: Any, where: str, problems: list[str]) -> int:
    low, high = DISPLAY_ORDER_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{where}: must be a whole number from {low} to {high}")
        return low
    return value


def _plan(raw: Any, where: str, problems: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return {}
    _check_keys(raw, PLAN_FIELDS, where, problems)
    if not isinstance(raw.get("highlighted", False), bool):
        problems.append(f"{where}.highlighted: must be true or false")

    def text(key: str, **options: bool) -> str:
        return _text(raw.get(key, ""), f"{where}.{key}", LIMITS[key], problems, **options)

    return {
        "name": text("name"),
        "tagline": text("tagline"),
        "description": text("description", required=False, markdown=True),
        "features": _features(raw.get("features"), f"{where}.features", problems),
        "badge": text("badge", required=False),
        "highlighted": raw.get("highlighted") is True,
        "cta_label": text("cta_label"),
        "display_order": _display_order(
            raw.get("display_order"), f"{where}.display_order", problems
        ),
    }


def _pack(raw: Any, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return {}
    _check_keys(raw, PACK_FIELDS, where, problems)
    return {
        "name": _text(raw.get("name", ""), f"{where}.name", LIMITS["name"], problems),
        "description": _text(
            raw.get("description", ""),
            f"{where}.description",
            LIMITS["pack_description"],
            problems,
            required=False,
        ),
        "badge": _text(
            raw.get("badge", ""), f"{where}.badge", LIMITS["badge"], problems, required=False
        ),
    }


def _packs(raw: Any, problems: list[str]) -> dict[str, Any]:
    """Every catalog pack's copy. A document without "packs" (published before packs had copy),
    or without a pack engineering added since, gets the catalog's default for it."""
    if not isinstance(raw, dict):
        problems.append("packs: must be an object keyed by pack id")
        return {}
    catalog_packs = get_catalog().packs
    for pack_id in raw:
        if pack_id not in catalog_packs:
            problems.append(f"packs: unknown pack {pack_id!r} ({NOT_COPY_NOTE})")
    return {
        pack_id: _pack(raw[pack_id], f"packs.{pack_id}", problems)
        if pack_id in raw
        else pack.default_copy
        for pack_id, pack in catalog_packs.items()
    }


def validate_document(raw: Any) -> dict[str, Any]:
    """A clean copy of `raw` (a copy document) or InvalidCopy listing every problem."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise InvalidCopy(["the copy must be an object with 'page' and 'plans'"])
    # "packs" may be missing: documents exported or drafted before packs had copy still load.
    _check_keys({"packs": {}, **raw}, ("page", "plans", "packs"), "copy", problems)
    page = _page(raw.get("page"), problems)
    plans_raw = raw.get("plans")
    plan_ids = list(get_catalog().plans)
    plans: dict[str, Any] = {}
    if not isinstance(plans_raw, dict):
        problems.append("plans: must be an object keyed by plan id")
    else:
        for plan_id in plans_raw:
            if plan_id not in plan_ids:
                problems.append(f"plans: unknown plan {plan_id!r} ({NOT_COPY_NOTE})")
        for plan_id in plan_ids:
            if plan_id not in plans_raw:
                problems.append(f"plans: missing plan {plan_id!r}")
            else:
                plans[plan_id] = _plan(plans_raw[plan_id], f"plans.{plan_id}", problems)
    packs = _packs(raw.get("packs", {}), problems)
    if problems:
        raise InvalidCopy(problems)
    return {"page": page, "plans": plans, "packs": packs}


# --- Diff and merge -------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " · ".join(_show(item) for item in value) or "(none)"
    if isinstance(value, dict):
        return f"{value.get('question', '')} — {value.get('answer', '')}"
    return str(value) if value != "" else "(empty)"


def _list_note(before: list[Any], after: list[Any]) -> str:
    added = [item for item in after if item not in before]
    removed = [item for item in before if item not in after]
    notes = [f"added “{_show(item)}”" for item in added]
    notes += [f"removed “{_show(item)}”" for item in removed]
    kept_before = [item for item in before if item in after]
    kept_after = [item for item in after if item in before]
    if kept_before != kept_after:
        notes.append("reordered")
    return "; ".join(notes)


def _change(where: str, key: str, before: Any, after: Any) -> dict[str, str]:
    note = _list_note(before, after) if isinstance(before, list) else ""
    return {
        "where": where,
        "field": FIELD_LABELS[key],
        "before": _show(before),
        "after": _show(after),
        "note": note,
    }


def _with_default_packs(*documents: dict[str, Any]) -> list[dict[str, Any]]:
    """`documents` compared side by side, each with copy for the same packs: a document that
    predates packs' copy (or a pack) gets the catalog's default for it, so an old revision's
    packs read as what visitors saw, never as empty (phantom changes, or a merge that clears
    them)."""
    pack_sets = {frozenset(doc["packs"]) if "packs" in doc else None for doc in documents}
    if len(pack_sets) == 1:
        return list(documents)  # alike already (and no catalog needed: pure for tests)
    defaults = get_catalog().default_copy()["packs"]
    return [{**doc, "packs": {**defaults, **doc.get("packs", {})}} for doc in documents]


def diff_documents(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, str]]:
    """What changed from `before` to `after`, field by field, in words an editor can read."""
    before, after = _with_default_packs(before, after)
    changes = [
        _change("Page", key, before["page"].get(key), after["page"].get(key))
        for key in PAGE_FIELDS
        if before["page"].get(key) != after["page"].get(key)
    ]
    for plan_id, new in after["plans"].items():
        old = before["plans"].get(plan_id, {})
        where = new.get("name") or plan_id
        changes += [
            _change(where, key, old.get(key), new.get(key))
            for key in PLAN_FIELDS
            if old.get(key) != new.get(key)
        ]
    for pack_id, new in after.get("packs", {}).items():
        old = before.get("packs", {}).get(pack_id, {})
        where = f"{new.get('name') or pack_id} (credit pack)"
        changes += [
            _change(where, key, old.get(key), new.get(key))
            for key in PACK_FIELDS
            if old.get(key) != new.get(key)
        ]
    return changes


def summarise(changes: list[dict[str, str]]) -> str:
    """A one-line summary of `changes` for the history list."""
    fields = ", ".join(f"{change['where']} {change['field'].lower()}" for change in changes)
    summary = f"Changed {fields}"
    return summary if len(summary) <= 200 else summary[:199] + "…"


def _leaf_paths(document: dict[str, Any]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [("page", key) for key in PAGE_FIELDS]
    paths += [("plans", pid, key) for pid in document["plans"] for key in PLAN_FIELDS]
    packs = document.get("packs", {})
    return paths + [("packs", pid, key) for pid in packs for key in PACK_FIELDS]


def _get(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = document
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def merge_documents(
    base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Apply the fields I changed since `base` on top of `theirs`; name fields we both changed."""
    base, mine, theirs = _with_default_packs(base, mine, theirs)
    merged = deepcopy_module.deepcopy(theirs)
    conflicts = []
    for path in _leaf_paths(theirs):
        base_value, my_value, their_value = (_get(doc, path) for doc in (base, mine, theirs))
        if my_value == base_value:
            continue
        _set(merged, path, deepcopy_module.deepcopy(my_value))
        if their_value not in (base_value, my_value):
            where = "Page" if path[0] == "page" else _get(theirs, (*path[:2], "name"))
            conflicts.append(f"{where} · {FIELD_LABELS[path[-1]]}")
    return merged, conflicts


# --- Reading the published copy -------------------------------------------------------------


@dataclass
class _ParsedCopyCache:
    """This process's parsed copy for one app, replaced whenever the published number moves."""

    copy: PublishedCopy | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, version: int) -> PublishedCopy:
        cached = self.copy
        if cached is not None and cached.version == version:
            return cached
        fresh = PublishedCopy(version, _revision_document(version))
        with self.lock:
            if self.copy is None or self.copy.version < fresh.version:
                self.copy = fresh
        return fresh


def _cache() -> _ParsedCopyCache:
    return current_app.extensions.setdefault("plan_copy_cache", _ParsedCopyCache())


def _revision_document(number: int) -> dict[str, Any]:
    document = db.session.scalar(select(CopyRevision.document).where(CopyRevision.number == number))
    if document is None:
        raise UnknownRevision(f"no copy revision {number}")
    return with_catalog_defaults(document)


def with_catalog_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """`document`, plus the catalog's default copy for any plan or pack it predates.

    Engineering may add a plan or a pack to the catalog after copy was published, and documents
    published before packs had copy have no "packs" at all; their cards must still render.
    """
    defaults = get_catalog().default_copy()  # a fresh deep copy, safe to hand out
    filled = dict(document)
    for section in ("plans", "packs"):
        present = document.get(section) or {}
        missing = {key: copy for key, copy in defaults[section].items() if key not in present}
        if missing or section not in document:
            filled[section] = {**present, **missing}
    return filled


def _create_first_revision() -> None:
    """Publish the catalog's default copy as revision 1, once, however many workers race."""
    row = {
        "number": 1,
        # Deep copy: default_copy() shares its nested lists with the loaded catalog.
        "document": deepcopy_module.deepcopy(get_catalog().default_copy()),
        "author_label": "catalog default",
        "summary": "Default copy from the catalog file",
        "changes": [],
        "created_at": utcnow(),
    }
    try:
        # Its own short transaction, so a read-only request does not commit anything else.
        with db.engine.begin() as connection:
            connection.execute(insert(CopyRevision).values(**row))
    except IntegrityError:
        pass  # another worker created revision 1 first, which is all we wanted
    else:
        log.info("created copy revision 1 from the catalog default copy")


def current_version() -> int:
    """The published revision number: one query on the unique index of `number`."""
    number = _latest_number()
    if number is None:
        _create_first_revision()
        number = _latest_number()
    assert number is not None, "the first revision was just created"
    return number


def _latest_number() -> int | None:
    query = select(func.max(CopyRevision.number))
    if db.session().in_transaction():
        return db.session.scalar(query)  # sees this transaction's own, uncommitted publish
    # Outside a transaction, e.g. on the anonymous pricing page, which is otherwise served from
    # cache, an autocommit connection answers in one round trip instead of three (BEGIN, the
    # query, ROLLBACK): the page's only database work, on the busiest page.
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection.scalar(query)


def published_copy(version: int | None = None) -> PublishedCopy:
    """The copy every visitor sees now (read once per request, parsed once per publish); or
    that of `version`, for a caller that knows which is published (webapp/page_cache.py)."""
    if version is not None:
        return _cache().get(version)
    memo = g.get("_published_copy")
    if memo is None:
        memo = g._published_copy = _cache().get(current_version())
    return memo


def latest_revision() -> CopyRevision:
    number = current_version()
    return db.session.scalars(select(CopyRevision).where(CopyRevision.number == number)).one()


def get_revision(number: int) -> CopyRevision:
    revision = db.session.scalar(select(CopyRevision).where(CopyRevision.number == number))
    if revision is None:
        raise UnknownRevision(f"no copy revision {number}")
    return revision


def list_revisions() -> list[CopyRevision]:
    """Every revision, newest first."""
    current_version()
    return list(db.session.scalars(select(CopyRevision).order_by(CopyRevision.number.desc())))


def revisions_between(after: int, up_to: int) -> list[CopyRevision]:
    """Revisions published after number `after`, up to and including `up_to`, oldest first."""
    query = (
        select(CopyRevision)
        .where(CopyRevision.number > after, CopyRevision.number <= up_to)
        .order_by(CopyRevision.number)
    )
    return list(db.session.scalars(query))


# --- Drafts and publishing ------------------------------------------------------------------


def get_draft(editor_id: int) -> CopyDraft | None:
    return db.session.scalar(select(CopyDraft).where(CopyDraft.editor_id == editor_id))


def save_draft(editor_id: int, document: dict[str, Any]) -> CopyDraft:
    """Keep `editor_id`'s work; a new draft starts from the revision published now."""
    clean = validate_document(document)
    base = current_version()
    draft = get_draft(editor_id)
    if draft is None:
        draft = CopyDraft(editor_id=editor_id, base_revision=base, document=clean)
        db.session.add(draft)
    else:
        draft.document = clean
        draft.updated_at = utcnow()
    try:
        db.session.commit()
    except IntegrityError:
        # The same editor saved from two tabs at once; the other tab's insert won. Update it.
        db.session.rollback()
        draft = get_draft(editor_id)
        if draft is None:
            raise
        draft.document = clean
        db.session.commit()
    return draft


def discard_draft(editor_id: int) -> None:
    db.session.execute(delete(CopyDraft).where(CopyDraft.editor_id == editor_id))
    db.session.commit()


def rebase_draft(editor_id: int) -> list[str]:
    """Move a stale draft onto the newest revision, keeping the editor's own changes.

    Returns the fields that both the editor and the newer revision changed (the editor's wins).
    """
    draft = get_draft(editor_id)
    latest = latest_revision()
    if draft is None or draft.base_revision == latest.number:
        return []
    base_document = get_revision(draft.base_revision).document
    merged, conflicts = merge_documents(base_document, draft.document, latest.document)
    draft.document = validate_document(merged)
    draft.base_revision = latest.number
    db.session.commit()
    return conflicts


def publish(
    document: dict[str, Any],
    *,
    author_label: str,
    author_id: int | None = None,
    base_revision: int | None,
    summary: str = "",
    reverted_from: int | None = None,
) -> CopyRevision:
    """Make `document` the copy everyone sees, as one new revision, in one transaction.

    `base_revision` is the revision the change started from; if another revision was published
    since, StaleDraft is raised and nothing changes. `None` means "on top of whatever is latest"
    (the command-line import). Publishing deletes the author's draft in the same transaction.
    """
    clean = validate_document(document)
    latest = latest_revision()
    if base_revision is not None and base_revision != latest.number:
        raise StaleDraft(base_revision, latest)
    changes = diff_documents(latest.document, clean)
    if not changes:
        raise NothingToPublish(f"the copy is already the same as revision {latest.number}")
    revision = CopyRevision(
        number=latest.number + 1,
        document=clean,
        author_id=author_id,
        author_label=author_label,
        summary=summary or summarise(changes),
        changes=changes,
        reverted_from=reverted_from,
    )
    db.session.add(revision)
    if author_id is not None and reverted_from is None:
        db.session.execute(delete(CopyDraft).where(CopyDraft.editor_id == author_id))
    try:
        db.session.commit()
    except IntegrityError:
        # Another publish took number N+1 between our read and our commit: refuse, never merge.
        db.session.rollback()
        raise StaleDraft(base_revision or latest.number, latest_revision()) from None
    g.pop("_published_copy", None)
    # The user id, never the label: an editor's label is their email, which logs must not carry.
    author = f"user {author_id}" if author_id is not None else author_label
    log.info("copy revision %s published by %s", revision.number, author)
    return revision


def revert_to(
    number: int, *, author_label: str, author_id: int | None, expected_latest: int | None
) -> CopyRevision:
    """Publish revision `number`'s copy again, as a new revision."""
    target = get_revision(number)
    return publish(
        deepcopy_module.deepcopy(with_catalog_defaults(target.document)),
        author_label=author_label,
        author_id=author_id,
        base_revision=expected_latest,
        summary=f"Reverted to revision {number}",
        reverted_from=number,
    )
