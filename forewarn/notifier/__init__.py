"""Notifications: the outbox, rendering, contact policy, channels and the sender."""
