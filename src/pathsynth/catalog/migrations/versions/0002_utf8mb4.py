"""tables in utf8mb4 with a binary collation on MariaDB/MySQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 20:50:00

Tables made by 0001 took the server's default character set, which can be latin1 (an emoji or
most non-Latin text in a label then fails the whole transaction) and a case-insensitive collation
(``Normal`` and ``normal`` were one label on MariaDB and two on SQLite and PostgreSQL). This
converts every table to utf8mb4 with the binary collation, so text is stored whole and compared
exactly as on the other backends. Nothing to do on SQLite and PostgreSQL.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "patients",
    "runs",
    "splits",
    "studies",
    "images",
    "image_features",
    "image_parents",
    "split_members",
    "alembic_version",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "mysql":
        return
    op.execute("SET FOREIGN_KEY_CHECKS = 0")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    op.execute("SET FOREIGN_KEY_CHECKS = 1")


def downgrade() -> None:
    """Leaves the character set as it is: converting back could lose text."""
