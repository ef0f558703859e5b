"""The feeds' scheduled work: poll the watched folders and HTTP endpoints (each at its own
``interval``), sweep due orders, relearn transit times. Runs on the scheduler leader only
(one process decides and opens cases); webhooks are taken in by the web role instead."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import Settings
from forewarn.feeds.folder import FolderFeed
from forewarn.feeds.http_poll import EARLY, HttpFeed, credential_of
from forewarn.feeds.intake import Intake
from forewarn.feeds.watch import OrderWatch, stats_due
from forewarn.ticketing.delays import DelayCases

log = logging.getLogger(__name__)


class FeedRunner:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self.watch = OrderWatch(settings.delays, DelayCases(settings.delays))
        self.intake = Intake(settings, self.watch)
        self.folders = [
            FolderFeed(f, self.intake, sessions) for f in settings.feeds if f.kind == "folder"
        ]
        self.endpoints = [
            HttpFeed(f, self.intake, sessions, credential=credential_of(f, environ or {}))
            for f in settings.feeds
            if f.kind == "http"
        ]
        self._folder_polled: dict[str, datetime] = {}
        self._learned_at: datetime | None = None
        with sessions() as session:
            self.watch.load_transit(session)

    @property
    def tick(self) -> timedelta:
        """How often :meth:`run_once` should run: the order sweep's interval, or a feed's
        shorter one."""
        polled = [f.feed.interval for f in self.folders] + [e.feed.interval for e in self.endpoints]
        return min([self._settings.delays.sweep_interval, *polled])

    def run_once(self, now: datetime) -> None:
        """Poll every feed that is due, relearn transit times when due, then sweep due
        orders."""
        for folder in self.folders:
            last = self._folder_polled.get(folder.feed.name)
            if last is None or now - last >= folder.feed.interval - EARLY:
                folder.poll(now)
                self._folder_polled[folder.feed.name] = now
        for endpoint in self.endpoints:
            endpoint.poll(now)  # each keeps its own schedule and backoff in its cursor
        if stats_due(self._learned_at, now, self._settings.delays.stats_interval):
            with self._sessions.begin() as session:
                self.watch.learn_transit(session, now)
            self._learned_at = now
        self.watch.sweep(self._sessions, now)

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.close()
