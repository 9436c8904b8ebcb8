"""selection: each generated image's selective-synthesis scores and keep/reject decision

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 02:10:00

One new table; nothing existing changes. See :class:`pathsynth.catalog.models.SelectionScore`.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "selection_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("selection", sa.String(length=128), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("min_confidence", sa.Float(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("max_distance", sa.Float(), nullable=False),
        sa.Column("copy_ratio", sa.Float(), nullable=False),
        sa.Column("near_copy", sa.Boolean(), nullable=False),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_selection_scores_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_selection_scores_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_selection_scores")),
        sa.UniqueConstraint("image_id", "selection", name="selection_image"),
        **MYSQL,
    )
    with op.batch_alter_table("selection_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_selection_scores_image_id"), ["image_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_selection_scores_selection"), ["selection"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_selection_scores_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("selection_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_selection_scores_run_id"))
        batch_op.drop_index(batch_op.f("ix_selection_scores_selection"))
        batch_op.drop_index(batch_op.f("ix_selection_scores_image_id"))
    op.drop_table("selection_scores")
