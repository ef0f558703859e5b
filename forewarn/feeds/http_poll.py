"""The HTTP polling adapter: a JSON endpoint read on the feed's interval.

Where the feed stands lives in its ``feed_cursors`` row: the ``ETag`` / ``Last-Modified``
validators sent back as ``If-None-Match`` / ``If-Modified-Since`` (304 means nothing new),
when to poll next, and the run of failures. A document's orders and the new validators are
written in one transaction, so a crash between them re-reads the document, which changes
nothing (idempotent upserts). The cursor is a row, not memory, so a new scheduler leader
keeps the old one's validators and backoff.

Errors (5xx and every other non-2xx answer, timeouts, refused connections, a document that
is not JSON) back off exponentially with jitter, from the feed's ``interval`` up to
``max_backoff``; the first failure of a run is logged as a warning and the recovery once.
Pagination: a ``Link: <...>; rel="next"`` header is followed (same origin only, so the
credential never leaves for another host), and all pages go in one transaction.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import FeedSettings
from forewarn.feeds.intake import Intake, IntakeCount
from forewarn.feeds.readers import DocumentProblem, Numbered, Unreadable, read_records
from forewarn.store.feeds import cursor, cursor_for_update, quarantine

log = logging.getLogger(__name__)

MAX_PAGES = 50
"""A ``rel="next"`` chain longer than this is a loop or a mistake: the poll fails."""
EARLY = timedelta(seconds=1)
"""A poll this much before it is due still runs: the scheduler's ticks drift a little, and
a tick that comes a millisecond early must not wait a whole interval more."""


class PollError(Exception):
    """One poll failed; the feed backs off and tries again (there is no permanent verdict:
    a 401 or 404 is a configuration problem that an operator fixes while it retries).

    ``document`` holds the body when the endpoint answered something that is not a usable
    JSON document, so it can be quarantined.
    """

    def __init__(self, message: str, *, document: bytes | None = None) -> None:
        super().__init__(message)
        self.document = document


@dataclass(frozen=True)
class Page:
    url: str
    body: bytes


@dataclass(frozen=True)
class Fetched:
    """What one poll brought: no pages when the endpoint said 304 Not Modified."""

    pages: tuple[Page, ...]
    etag: str | None
    last_modified: str | None


class HttpFeed:
    """Polls ``feed.url`` when due; ``credential`` is the auth header's value (from the
    environment variable ``feed.auth_env``; never logged)."""

    def __init__(
        self,
        feed: FeedSettings,
        intake: Intake,
        sessions: sessionmaker[Session],
        *,
        credential: str | None,
        transport: httpx.BaseTransport | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        assert feed.url is not None
        self.feed = feed
        self._intake = intake
        self._sessions = sessions
        self._credential = credential
        self._jitter = jitter
        self._client = httpx.Client(
            timeout=feed.timeout.total_seconds(), transport=transport, follow_redirects=True
        )

    def close(self) -> None:
        self._client.close()

    def poll(self, now: datetime) -> IntakeCount:
        """Fetch and take in the document if the feed is due at ``now``."""
        with self._sessions() as session:
            standing = cursor(session, self.feed.name)
            due = standing.next_poll_at if standing is not None else None
            if due is not None and now < due - EARLY:
                return IntakeCount()
            etag = standing.etag if standing is not None else None
            modified = standing.last_modified if standing is not None else None
        try:
            fetched = self.fetch(etag, modified)
            pages = [(page.url, self._records(page)) for page in fetched.pages]
        except PollError as exc:
            self._failed(now, exc)
            return IntakeCount()
        count = IntakeCount()
        with self._sessions.begin() as session:
            for url, records in pages:
                count.add(self._intake.take(session, self.feed, records, url, now))
            mine = cursor_for_update(session, self.feed.name)
            recovered = mine.failures
            if fetched.pages:
                mine.etag = fetched.etag[:256] if fetched.etag else None
                mine.last_modified = fetched.last_modified[:64] if fetched.last_modified else None
            mine.last_polled_at = mine.last_success_at = now
            mine.next_poll_at = now + self.feed.interval
            mine.failures = 0
            mine.last_error = None
        if recovered:
            log.info("feed %s: %s answers again after %d failed polls", *self._says(recovered))
        if fetched.pages:
            log.info(
                "feed %s: %d records, %d stored, %d unchanged, %d quarantined",
                self.feed.name,
                count.rows,
                count.accepted,
                count.unchanged,
                count.quarantined,
            )
        return count

    def fetch(self, etag: str | None, last_modified: str | None) -> Fetched:
        """GET the document (and its next pages); 304 gives no pages."""
        headers: dict[str, str] = {"Accept": "application/json"}
        if self.feed.auth_env and not self._credential:
            raise PollError(f"the environment variable {self.feed.auth_env} is not set")
        if self._credential:
            headers[self.feed.auth_header] = self._credential
        first = dict(headers)
        if etag:
            first["If-None-Match"] = etag
        if last_modified:
            first["If-Modified-Since"] = last_modified
        url = self.feed.url
        assert url is not None
        response = self._get(url, first)
        if response.status_code == 304:
            return Fetched((), etag, last_modified)
        pages = [Page(str(response.url), response.content)]
        validators = response.headers.get("ETag"), response.headers.get("Last-Modified")
        origin = response.url
        while (following := response.links.get("next", {}).get("url")) is not None:
            target = origin.join(following)
            if (target.scheme, target.host, target.port) != (
                origin.scheme,
                origin.host,
                origin.port,
            ):
                raise PollError(f"next page {target} is on another host; not followed")
            if len(pages) >= MAX_PAGES:
                raise PollError(f"more than {MAX_PAGES} pages")
            response = self._get(str(target), headers)
            pages.append(Page(str(response.url), response.content))
        return Fetched(tuple(pages), *validators)

    def _get(self, url: str, headers: Mapping[str, str]) -> httpx.Response:
        try:
            response = self._client.get(url, headers=headers)
        except httpx.TimeoutException as exc:
            raise PollError(f"no answer within {self.feed.timeout.total_seconds():g}s") from exc
        except httpx.HTTPError as exc:
            raise PollError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 304 and not response.is_success:
            raise PollError(f"HTTP {response.status_code}")
        return response

    def _records(self, page: Page) -> list[Numbered | Unreadable]:
        try:
            # read_records is lazy: list() makes a broken document fail here, as a whole,
            # before anything of it is written.
            return list(read_records(page.body, "json", self.feed.records_key))
        except DocumentProblem as exc:
            raise PollError(f"{page.url}: {exc}", document=page.body) from exc

    def _failed(self, now: datetime, error: PollError) -> None:
        message = str(error)
        with self._sessions.begin() as session:
            mine = cursor_for_update(session, self.feed.name)
            mine.failures += 1
            if error.document is not None and message != mine.last_error:
                # The same broken document retried is quarantined once, not once per poll.
                origin = self.feed.url or ""
                quarantine(session, self.feed.name, origin, error.document, message, now)
            mine.last_error = message
            mine.last_polled_at = now
            mine.next_poll_at = now + backoff(
                mine.failures, self.feed.interval, self.feed.max_backoff, self._jitter()
            )
            failures = mine.failures
        if failures == 1:
            log.warning(
                "feed %s: polling %s fails (%s); backing off up to %s",
                self.feed.name,
                self.feed.url,
                message,
                self.feed.max_backoff,
            )
        else:
            log.debug("feed %s: poll failed again (%d): %s", self.feed.name, failures, message)

    def _says(self, failures: int) -> tuple[str, str | None, int]:
        return self.feed.name, self.feed.url, failures


def backoff(failures: int, interval: timedelta, ceiling: timedelta, jitter: float) -> timedelta:
    """The wait after ``failures`` failed polls in a row: ``interval``, doubling per failure,
    capped at ``ceiling``, then scaled into its upper half by ``jitter`` (0..1) so that
    feeds failing together do not retry together."""
    factor: float = 2.0 ** min(failures - 1, 30)
    delay = min(ceiling, interval * factor)
    return delay * (0.5 + 0.5 * jitter)


def credential_of(feed: FeedSettings, environ: Mapping[str, str]) -> str | None:
    """The value of ``feed.auth_env`` in ``environ`` (``None`` when unset or empty)."""
    return (environ.get(feed.auth_env) or None) if feed.auth_env else None
