"""Order and shipping feeds: watched folders, polled HTTP endpoints and webhooks, turned
into orders and shipment events by a declarative mapping (see docs/delays.md)."""
