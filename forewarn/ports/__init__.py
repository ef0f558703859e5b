"""What the domain core asks of storage: every interface documented once, in this package.

The monitors and ticketing depend on these protocols, never on SQLAlchemy. Each store is
bound to one transaction (a unit of work, :class:`Stores` or :class:`TicketStores`): what a
method writes commits or rolls back with the caller's unit of work. Methods that return a
record "for a decision" lock it (``FOR UPDATE`` on PostgreSQL) until the transaction ends.

One module per aggregate, mirroring ``store/``:

=================  ===========================================================
``readings.py``    :class:`ReadingStore`, :class:`Latest`
``baselines.py``   :class:`BaselineStore` (learned bands of baseline rules)
``alerts.py``      :class:`AlertStore`, :class:`AlertSink` (ticketing as the monitors
                   see it), :class:`AlertRecord`, :class:`AlertEventRecord`
``tickets.py``     :class:`TicketStore`, :class:`DelayCaseStore`, their records
``outbox.py``      :class:`Outbox`, :class:`NotificationRecord`
``parties.py``     :class:`ContactStore` (:class:`Person`), :class:`OrderStore`
                   (:class:`OrderState`, shipment events, transit times)
``units.py``       :class:`Stores`, :class:`Storage`, :class:`TicketStores`,
                   :class:`TicketStorage`
=================  ===========================================================

Import the names from ``forewarn.ports`` itself. The implementations live in
:mod:`forewarn.store` (SQL, one module per aggregate, SQLite and PostgreSQL side by side)
and in :mod:`forewarn.store.memory` / :mod:`forewarn.store.memory_tickets` (backtests and
unit tests); they carry no docstrings of their own. ``tests/store/contract/`` runs one
suite against every implementation (memory, SQLite, PostgreSQL).

Values crossing these interfaces are plain frozen dataclasses; the ORM rows stay in
``store/``. Errors: :class:`AlertExists` and :class:`TicketExists` (another writer opened
the same episode first); each leaves the transaction usable.
"""

from forewarn.ports.alerts import (
    AlertEventRecord,
    AlertExists,
    AlertRecord,
    AlertSink,
    AlertStore,
)
from forewarn.ports.baselines import BaselineStore
from forewarn.ports.outbox import NotificationRecord, Outbox
from forewarn.ports.parties import ContactStore, OrderState, OrderStore, Person
from forewarn.ports.readings import Latest, ReadingStore
from forewarn.ports.tickets import (
    DelayCaseRecord,
    DelayCaseStore,
    TicketEventRecord,
    TicketExists,
    TicketRecord,
    TicketStore,
)
from forewarn.ports.units import Storage, Stores, TicketStorage, TicketStores

__all__ = [
    "AlertEventRecord",
    "AlertExists",
    "AlertRecord",
    "AlertSink",
    "AlertStore",
    "BaselineStore",
    "ContactStore",
    "DelayCaseRecord",
    "DelayCaseStore",
    "Latest",
    "NotificationRecord",
    "OrderState",
    "OrderStore",
    "Outbox",
    "Person",
    "ReadingStore",
    "Storage",
    "Stores",
    "TicketEventRecord",
    "TicketExists",
    "TicketRecord",
    "TicketStorage",
    "TicketStore",
    "TicketStores",
]
