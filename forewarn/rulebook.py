"""The rules a process runs: provisioned from the file, versioned in the database, reloaded.

**The file and the database.** At start (:func:`provision`) the digest of the file's
``monitors`` section, as written, is compared with the digest recorded when the file was
last provisioned:

* first start: the file's rules become version 1 (author ``file``);
* the file is unchanged since it was provisioned: the database's current version stands,
  console and API edits included;
* the file changed: its rules become a new version (author ``file``), on top of whatever
  the console saved; the diff in the history shows what the file undid. If the changed
  file holds exactly the current version's rules (``forewarn rules export`` written back
  into the file), only the digest is recorded.

So the newest deliberate change wins: an edit in the console stands until someone edits the
file, and an edit of the file stands until someone saves in the console.

**Reloading.** Every process keeps the version it runs (:class:`RuleBook`) and compares
it with the ``rule_set`` row: before every ingest batch and scheduled sweep
(:meth:`RuleBook.refresh`, one primary-key read), and every ``rules.reload_interval`` in a
thread (:class:`RuleWatcher`) for processes that only serve the console. A new version is
validated with the same schema as the file and handed to the listeners (the monitors).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import Config
from forewarn.config.loading import RulesInvalid, validate_monitors
from forewarn.config.rules import describe_diff, rules_data
from forewarn.config.schema import MonitorSettings, Settings
from forewarn.store import audit, rulesets

log = logging.getLogger(__name__)

FILE_AUTHOR = "file"


@dataclass(frozen=True)
class Loaded:
    """One rule-set version as a process runs it."""

    number: int
    monitors: tuple[MonitorSettings, ...]
    data: list[dict[str, Any]]


Listener = Callable[[Loaded, Loaded], None]
"""Called with (the version run until now, the new one) after a reload."""


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` did: the version before (None on a first start) and now."""

    before: int | None
    current: int

    @property
    def changed(self) -> bool:
        return self.before != self.current


def provision(session: Session, config: Config, now: datetime) -> Provisioned:
    """Reconcile the file's rules with the database (see the module docstring). Runs in
    ``session``'s transaction, holding the pointer row."""
    row = rulesets.pointer(session, lock=True)
    before = row.version
    file_rules = rules_data(config.settings.monitors)
    digest = config.rules_digest
    if row.version is not None and row.file_digest == digest:
        stored = rulesets.version(session, row.version)
        assert stored is not None
        try:
            validate_monitors(config.settings, stored.rules, f"rule version {stored.id}")
            return Provisioned(before, row.version)
        except RulesInvalid as problem:
            # This forewarn (or this file's fleet) no longer accepts the stored version:
            # run the file's rules, as a recorded version, rather than refuse to start.
            log.error("rule version %s is no longer valid: %s", stored.id, problem)
            comment = f"version {stored.id} no longer validates ({problem}); the file's rules"
            return Provisioned(before, _from_file(session, config, file_rules, now, comment))
    if row.version is not None:
        stored = rulesets.version(session, row.version)
        if stored is not None and stored.rules == file_rules:
            row.file_digest = digest  # e.g. the export written back into the file
            return Provisioned(before, row.version)
        comment = f"{config.source} changed since its rules were last provisioned"
    else:
        comment = f"provisioned from {config.source}"
    return Provisioned(before, _from_file(session, config, file_rules, now, comment))


def _from_file(
    session: Session, config: Config, rules: list[dict[str, Any]], now: datetime, comment: str
) -> int:
    saved = rulesets.save(
        session,
        rules,
        author=FILE_AUTHOR,
        source="file",
        comment=comment,
        now=now,
        file_digest=config.rules_digest,
    )
    lines = describe_diff(saved.diff)
    audit.record(
        session,
        at=now,
        actor=FILE_AUTHOR,
        kind="rules.provision",
        subject="rules",
        summary=f"version {saved.version} from {config.source}"
        + (f": {len(lines)} change(s)" if lines else ""),
        reason=comment,
        detail={"version": saved.version, "diff": saved.diff},
    )
    log.info("rules: version %s from %s (%s)", saved.version, config.source, comment)
    return saved.version


class RuleBook:
    """The rule-set version this process runs, and who to tell when it changes."""

    def __init__(self, config: Config, sessions: sessionmaker[Session]) -> None:
        self.config = config
        self._sessions = sessions
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.loaded = Loaded(0, config.settings.monitors, rules_data(config.settings.monitors))
        self._failed: int | None = None

    @property
    def number(self) -> int:
        return self.loaded.number

    @property
    def monitors(self) -> tuple[MonitorSettings, ...]:
        return self.loaded.monitors

    def settings(self) -> Settings:
        """The file's settings with the current version's rules."""
        return self.config.settings.model_copy(update={"monitors": self.loaded.monitors})

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def start(self, session: Session) -> None:
        """Load the current version (after :func:`provision`), telling nobody."""
        number = rulesets.current_number(session)
        if number is not None:
            found = self._read(session, number)
            if found is not None:
                self.loaded = found

    def read(self, session: Session, number: int) -> Loaded | None:
        """Version ``number`` as this process would run it; None if missing or invalid."""
        if number == self.loaded.number:
            return self.loaded
        return self._read(session, number, quiet=True)

    def refresh(self, session: Session | None = None) -> bool:
        """Load the current version if it is not the one run; True if it changed.

        A version this process cannot validate is logged once and not run (the previous
        one stays)."""
        if session is None:
            with self._sessions() as own:
                return self.refresh(own)
        number = rulesets.current_number(session)
        if number is None or number == self.loaded.number or number == self._failed:
            return False
        with self._lock:
            if number == self.loaded.number:
                return False
            found = self._read(session, number)
            if found is None:
                return False
            before, self.loaded = self.loaded, found
            for listener in self._listeners:
                listener(before, found)
        log.info("rules: now running version %s (was %s)", found.number, before.number)
        return True

    def _read(self, session: Session, number: int, *, quiet: bool = False) -> Loaded | None:
        stored = rulesets.version(session, number)
        if stored is None:
            return None
        try:
            monitors = validate_monitors(
                self.config.settings, stored.rules, f"rule version {number}"
            )
        except RulesInvalid as problem:
            if quiet:
                return None
            if self._failed != number:
                log.error("rules: version %s is not valid here, not run: %s", number, problem)
            self._failed = number
            return None
        return Loaded(number, monitors, list(stored.rules))


class RuleWatcher:
    """Polls the ``rule_set`` row every ``interval`` in a daemon thread, so a process that
    ingests nothing still follows the rules within seconds. Logs once when the database
    cannot be read and once when it can again."""

    def __init__(self, book: RuleBook, interval: timedelta) -> None:
        self._book = book
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-reload", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._book.refresh()
            except SQLAlchemyError as problem:
                if not self._failing:
                    log.warning(
                        "rules: cannot read the current version: %s", type(problem).__name__
                    )
                self._failing = True
                continue
            if self._failing:
                log.info("rules: reading the current version again")
            self._failing = False
