"""Monitor rules: scope, overrides and every rule kind."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from forewarn.config.schema.base import Duration, Identifier, Model, Severity
from forewarn.config.schema.care import SelfServiceSteps


class Selector(Model):
    """Which devices a monitor applies to; empty means every device; all given lists must
    match."""

    kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


class Override(Model):
    """A per-model, per-site or per-device change of a threshold's levels."""

    model: str | None = None
    site: str | None = None
    device: str | None = None
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    for_: Duration | None = Field(None, alias="for")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Confirmation(Model):
    """Another rule that must agree before this rule's alert opens a ticket."""

    rule: Identifier
    """The confirming monitor's id (for example a forecast confirming a baseline breach)."""
    within: Duration = timedelta(hours=6)
    """It agrees if it fired on the same device no longer than this before (or while)
    this rule's alert is firing; until then the alert waits, shown as "waiting for
    confirmation by <rule>", and opens no ticket."""


class MonitorBase(Model):
    """Keys common to every monitor."""

    id: Identifier
    """Unique name of the rule; it appears in alerts, tickets and messages."""
    description: str = ""
    """What the rule is for, for the people tuning it."""
    severity: Severity = "major"
    """Severity of its alerts; drives ticket priority, SLA and quiet-hours bypass (critical)."""
    applies_to: Selector = Selector()
    """Which devices the rule watches (by kind, model, site or id); empty means all."""
    notify: bool = True
    """Open a ticket and notify when this monitor fires."""
    self_service: SelfServiceSteps | None = None
    """Steps the customer can safely take first (their first notice offers them; FIXED
    with the telemetry back to normal closes the ticket without a visit)."""
    requires: Confirmation | None = None
    """Confirmation: open a ticket only when the rule named here fired on the same device
    within ``within`` (see docs/rules.md, "Confirmation")."""


class ThresholdMonitor(MonitorBase):
    """A metric above or below a level, optionally for a while, with hysteresis."""

    kind: Literal["threshold"]
    metric: str
    """The metric name (see ``broker.payload.metrics``)."""
    above: float | None = None
    """Fire when the value is above this level..."""
    below: float | None = None
    """...or below this one."""
    clear: float | None = None
    """Level the value must cross back over to resolve (hysteresis). Default: the firing level."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the condition must hold before the alert fires."""
    count: int = Field(1, ge=1, le=1000)
    """N in a row: fire only after this many consecutive readings beyond the level (and
    ``for``, if set, has passed too)."""
    clear_for: Duration = timedelta(0)
    """How long the value must stay at the clear level before the alert resolves."""
    overrides: tuple[Override, ...] = ()
    """Levels for a model, site or single device (device beats site beats model)."""
    suggested_fix: str = ""
    """Goes into the technician's work order."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _one_direction(self) -> ThresholdMonitor:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of 'above' or 'below'")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"clear ({self.clear}) must not be above 'above' ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"clear ({self.clear}) must not be below 'below' ({self.below})")
        return self


class OfflineMonitor(MonitorBase):
    """No reading from a device for a while; fires at the timeout, survives restarts."""

    kind: Literal["offline"]
    after: Duration
    """Fire when a device has sent nothing for this long."""
    metric: str | None = None
    """Absence of one metric: fire when the device has sent no reading of this metric for
    ``after``, even if it still sends others. Empty: any reading counts."""

    @field_validator("after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class FaultCode(Model):
    """What one fault code means."""

    severity: Severity = "major"
    description: str
    """Human description; appears in the work order and the customer's notice."""
    suggested_fix: str = ""
    """Knowledge-base advice for the technician."""
    self_service: SelfServiceSteps | None = None
    """Customer-safe steps for this code (beats the monitor's own ``self_service``)."""


class FaultCodeMonitor(MonitorBase):
    """Fault/status codes reported by the device, evaluated as each reading arrives."""

    kind: Literal["fault_code"]
    codes: dict[str, FaultCode]
    """Code -> what it means. A more severe listed code while another's alert is open
    raises that alert's severity (and its ticket's priority)."""
    clear_codes: tuple[str, ...] = ("OK",)
    """Codes that mean the device is healthy again: they clear the alert. Any other
    unlisted code (junk, an unknown status) is stored but leaves a real fault open. Empty:
    any unlisted code clears."""


class RateMonitor(MonitorBase):
    """Rate of change: a metric rising (or falling) faster than a limit, measured as the
    least-squares slope of the readings in a sliding window."""

    kind: Literal["rate"]
    metric: str
    rise: float | None = None
    """Fire when the metric rises faster than this many units per ``per``..."""
    fall: float | None = None
    """...or falls faster than this many units per ``per`` (a positive number)."""
    per: Duration = timedelta(hours=1)
    """The time unit of ``rise`` and ``fall``."""
    window: Duration = timedelta(minutes=15)
    """Readings of the last ``window`` (event time) give the slope."""
    min_readings: int = Field(3, ge=2)
    """Fewer readings in the window decide nothing (noise, gaps)."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the slope must stay beyond the limit before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _one_direction(self) -> RateMonitor:
        if (self.rise is None) == (self.fall is None):
            raise ValueError("set exactly one of 'rise' or 'fall'")
        if (self.rise is not None and self.rise <= 0) or (self.fall is not None and self.fall <= 0):
            raise ValueError("'rise' and 'fall' are positive rates")
        if self.window <= timedelta(0) or self.per <= timedelta(0):
            raise ValueError("'window' and 'per' must be positive durations")
        return self


class DriftMonitor(MonitorBase):
    """Trend: the moving average of the last ``window`` drifting from the device's own
    baseline (the average of the ``baseline`` before that window) by more than a limit."""

    kind: Literal["drift"]
    metric: str
    window: Duration = timedelta(hours=1)
    """The moving average: readings of the last ``window`` (event time)."""
    baseline: Duration = timedelta(days=1)
    """The device's own baseline: the average of the readings in this span just before
    ``window``."""
    by: float | None = Field(None, gt=0)
    """Fire when the moving average is more than this many units from the baseline..."""
    by_relative: float | None = Field(None, gt=0, le=10)
    """...or more than this fraction of the baseline (``0.15``: 15 %); with both, both."""
    direction: Literal["above", "below", "both"] = "both"
    """Which drift is a problem: upwards, downwards or either."""
    min_readings: int = Field(3, ge=1)
    """Fewer readings in the window, or in the baseline, decide nothing."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the drift must last before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _limited(self) -> DriftMonitor:
        if self.by is None and self.by_relative is None:
            raise ValueError("set 'by' (units) or 'by_relative' (a fraction of the baseline)")
        if self.window <= timedelta(0) or self.baseline <= timedelta(0):
            raise ValueError("'window' and 'baseline' must be positive durations")
        return self


class PeerMonitor(MonitorBase):
    """Fleet-peer deviation: a device far from the median of its cohort (same model at the
    same site or region) by more than ``deviations`` robust deviations (MAD), for a while.

    Evaluated on the scheduler over every device's latest reading in one set-based query;
    devices already alarming are left out of the baseline."""

    kind: Literal["fleet_peer"]
    metric: str
    direction: Literal["below", "above", "both"] = "below"
    """Which side of the cohort is a problem."""
    deviations: float = Field(3.0, gt=0)
    """How many scaled MADs (1.4826 x median absolute deviation) away counts as far."""
    min_difference: float = Field(0.0, ge=0)
    """And at least this far from the median in absolute units (a flat cohort has MAD 0)."""
    min_relative: float = Field(0.0, ge=0, le=10)
    """And at least this fraction of the median, e.g. ``0.2`` for 20 % below the peers."""
    cohort: Literal["site", "region"] = "site"
    """Peers are devices of the same model at the same site, or in the same region."""
    min_cohort: int = Field(5, ge=3)
    """Cohorts with fewer fresh, non-alarming devices decide nothing."""
    fresh: Duration = timedelta(minutes=15)
    """Only latest readings younger than this (event time) count."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the device must stay far from its peers before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )


class BaselineMonitor(MonitorBase):
    """Learned baseline: a band learned from the device's own history of this metric, per
    hour of the day (or of the week), after a warm-up; fires when a reading leaves it for
    ``for`` and resolves, with hysteresis, when readings are back well inside it.

    The band is learned once an hour by the scheduler, in one set-based pass over the
    fleet: the hour's mean and spread of each device update an outlier-clamped,
    exponentially weighted centre and spread (memory ``window``). Hours in which the
    device had an alert of a rule on this metric (or a fault code), or was in a silence or
    maintenance window, teach nothing. The learned band is stored (it survives restarts)
    and is the same in replay and live."""

    kind: Literal["baseline"]
    metric: str
    direction: Literal["above", "below", "both"] = "both"
    """Which side of the band is a problem."""
    deviations: float = Field(4.0, gt=0)
    """Half-width of the band in learned standard deviations (readings around the hour's
    learned centre, noise and within-hour cycle included)."""
    clear_deviations: float | None = Field(None, gt=0)
    """Readings must come back within this many deviations to resolve (hysteresis).
    Default: three quarters of ``deviations``."""
    min_difference: float = Field(0.0, ge=0)
    """And at least this far from the centre in the metric's units (a very steady device
    would otherwise alarm on its sensor's resolution)."""
    min_relative: float = Field(0.0, ge=0, le=10)
    """And at least this fraction of the centre (``0.05``: 5 %)."""
    seasonality: Literal["none", "daily", "weekly"] = "daily"
    """A band per UTC hour of the day (``daily``), per hour of the week (``weekly``), or
    one band for all hours (``none``). Changing it starts learning afresh."""
    window: Duration = timedelta(days=14)
    """The band's memory: roughly how far back the device's history counts. Shorter
    follows a drifting normal range faster but learns slow degradations sooner."""
    warmup: Duration = timedelta(days=3)
    """Learning time before the band is used (each hour slot needs this much history's
    worth, and at least three learned hours); until then the rule decides nothing."""
    for_: Duration = Field(timedelta(minutes=30), alias="for")
    """How long readings must stay outside the band before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _learnable(self) -> BaselineMonitor:
        slots = {"none": 1, "daily": 24, "weekly": 168}[self.seasonality]
        if self.window < timedelta(hours=2 * slots):
            raise ValueError(
                f"'window' must hold at least two hours per slot ({2 * slots} h with "
                f"seasonality {self.seasonality})"
            )
        if self.warmup < timedelta(0):
            raise ValueError("'warmup' must not be negative")
        if self.clear_deviations is not None and self.clear_deviations > self.deviations:
            raise ValueError("'clear_deviations' must not be above 'deviations'")
        return self


class ForecastMonitor(MonitorBase):
    """Time to limit: the recent trend of a metric (a robust Theil-Sen line through the
    last ``window``) predicts when it crosses a hard limit; fires when that is within
    ``horizon``. Like Prometheus's ``predict_linear`` or Zabbix's ``timeleft``. The notice
    says when: "expected to reach 95 °C in about 4 h"."""

    kind: Literal["forecast"]
    metric: str
    above: float | None = None
    """The hard limit the metric rises towards..."""
    below: float | None = None
    """...or falls towards."""
    unit: str = ""
    """The metric's unit as people write it (``°C``, ``bar``), for the notices."""
    horizon: Duration = timedelta(hours=12)
    """Fire when the predicted crossing is no further away than this."""
    clear_horizon: Duration | None = None
    """Resolve only when the predicted crossing is further away than this (or the trend
    turned). Default: twice ``horizon``."""
    window: Duration = timedelta(hours=6)
    """The readings of the last ``window`` (event time) give the trend."""
    min_readings: int = Field(6, ge=3)
    """Fewer readings in the window decide nothing (gaps, dropouts)."""
    for_: Duration = Field(timedelta(0), alias="for")
    """How long the forecast must stay within the horizon before the alert fires."""
    suggested_fix: str = ""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _one_limit(self) -> ForecastMonitor:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of 'above' or 'below'")
        if self.window <= timedelta(0) or self.horizon <= timedelta(0):
            raise ValueError("'window' and 'horizon' must be positive durations")
        if self.clear_horizon is not None and self.clear_horizon < self.horizon:
            raise ValueError("'clear_horizon' must not be shorter than 'horizon'")
        return self


MonitorSettings = Annotated[
    ThresholdMonitor
    | OfflineMonitor
    | FaultCodeMonitor
    | RateMonitor
    | DriftMonitor
    | PeerMonitor
    | BaselineMonitor
    | ForecastMonitor,
    Field(discriminator="kind"),
]
