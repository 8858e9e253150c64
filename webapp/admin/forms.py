"""Forms of the copy editor. Prices and credits have no field here, so no POST can change them."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from webapp.plan_copy import (
    DISPLAY_ORDER_RANGE,
    LIMITS,
    MAX_FAQ_ENTRIES,
    MAX_FEATURES,
    clean_line,
    clean_markdown,
    link_problems,
    placeholder_problem,
    with_catalog_defaults,
)

# Blank rows offered after the existing FAQ entries, so entries can be added without JavaScript.
BLANK_FAQ_ROWS = 2


def _line(value: str | None) -> str | None:
    return clean_line(value) if isinstance(value, str) else value


def _markdown(value: str | None) -> str | None:
    return clean_markdown(value) if isinstance(value, str) else value


def _length(key: str) -> Length:
    limit = LIMITS[key]
    return Length(max=limit, message=f"At most {limit} characters.")


def _safe_links(_form: Form, field: StringField) -> None:
    problems = link_problems(field.data or "")
    if problems:
        raise ValidationError(" ".join(problem.capitalize() + "." for problem in problems))


def _no_placeholder(_form: Form, field: StringField) -> None:
    problem = placeholder_problem(field.data or "")
    if problem:
        raise ValidationError(problem[0].upper() + problem[1:] + ".")


def feature_lines(text: str | None) -> list[str]:
    """The features typed one per line, in order, blank lines dropped."""
    return [clean_line(line) for line in (text or "").splitlines() if clean_line(line)]


def _features_valid(_form: Form, field: TextAreaField) -> None:
    features = feature_lines(field.data)
    if not features:
        raise ValidationError("List at least one feature.")
    if len(features) > MAX_FEATURES:
        raise ValidationError(f"At most {MAX_FEATURES} features.")
    too_long = [line for line in features if len(line) > LIMITS["feature"]]
    if too_long:
        raise ValidationError(
            f"Each feature has at most {LIMITS['feature']} characters: “{too_long[0][:40]}…”."
        )


def _required_line(label: str, limit: str) -> StringField:
    """A required one-line text field of the copy, within LIMITS[limit]."""
    return StringField(
        label,
        filters=[_line],
        validators=[DataRequired("Required."), _length(limit), _no_placeholder],
    )


class PlanCopyForm(Form):
    """The copy of one plan. A sub-form: the page form carries the CSRF token."""

    name = _required_line("Display name", "name")
    tagline = _required_line("Tagline", "tagline")
    description = TextAreaField(
        "Description",
        filters=[_markdown],
        validators=[_length("description"), _safe_links, _no_placeholder],
    )
    features = TextAreaField("Features", validators=[_features_valid, _no_placeholder])
    badge = StringField("Badge", filters=[_line], validators=[_length("badge"), _no_placeholder])
    highlighted = BooleanField("Highlight this plan")
    cta_label = _required_line("Call-to-action label", "cta_label")
    display_order = IntegerField(
        "Display order",
        validators=[
            InputRequired("Enter a whole number."),
            NumberRange(*DISPLAY_ORDER_RANGE, message="From %(min)s to %(max)s."),
        ],
    )


class PackCopyForm(Form):
    """The copy of one credit pack: how our pages and the API name and describe it."""

    name = _required_line("Display name", "name")
    description = StringField(
        "Short description",
        filters=[_line],
        validators=[_length("pack_description"), _no_placeholder],
    )
    badge = StringField("Badge", filters=[_line], validators=[_length("badge"), _no_placeholder])


class FaqEntryForm(Form):
    question = StringField(
        "Question",
        filters=[_line],
        validators=[Optional(), _length("faq_question"), _no_placeholder],
    )
    answer = TextAreaField(
        "Answer",
        filters=[_markdown],
        validators=[_length("faq_answer"), _safe_links, _no_placeholder],
    )

    def validate_answer(self, field: TextAreaField) -> None:
        # A row is either blank (removed) or complete.
        if bool(self.question.data) != bool(field.data):
            raise ValidationError("Give both a question and an answer, or clear both to remove.")


class CopyEditorForm(FlaskForm):
    """The whole copy document; one FormField per plan and per pack is added by
    `editor_form_class`."""

    headline = StringField(
        "Headline",
        filters=[_line],
        validators=[DataRequired("Required."), _length("headline"), _no_placeholder],
    )
    subheadline = TextAreaField(
        "Sub-headline", filters=[_line], validators=[_length("subheadline"), _no_placeholder]
    )
    # Labelled so the error summary names an entry "FAQ question 2 · Answer".
    faq = FieldList(
        FormField(FaqEntryForm), "FAQ question", max_entries=MAX_FAQ_ENTRIES + BLANK_FAQ_ROWS
    )
    save = SubmitField("Save draft")
    preview = SubmitField("Save and preview")
    publish = SubmitField("Save and publish")

    plan_ids: tuple[str, ...] = ()
    pack_ids: tuple[str, ...] = ()

    def plan_forms(self) -> list[tuple[str, PlanCopyForm]]:
        # `.form`, not the FormField: a FormField's own `.name` would hide the "name" sub-field.
        return [(plan_id, self[plan_id].form) for plan_id in self.plan_ids]

    def pack_forms(self) -> list[tuple[str, PackCopyForm]]:
        return [(pack_id, self[pack_id].form) for pack_id in self.pack_ids]

    def validate_faq(self, field: FieldList) -> None:
        entries = [entry for entry in field.data if entry["question"]]
        if len(entries) > MAX_FAQ_ENTRIES:
            raise ValidationError(f"At most {MAX_FAQ_ENTRIES} questions.")

    def to_document(self) -> dict[str, Any]:
        """The copy document the submitted fields describe."""
        page = {
            "headline": self.headline.data,
            "subheadline": self.subheadline.data or "",
            "faq": [
                {"question": entry["question"], "answer": entry["answer"]}
                for entry in self.faq.data
                if entry["question"] or entry["answer"]
            ],
        }
        plans = {}
        for plan_id, sub in self.plan_forms():
            data = dict(sub.data)
            data["features"] = feature_lines(data["features"])
            data["description"] = data["description"] or ""
            data["badge"] = data["badge"] or ""
            plans[plan_id] = data
        packs = {
            pack_id: {key: sub.data[key] or "" for key in ("name", "description", "badge")}
            for pack_id, sub in self.pack_forms()
        }
        return {"page": page, "plans": plans, "packs": packs}


def editor_form_class(
    plan_ids: tuple[str, ...], pack_ids: tuple[str, ...] = ()
) -> type[CopyEditorForm]:
    """A CopyEditorForm with one sub-form per catalog plan and pack, named by its id (pack ids
    start with "pkg_", so they never meet a plan id or a page field)."""
    fields: dict[str, Any] = {plan_id: FormField(PlanCopyForm) for plan_id in plan_ids}
    fields |= {pack_id: FormField(PackCopyForm) for pack_id in pack_ids}
    attributes = {**fields, "plan_ids": plan_ids, "pack_ids": pack_ids}
    return type("PlanCopyEditorForm", (CopyEditorForm,), attributes)


def form_data(document: dict[str, Any]) -> dict[str, Any]:
    """A copy document as the editor form's initial data (features one per line)."""
    page = document["page"]
    faq = list(page.get("faq", []))
    blank_rows = max(0, min(BLANK_FAQ_ROWS, MAX_FAQ_ENTRIES - len(faq)))
    faq += [{"question": "", "answer": ""}] * blank_rows
    data: dict[str, Any] = {
        "headline": page["headline"],
        "subheadline": page.get("subheadline", ""),
        "faq": faq,
    }
    for plan_id, plan in document["plans"].items():
        data[plan_id] = {**plan, "features": "\n".join(plan["features"])}
    # A draft saved before packs had copy has none: the form shows the catalog's defaults.
    for pack_id, pack in with_catalog_defaults(document)["packs"].items():
        data[pack_id] = dict(pack)
    return data


class EmptyForm(FlaskForm):
    """For button-only POSTs (publish the draft, discard, rebase): just the CSRF token."""


class RevertForm(FlaskForm):
    # The newest revision the editor saw: reverting on top of a newer one is refused.
    expected_latest = HiddenField()
