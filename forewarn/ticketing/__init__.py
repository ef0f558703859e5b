"""Tickets: repair work orders and delay cases, one per fault episode, and who gets them."""
