"""The store: tables, engines and migrations (SQLite by default, PostgreSQL in production)."""
