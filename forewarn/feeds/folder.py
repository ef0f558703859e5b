"""The watched-folder adapter: new and changed CSV/JSON files, each content processed once.

A file is identified by its path and the SHA-256 of its bytes: the same file seen again is
skipped, a changed file is read again (its unchanged rows change nothing). The
``feed_files`` row is written first, in the same transaction as the file's orders, so two
processes racing for one file cannot both take it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import FeedSettings
from forewarn.feeds.intake import Intake, IntakeCount
from forewarn.feeds.readers import DocumentProblem, format_of, read_records
from forewarn.store.feeds import FileTaken, file_seen, quarantine, take_file

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0
"""A file modified more recently than this may still be being written: next time."""


class FolderFeed:
    def __init__(
        self,
        feed: FeedSettings,
        intake: Intake,
        sessions: sessionmaker[Session],
        *,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        assert feed.path is not None
        self.feed = feed
        self._folder = Path(feed.path)
        self._intake = intake
        self._sessions = sessions
        self._missing_logged = False
        self._settle = settle

    def poll(self, now: datetime) -> IntakeCount:
        """Process every new or changed file; returns what was taken in."""
        total = IntakeCount()
        if not self._folder.is_dir():
            if not self._missing_logged:
                log.warning("feed %s: folder %s does not exist", self.feed.name, self._folder)
                self._missing_logged = True
            return total
        if self._missing_logged:
            log.info("feed %s: folder %s is back", self.feed.name, self._folder)
            self._missing_logged = False
        for path in sorted(self._folder.glob(self.feed.pattern)):
            fmt = format_of(path.name)
            if fmt is None or not path.is_file():
                continue
            try:
                if time.time() - path.stat().st_mtime < self._settle:
                    continue
                data = path.read_bytes()
            except OSError as exc:
                log.warning("feed %s: cannot read %s: %s", self.feed.name, path, exc)
                continue
            total.add(self.process(path, data, fmt, now))
        return total

    def process(self, path: Path, data: bytes, fmt: str, now: datetime) -> IntakeCount:
        digest = hashlib.sha256(data).hexdigest()
        with self._sessions() as session:
            if file_seen(session, self.feed.name, str(path), digest):
                return IntakeCount()
        try:
            with self._sessions.begin() as session:
                record = take_file(session, self.feed.name, str(path), digest, len(data), now)
                try:
                    count = self._intake.take(
                        session,
                        self.feed,
                        read_records(data, fmt, self.feed.records_key),  # type: ignore[arg-type]
                        str(path),
                        now,
                    )
                except DocumentProblem as exc:
                    count = IntakeCount(quarantined=1, problems=[str(exc)])
                    record.error = str(exc)
                    quarantine(session, self.feed.name, str(path), data, str(exc), now)
                record.rows, record.accepted = count.rows, count.accepted
                record.quarantined = count.quarantined
        except FileTaken:
            return IntakeCount()  # another process took this file
        log.info(
            "feed %s: %s: %d rows, %d stored, %d unchanged, %d quarantined",
            self.feed.name,
            path.name,
            count.rows,
            count.accepted,
            count.unchanged,
            count.quarantined,
        )
        return count
