"""Reading feed documents (CSV, JSON, JSON Lines) into numbered records.

A record that cannot even be parsed (a JSON line that is not JSON, a CSV row with more
fields than the header) comes out as a :class:`Unreadable` with its line number, so the
caller quarantines it and goes on with the rest.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Format = Literal["csv", "json", "jsonl"]


class DocumentProblem(ValueError):
    """The whole document is unusable (not UTF-8, not JSON, no list of records)."""


@dataclass(frozen=True)
class Numbered:
    """One record and where it came from (1-based line; for JSON arrays, the item)."""

    line: int
    record: dict[str, Any]
    raw: bytes


@dataclass(frozen=True)
class Unreadable:
    line: int
    raw: bytes
    reason: str


def format_of(name: str) -> Format | None:
    lowered = name.lower()
    for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if lowered.endswith(suffix):
            return fmt  # type: ignore[return-value]
    return "json" if lowered.endswith(".json") else None


def read_records(
    data: bytes, fmt: Format, records_key: str | None = None
) -> Iterator[Numbered | Unreadable]:
    """Yield the document's records in order."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentProblem(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if fmt == "csv":
        yield from _csv(text)
    elif fmt == "jsonl":
        yield from _jsonl(text)
    else:
        yield from _json(text, records_key)


def _csv(text: str) -> Iterator[Numbered | Unreadable]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise DocumentProblem(f"line 1: not CSV ({exc})") from exc
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise DocumentProblem("line 1: the header repeats a column name")
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Unreadable(line, b"", f"not CSV ({exc})")
            continue
        raw = ",".join(row).encode()
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield Unreadable(line, raw, f"{len(row)} fields where the header has {len(header)}")
            continue
        yield Numbered(line, dict(zip(header, row, strict=True)), raw)


def _jsonl(text: str) -> Iterator[Numbered | Unreadable]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        raw = line.encode()
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Unreadable(number, raw, f"not JSON ({exc.msg})")
            continue
        except RecursionError:  # [[[[... deeper than Python's stack: not a record
            yield Unreadable(number, raw, "not JSON (nested too deeply)")
            continue
        if not isinstance(value, dict):
            yield Unreadable(number, raw, "not a JSON object")
            continue
        yield Numbered(number, value, raw)


def _json(text: str, records_key: str | None) -> Iterator[Numbered | Unreadable]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentProblem(f"line {exc.lineno}: not JSON ({exc.msg})") from exc
    except RecursionError:  # [[[[... deeper than Python's stack
        raise DocumentProblem("not JSON (nested too deeply)") from None
    for key in records_key.split(".") if records_key else ():
        if not isinstance(document, dict) or key not in document:
            raise DocumentProblem(f"no {records_key!r} in the document")
        document = document[key]
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise DocumentProblem("the document holds no list of records")
    for number, value in enumerate(document, start=1):
        raw = json.dumps(value, default=str).encode()
        if not isinstance(value, dict):
            yield Unreadable(number, raw, "record is not a JSON object")
            continue
        yield Numbered(number, value, raw)
