"""Company details: the company name, billing address and VAT number on the member's invoices
(`/account/company`). Saved to the member's Stripe customer, with our copy for the account
page (webapp/billing/company.py)."""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from webapp import billing
from webapp.account.forms import CompanyDetailsForm
from webapp.billing.company import (
    CompanyDetailsInvalid,
    CompanyInput,
    company_details,
    save_company_details,
)
from webapp.catalog import get_checkout_options
from webapp.countries import COUNTRIES

bp = Blueprint("company", __name__, url_prefix="/account")
log = logging.getLogger(__name__)


@bp.after_request
def keep_private(response: Response) -> Response:
    # An address and a VAT number: never kept by a browser or proxy cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/company", methods=["GET", "POST"])
@login_required
def edit() -> Response | tuple[str, int] | str:
    form = CompanyDetailsForm()
    if not form.is_submitted():
        _prefill(form)
        return _page(form)
    if not form.validate():
        return _page(form, status=400)
    data = CompanyInput(
        name=form.value("name"),
        country=form.value("country"),
        line1=form.value("line1"),
        line2=form.value("line2"),
        city=form.value("city"),
        postal_code=form.value("postal_code"),
        state=form.value("state"),
        vat_number=form.value("vat_number"),
    )
    try:
        save_company_details(current_user, data)
    except CompanyDetailsInvalid as exc:
        field = getattr(form, exc.field, None) if exc.field else None
        if field is not None:
            field.errors = [exc.message]
        else:
            form.form_errors.append(exc.message)
        return _page(form, status=400)
    except billing.PaymentProviderError as exc:
        log.warning("company details of user %s: payment provider failed: %s", current_user.id, exc)
        form.form_errors.append(
            "We could not reach our payment provider, so nothing was changed. Please try again."
        )
        return _page(form, status=502)
    flash("Company details saved. Your next invoices show them.", "success")
    return redirect(url_for("account.index") + "#company", code=303)


def _prefill(form: CompanyDetailsForm) -> None:
    row = company_details(current_user.id)
    if row is None:
        return
    for name in ("name", "country", "line1", "line2", "city", "postal_code", "state"):
        getattr(form, name).data = getattr(row, name) or ""
    form.vat_number.data = row.tax_id_value or ""


def _page(form: CompanyDetailsForm, status: int = 200) -> tuple[str, int]:
    return render_template(
        "account/company.html",
        form=form,
        automatic_tax=get_checkout_options().automatic_tax,
        countries=COUNTRIES,
    ), status
