"""The small Markdown subset marketing may use in copy: emphasis, links and lists, sanitised."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

# "zero" starts with paragraphs and text only; raw HTML stays disabled.
_markdown = MarkdownIt("zero").enable(["emphasis", "link", "list", "newline"])

ALLOWED_TAGS = {"p", "em", "strong", "a", "ul", "ol", "li", "br"}
ALLOWED_ATTRIBUTES = {"a": {"href"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


# Every logged-in pricing page renders the same few dozen copy strings; parsing and sanitising
# them each time cost more than the rest of the page. The copy changes only on a publish, so a
# bounded cache keyed by the text itself never serves stale HTML.
@lru_cache(maxsize=1024)
def render_markdown(text: str) -> Markup:
    """Markdown to HTML that is safe to put in a page, whatever `text` holds."""
    html = _markdown.render(text or "")
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)  # noqa: S704 -- sanitised by nh3 just above
