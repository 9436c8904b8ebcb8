"""image_runs: every generator run that made an image, not only the first

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 05:50:00

One new table; nothing existing changes (an image's first run stays in ``images.run_id``). See
:class:`pathsynth.catalog.models.ImageRun`.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "image_runs",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_runs_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_image_runs_run_id_runs")),
        sa.PrimaryKeyConstraint("image_id", "run_id", name=op.f("pk_image_runs")),
        **MYSQL,
    )
    with op.batch_alter_table("image_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_runs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("image_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_runs_run_id"))
    op.drop_table("image_runs")
