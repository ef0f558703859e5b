"""A seeded generator of marketplace order exports shaped like the Olist public dataset
(``olist_orders_dataset.csv``): one row per order, Brazilian local times, date-only
estimated delivery. For tests, the docs' figures and ``forewarn simulate``-style demos.

The distributions follow what such exports show: most orders approved within the hour,
sellers handing off to the carrier in one to four days with a long tail, transit times that
grow with the distance from São Paulo, a conservative promised date, and so about 8% of the
delivered orders arrive late. A few orders are canceled or never shipped, and a two-week
carrier slowdown makes lateness come in waves, as it does in real data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

COLUMNS = (
    "order_id",
    "customer_id",
    "order_status",
    "order_purchase_timestamp",
    "order_approved_at",
    "order_delivered_carrier_date",
    "order_delivered_customer_date",
    "order_estimated_delivery_date",
)
FORMAT = "%Y-%m-%d %H:%M:%S"

# State: (share of orders, median transit days, promised days after purchase)
REGIONS: dict[str, tuple[float, float, int]] = {
    "SP": (0.42, 3.5, 14),
    "RJ": (0.13, 7.0, 20),
    "MG": (0.12, 6.5, 20),
    "RS": (0.06, 8.5, 24),
    "PR": (0.05, 7.0, 21),
    "SC": (0.04, 8.5, 23),
    "BA": (0.05, 12.0, 28),
    "PE": (0.03, 13.0, 30),
    "CE": (0.03, 15.0, 32),
    "GO": (0.03, 9.0, 23),
    "PA": (0.02, 17.0, 34),
    "AM": (0.02, 20.0, 40),
}


@dataclass(frozen=True)
class SampleSpec:
    orders: int = 3000
    seed: int = 7
    start: datetime = datetime(2017, 3, 1)
    days: int = 150
    with_region: bool = False
    """Add a ``customer_state`` column (the real export keeps it in the customers file)."""


def generate(spec: SampleSpec) -> list[dict[str, str]]:
    """The rows, sorted by purchase time."""
    rng = random.Random(spec.seed)  # noqa: S311 - a reproducible sample, not a secret
    states = list(REGIONS)
    weights = [REGIONS[s][0] for s in states]
    export_at = spec.start + timedelta(days=spec.days)
    slowdown_start = spec.start + timedelta(days=spec.days * 0.55)
    slowdown_end = slowdown_start + timedelta(days=14)
    customers: list[str] = []
    rows = []
    for n in range(spec.orders):
        if customers and rng.random() < 0.06:
            customer = rng.choice(customers[-200:])  # a returning customer
        else:
            customer = _hex(rng)
            customers.append(customer)
        # Purchases spread over the period, busier in the evening (local time).
        day = rng.uniform(0, spec.days - 1)
        hour = rng.choices(
            range(24),
            weights=[1, 1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9, 10, 10, 8, 4],
        )[0]
        purchase = spec.start + timedelta(
            days=int(day), hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60)
        )
        state = rng.choices(states, weights=weights)[0]
        _, transit_days, promise_days = REGIONS[state]
        promised = (purchase + timedelta(days=promise_days + rng.randint(-3, 2))).replace(
            hour=0, minute=0, second=0
        )
        approved: datetime | None = purchase + (
            timedelta(minutes=rng.uniform(1, 60))
            if rng.random() < 0.7
            else timedelta(hours=min(rng.lognormvariate(2.3, 0.9), 120))
        )
        fate = rng.random()
        carrier: datetime | None = None
        delivered: datetime | None = None
        status = "delivered"
        if fate < 0.006:
            status, approved = "canceled", None if rng.random() < 0.5 else approved
        elif fate < 0.012:
            status = "unavailable"
        elif fate < 0.02:
            status = rng.choice(["invoiced", "processing"])  # never handed to the carrier
        else:
            assert approved is not None
            # Seller hand-off: usually 1-4 days, sometimes a week or more.
            handoff_days = rng.lognormvariate(0.75, 0.75)
            carrier = approved + timedelta(days=min(handoff_days, 30))
            transit = rng.lognormvariate(0, 0.45) * transit_days
            if slowdown_start <= carrier < slowdown_end:
                transit += rng.uniform(3, 9)
            if rng.random() < 0.03:
                transit += rng.uniform(5, 20)  # lost and found, held at a depot
            delivered = carrier + timedelta(days=transit)
            if fate < 0.025:
                status = "canceled"  # canceled after shipping: returned to sender
                delivered = None
        # What the export knows at its own date.
        if carrier is not None and carrier > export_at:
            carrier, delivered, status = None, None, "invoiced"
        if delivered is not None and delivered > export_at:
            delivered, status = None, "shipped"
        if approved is not None and approved > export_at:
            approved, status = None, "created"
        rows.append(
            {
                "order_id": _hex(rng),
                "customer_id": customer,
                "order_status": status,
                "order_purchase_timestamp": purchase.strftime(FORMAT),
                "order_approved_at": _fmt(approved),
                "order_delivered_carrier_date": _fmt(carrier),
                "order_delivered_customer_date": _fmt(delivered),
                "order_estimated_delivery_date": promised.strftime(FORMAT),
                **({"customer_state": state} if spec.with_region else {}),
            }
        )
        del n
    rows.sort(key=lambda r: r["order_purchase_timestamp"])
    return rows


def to_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    fields = list(COLUMNS) + (["customer_state"] if rows and "customer_state" in rows[0] else [])
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _fmt(value: datetime | None) -> str:
    return value.strftime(FORMAT) if value is not None else ""


def _hex(rng: random.Random) -> str:
    return hashlib.md5(rng.randbytes(16), usedforsecurity=False).hexdigest()
