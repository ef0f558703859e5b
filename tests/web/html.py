"""Reading a console page as a person would: its visible text, whole or of one element."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_VOID = {"meta", "link", "br", "hr", "img", "input"}


class _Text(HTMLParser):
    def __init__(self, element_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.element_id = element_id
        self.depth = 0 if element_id is None else -1
        self.skip = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        if tag in {"style", "script", "title"}:
            self.skip += 1
        if self.depth >= 0 and (self.depth > 0 or self.element_id is None):
            self.depth += 1
        elif self.depth < 0 and dict(attrs).get("id") == self.element_id:
            self.depth = 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if tag in {"style", "script", "title"}:
            self.skip -= 1
        if self.depth > 0:
            self.depth -= 1
            if self.depth == 0 and self.element_id is not None:
                self.depth = -2  # done: ignore the rest of the page
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        inside = self.depth > 0 or (self.element_id is None and self.depth == 0)
        if inside and not self.skip:
            self.parts.append(data)


def visible_text(html: str, element_id: str | None = None) -> str:
    """The text a reader sees (whitespace collapsed), of the page or of the element ``id``."""
    parser = _Text(element_id)
    parser.feed(html)
    parser.close()
    if element_id is not None and parser.depth == -1:
        raise AssertionError(f"no element with id {element_id!r} on the page")
    return re.sub(r"\s+", " ", "".join(parser.parts)).strip()
