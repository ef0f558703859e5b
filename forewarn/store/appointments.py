"""Visit windows in SQL (the :class:`~forewarn.ports.AppointmentStore`)."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, false, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from forewarn.ports import HOLDING, AppointmentRecord
from forewarn.store.models import Base


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_technician_window", "technician_id", "start_at"),
        Index("ix_appointments_customer_status", "customer_id", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    technician_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str | None] = mapped_column(String(128))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    batch: Mapped[int] = mapped_column(Integer)
    option: Mapped[int] = mapped_column(Integer)
    offered_at: Mapped[datetime]
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    confirmed_at: Mapped[datetime | None]
    confirmed_via: Mapped[str | None] = mapped_column(String(16))
    remind_at: Mapped[datetime | None] = mapped_column(index=True)
    reminded_at: Mapped[datetime | None]
    return_visit: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


_FIELDS = [f.name for f in fields(AppointmentRecord)]


def _record(row: Appointment) -> AppointmentRecord:
    return AppointmentRecord(**{name: getattr(row, name) for name in _FIELDS})


class SqlAppointmentStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, appointment: AppointmentRecord) -> AppointmentRecord:
        values = asdict(appointment)
        values.pop("id")
        row = Appointment(**values)
        self._session.add(row)
        self._session.flush()
        return _record(row)

    def update(self, appointment: AppointmentRecord) -> None:
        row = self._session.get(Appointment, appointment.id)
        assert row is not None, f"appointment {appointment.id} was never stored"
        for name, value in asdict(appointment).items():
            setattr(row, name, value)
        self._session.flush()

    def get(self, appointment_id: int) -> AppointmentRecord | None:
        row = self._session.get(Appointment, appointment_id, populate_existing=True)
        return None if row is None else _record(row)

    def of_ticket(self, ticket_id: int) -> list[AppointmentRecord]:
        rows = self._session.scalars(
            select(Appointment)
            .where(Appointment.ticket_id == ticket_id)
            .order_by(Appointment.batch, Appointment.option, Appointment.id)
        )
        return [_record(r) for r in rows]

    def holding(
        self, technician_id: str, since: datetime, until: datetime, *, other_than: int
    ) -> list[AppointmentRecord]:
        rows = self._session.scalars(
            select(Appointment)
            .where(
                Appointment.technician_id == technician_id,
                Appointment.status.in_(HOLDING),
                Appointment.ticket_id != other_than,
                Appointment.end_at > since,
                Appointment.start_at < until,
            )
            .order_by(Appointment.start_at, Appointment.id)
        )
        return [_record(r) for r in rows]

    def offered_to(self, customer_id: str) -> list[AppointmentRecord]:
        latest = (
            select(Appointment.ticket_id, func.max(Appointment.batch).label("batch"))
            .where(Appointment.customer_id == customer_id)
            .group_by(Appointment.ticket_id)
            .subquery()
        )
        rows = self._session.scalars(
            select(Appointment)
            .join(
                latest,
                (latest.c.ticket_id == Appointment.ticket_id)
                & (latest.c.batch == Appointment.batch),
            )
            .where(Appointment.customer_id == customer_id, Appointment.status == "offered")
            .order_by(
                Appointment.offered_at.desc(), Appointment.ticket_id.desc(), Appointment.option
            )
        )
        return [_record(r) for r in rows]

    def reminders_due(self, now: datetime, limit: int) -> list[AppointmentRecord]:
        rows = self._session.scalars(
            select(Appointment)
            .where(
                Appointment.status == "confirmed",
                Appointment.remind_at <= now,
                Appointment.reminded_at.is_(None),
            )
            .order_by(Appointment.remind_at, Appointment.id)
            .limit(limit)
        )
        return [_record(r) for r in rows]
