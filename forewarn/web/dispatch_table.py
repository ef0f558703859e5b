"""The ticket's dispatch record (``tickets.dispatch``) as tables a person can read.

The record is written by ``ticketing/dispatch.py``::

    {"chosen": "tech-1", "reason": "...",
     "candidates": [{"technician": "tech-1", "score": 0.4, "distance_km": 12.0, ...}],
     "excluded": {"tech-3": "lacks skill 'inverter'"}}

It is JSON frozen at decision time, so older rows may differ; anything this module does
not recognise is still shown, as key and value, instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from forewarn.web.formatting import label, scalar

_ID_KEYS = ("technician", "technician_id", "id")


@dataclass(frozen=True)
class CandidateRow:
    """A technician who passed the hard filters, with the scoring inputs."""

    technician_id: str
    name: str
    chosen: bool
    cells: tuple[str, ...]


@dataclass(frozen=True)
class ExcludedRow:
    """A technician filtered out, and why."""

    technician_id: str
    name: str
    reason: str


@dataclass(frozen=True)
class DispatchTable:
    """The dispatch record ready for a template."""

    chosen_id: str | None
    chosen_name: str | None
    reason: str | None
    columns: tuple[str, ...] = ()
    """Headings of the candidate cells, after the technician."""
    candidates: tuple[CandidateRow, ...] = ()
    """In the order the dispatcher ranked them (best first)."""
    excluded: tuple[ExcludedRow, ...] = ()
    other: tuple[tuple[str, str], ...] = field(default=())
    """Keys of the record this module does not know, as (heading, value)."""

    @property
    def empty(self) -> bool:
        """Nothing was recorded (tickets from before dispatch, or none attempted)."""
        return not (self.chosen_id or self.reason or self.candidates or self.excluded or self.other)


def mentioned_technicians(record: Mapping[str, Any]) -> set[str]:
    """Every technician id in the record, to look their names up in one query."""
    ids = {str(record["chosen"])} if record.get("chosen") else set()
    ids.update(row_id for row_id, _ in _candidate_items(record.get("candidates")))
    ids.update(row_id for row_id, _ in _excluded_items(record.get("excluded")))
    return ids


def dispatch_table(record: Mapping[str, Any], names: Mapping[str, str]) -> DispatchTable:
    """Turn the record into rows; ``names`` maps technician ids to display names."""
    chosen = record.get("chosen")
    chosen_id = str(chosen) if chosen else None
    candidates = list(_candidate_items(record.get("candidates")))
    columns: list[str] = []
    for _, values in candidates:
        columns.extend(key for key in values if key not in columns)
    rows = tuple(
        CandidateRow(
            technician_id=row_id,
            name=names.get(row_id, row_id),
            chosen=row_id == chosen_id,
            cells=tuple(scalar(values.get(key)) for key in columns),
        )
        for row_id, values in candidates
    )
    excluded = tuple(
        ExcludedRow(technician_id=row_id, name=names.get(row_id, row_id), reason=reason)
        for row_id, reason in _excluded_items(record.get("excluded"))
    )
    known = {"chosen", "reason", "candidates", "excluded"}
    reason = record.get("reason")
    return DispatchTable(
        chosen_id=chosen_id,
        chosen_name=names.get(chosen_id, chosen_id) if chosen_id else None,
        reason=str(reason) if reason else None,
        columns=tuple(label(key) for key in columns),
        candidates=rows,
        excluded=excluded,
        other=tuple((label(k), scalar(v)) for k, v in record.items() if k not in known),
    )


def _candidate_items(value: Any) -> Iterable[tuple[str, dict[str, Any]]]:
    if isinstance(value, Mapping):  # {"tech-1": {"score": ...}} or {"tech-1": 0.4}
        for key, item in value.items():
            yield str(key), dict(item) if isinstance(item, Mapping) else {"score": item}
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                row_id = next((str(item[k]) for k in _ID_KEYS if item.get(k)), "?")
                yield row_id, {k: v for k, v in item.items() if k not in _ID_KEYS}
            else:
                yield str(item), {}


def _excluded_items(value: Any) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):  # {"tech-3": "reason"} or {"tech-3": ["a", "b"]}
        for key, reason in value.items():
            yield str(key), _reason(reason)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                row_id = next((str(item[k]) for k in _ID_KEYS if item.get(k)), "?")
                yield row_id, _reason(item.get("reason", item.get("reasons")))
            else:
                yield str(item), "—"


def _reason(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "—" if value is None else str(value)
