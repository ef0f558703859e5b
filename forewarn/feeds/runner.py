"""The feeds' scheduled work: poll the watched folders, sweep due orders, relearn transit
times. Runs on the scheduler leader only (one process decides and opens cases)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import Settings
from forewarn.feeds.folder import FolderFeed
from forewarn.feeds.intake import Intake
from forewarn.feeds.watch import OrderWatch, stats_due
from forewarn.ticketing.delays import DelayCases

log = logging.getLogger(__name__)


class FeedRunner:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._settings = settings
        self._sessions = sessions
        self.watch = OrderWatch(settings.delays, DelayCases(settings.delays))
        self.intake = Intake(settings, self.watch)
        self.folders = [
            FolderFeed(f, self.intake, sessions) for f in settings.feeds if f.kind == "folder"
        ]
        self._learned_at: datetime | None = None
        with sessions() as session:
            self.watch.load_transit(session)

    def run_once(self, now: datetime) -> None:
        """Poll every folder, relearn transit times when due, then sweep due orders."""
        for folder in self.folders:
            folder.poll(now)
        if stats_due(self._learned_at, now, self._settings.delays.stats_interval):
            with self._sessions.begin() as session:
                self.watch.learn_transit(session, now)
            self._learned_at = now
        self.watch.sweep(self._sessions, now)
