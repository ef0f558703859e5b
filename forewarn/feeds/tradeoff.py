"""The delay-risk trade-off table of ``forewarn feeds report``, from a historical export.

Reads the document with the feed's own mapping (as the replay does), keeps each order's
final state, and hands the delivered ones to :func:`forewarn.monitors.delay_risk.tradeoff`:
for each probability threshold, the share of late orders that a rule warning at that risk
would have warned by the promised moment, the share of on-time orders it would have
warned needlessly, and the median lead. Rows the mapping refuses are skipped here (the
replay beside it counts and quarantines them).
"""

from __future__ import annotations

from datetime import timedelta

from forewarn.config.schema import FeedSettings, PromiseAtRiskRule, Settings
from forewarn.feeds.mapping import OrderRecord, RowProblem, map_record
from forewarn.feeds.readers import Format, Numbered, read_records
from forewarn.monitors.delay_risk import Tradeoff, tradeoff
from forewarn.monitors.orders import OrderFacts


def order_histories(
    settings: Settings, feed: FeedSettings, data: bytes, fmt: Format
) -> list[OrderFacts]:
    """Every order of the document in its final state (canceled ones marked)."""
    merged: dict[str, OrderFacts] = {}
    for item in read_records(data, fmt, feed.records_key):
        if not isinstance(item, Numbered):
            continue
        try:
            record = map_record(feed.mapping, item.record, settings.phone_region)
        except RowProblem:
            continue
        merged[record.order_id] = _merge(merged.get(record.order_id), record)
    return list(merged.values())


def _merge(known: OrderFacts | None, record: OrderRecord) -> OrderFacts:
    milestones = {**(known.milestones if known else {}), **record.milestones}
    canceled = record.status == "canceled" or (known is not None and known.canceled_at)
    last = max(milestones.values(), default=None)
    return OrderFacts(
        id=record.order_id,
        milestones=milestones,
        promised=record.promised or (known.promised if known else None),
        carrier=record.carrier or (known.carrier if known else None),
        region=record.region or (known.region if known else None),
        canceled_at=last if canceled else None,
    )


def feed_tradeoff(
    settings: Settings,
    feed: FeedSettings,
    data: bytes,
    fmt: Format,
    *,
    step: timedelta = timedelta(hours=1),
) -> Tradeoff:
    """The trade-off table for this export, judged as the configured ``promise_at_risk``
    rule would (its ``margin`` and ``min_samples``; the defaults without one)."""
    at_risk = next(
        (r for r in settings.delays.rules if isinstance(r, PromiseAtRiskRule)),
        PromiseAtRiskRule(id="promise-at-risk", kind="promise_at_risk"),
    )
    return tradeoff(
        order_histories(settings, feed, data, fmt),
        step=step,
        margin=at_risk.margin,
        min_samples=at_risk.min_samples,
    )


def sample_tradeoff(orders: int, seed: int) -> Tradeoff:
    """The table for an Olist-shaped sample export (``forewarn feeds sample``) read with
    ``config/olist.example.yaml``'s feed: the figures in docs/delays.md."""
    from pathlib import Path

    from forewarn.config import load_config
    from forewarn.feeds.sample import SampleSpec, generate, to_csv

    example = Path(__file__).resolve().parents[2] / "config" / "olist.example.yaml"
    settings = load_config(example, {"FOREWARN_DATABASE_URL": "sqlite://"}).settings
    rows = generate(SampleSpec(orders=orders, seed=seed))
    data = to_csv(rows).encode()
    return feed_tradeoff(settings, settings.feeds[0], data, "csv")
