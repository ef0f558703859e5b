"""one chain: merge the parallel heads 0003-0006 so every later migration has one parent

Revision ID: 0007
Revises: 0003, 0004, 0005, 0006
"""

from __future__ import annotations

revision = "0007"
down_revision = ("0003", "0004", "0005", "0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: this revision only joins the branches."""


def downgrade() -> None:
    """Nothing to undo."""
