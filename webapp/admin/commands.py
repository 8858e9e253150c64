"""`flask --app wsgi copy export|import`: move published copy between environments."""

from __future__ import annotations

import json
from typing import TextIO

import click
from flask.cli import AppGroup

from webapp import plan_copy

copy_cli = AppGroup("copy", help="Export and import the published plan copy.")


@copy_cli.command("export")
def export_copy() -> None:
    """Print the published copy document as JSON (prices and credits are not part of it)."""
    published = plan_copy.published_copy()
    click.echo(json.dumps(published.document, indent=2, ensure_ascii=False))
    click.echo(f"exported copy revision {published.version}", err=True)


@copy_cli.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
def import_copy(source: TextIO) -> None:
    """Validate a copy document (a file, or - for stdin) and publish it as a new revision."""
    try:
        document = json.load(source)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"not valid JSON: {exc}") from None
    try:
        revision = plan_copy.publish(
            document,
            author_label="command line (copy import)",
            base_revision=None,  # an import is a deliberate replacement of whatever is live
        )
    except plan_copy.InvalidCopy as exc:
        problems = "\n".join(f"  - {problem}" for problem in exc.problems)
        raise click.ClickException(f"the copy was not imported:\n{problems}") from None
    except plan_copy.NothingToPublish as exc:
        click.echo(f"nothing to import: {exc}")
        return
    click.echo(f"published copy revision {revision.number} ({len(revision.changes)} changes)")
