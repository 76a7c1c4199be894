"""Join the branches that provisioning, fleet health, slices, the console, regions and attachments
added side by side, so the next migration has one parent.

Revision ID: 0012
Revises: 0006, 0007, 0008, 0009, 0010, 0011
"""

from __future__ import annotations

revision = "0012"
down_revision = ("0006", "0007", "0008", "0009", "0010", "0011")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to undo."""
