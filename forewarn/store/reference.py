"""Reference data from the config (customers, sites, devices, technicians) into the store.

The config file is the source of truth for who and what exists; the store keeps what
forewarn learns about them (last seen, opt-outs). Syncing never erases that.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from forewarn.config.schema import Settings
from forewarn.store.models import Customer, Device, Site, Technician


def sync_reference_data(session: Session, settings: Settings, now: datetime) -> None:
    """Insert or update every configured entity; mark technicians no longer listed inactive."""
    for c in settings.customers:
        customer = session.get(Customer, c.id) or Customer(id=c.id, opted_out=[])
        customer.name = c.name
        customer.phone = c.phone
        customer.email = c.email
        customer.locale = c.locale
        customer.timezone = c.timezone
        customer.channels = list(c.channels)
        customer.quiet_hours = (
            f"{c.quiet_hours.start:%H:%M}-{c.quiet_hours.end:%H:%M}" if c.quiet_hours else None
        )
        session.add(customer)
    session.flush()
    for s in settings.sites:
        site = session.get(Site, s.id) or Site(id=s.id)
        site.name = s.name
        site.customer_id = s.customer
        site.address = s.address
        site.region = s.region
        site.timezone = s.timezone
        site.lat = s.location.lat if s.location else None
        site.lon = s.location.lon if s.location else None
        session.add(site)
    session.flush()
    for d in settings.devices:
        device = session.get(Device, d.id) or Device(id=d.id, registered_at=now)
        device.site_id = d.site
        device.model = d.model
        device.kind = d.kind
        device.serial = d.serial
        session.add(device)
    listed = {t.id for t in settings.technicians}
    for t in settings.technicians:
        technician = session.get(Technician, t.id) or Technician(id=t.id)
        technician.name = t.name
        technician.phone = t.phone
        technician.email = t.email
        technician.locale = t.locale
        technician.timezone = t.timezone
        technician.skills = list(t.skills)
        technician.regions = list(t.regions)
        technician.max_jobs = t.max_jobs
        technician.lat = t.home.lat if t.home else None
        technician.lon = t.home.lon if t.home else None
        technician.channels = list(t.channels)
        technician.shifts = [
            {
                "days": list(shift.days),
                "hours": f"{shift.hours.start:%H:%M}-{shift.hours.end:%H:%M}",
            }
            for shift in t.shifts
        ]
        technician.days_off = [day.isoformat() for day in t.days_off]
        technician.radius_km = t.radius_km
        technician.active = True
        session.add(technician)
    for technician in session.query(Technician).filter(Technician.id.not_in(listed)):
        technician.active = False
    session.flush()
