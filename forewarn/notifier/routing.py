"""Which queue a customer's free text belongs to, by keyword rules per language (pure).

The rules are tried in the customer's own language first (``pt-BR`` -> ``pt``), then in
every other language, because a Thai customer may well write "invoice". The first rule
with a hit wins. A keyword written in Latin letters matches whole words, ignoring case
(``bill`` is not in ``billion``); Chinese and Thai are written without spaces between
words, so theirs match anywhere in the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from forewarn.config.schema import RoutingRule


@dataclass(frozen=True)
class Route:
    queue: str
    keyword: str | None
    """The keyword that chose the queue; None: no rule matched (the default queue)."""
    language: str | None = None


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _spaced(keyword: str) -> bool:
    """Whether the keyword's script separates words with spaces (Latin and the like)."""
    return all(ord(c) < 0x2E80 and not 0x0E00 <= ord(c) <= 0x0E7F for c in keyword)


def _hit(text: str, keyword: str) -> bool:
    word = normalise(keyword).strip()
    if not word:
        return False
    if _spaced(word):
        return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None
    return word in text


def route(text: str, locale: str, rules: Sequence[RoutingRule], default_queue: str) -> Route:
    """The queue for ``text`` from a customer who reads ``locale``."""
    normal = normalise(text)
    own = [locale, locale.split("-", 1)[0]]
    for pass_own in (True, False):
        for rule in rules:
            for language, keywords in rule.keywords.items():
                if (language in own) != pass_own:
                    continue
                for keyword in keywords:
                    if _hit(normal, keyword):
                        return Route(rule.queue, keyword, language)
    return Route(default_queue, None)
