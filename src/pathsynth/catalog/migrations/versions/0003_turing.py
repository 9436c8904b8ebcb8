"""visual Turing test: tests, raters (hashed tokens), items and answers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 23:20:00

Four new tables, the only ones ``pathsynth serve`` writes. Nothing existing changes. On
MariaDB/MySQL they are created in utf8mb4 with the binary collation, as 0002 made the others.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "turing_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turing_tests")),
        sa.UniqueConstraint("name", name=op.f("uq_turing_tests_name")),
        **MYSQL,
    )
    op.create_table(
        "turing_raters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("order_seed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["turing_tests.id"],
            name=op.f("fk_turing_raters_test_id_turing_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turing_raters")),
        sa.UniqueConstraint("test_id", "name", name="test_rater_name"),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_turing_raters_token_sha256")),
        **MYSQL,
    )
    with op.batch_alter_table("turing_raters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_turing_raters_test_id"), ["test_id"], unique=False)

    op.create_table(
        "turing_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("truth", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "truth IN ('real', 'synthetic')", name=op.f("ck_turing_items_truth_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["turing_tests.id"],
            name=op.f("fk_turing_items_test_id_turing_tests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_turing_items_image_id_images")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turing_items")),
        sa.UniqueConstraint("public_id", name=op.f("uq_turing_items_public_id")),
        **MYSQL,
    )
    with op.batch_alter_table("turing_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_turing_items_test_id"), ["test_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_turing_items_image_id"), ["image_id"], unique=False)

    op.create_table(
        "turing_answers",
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("called", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "called IN ('real', 'synthetic')", name=op.f("ck_turing_answers_called_allowed")
        ),
        sa.CheckConstraint(
            "confidence IS NULL OR (confidence >= 1 AND confidence <= 5)",
            name=op.f("ck_turing_answers_confidence_range"),
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"],
            ["turing_raters.id"],
            name=op.f("fk_turing_answers_rater_id_turing_raters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["turing_items.id"],
            name=op.f("fk_turing_answers_item_id_turing_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rater_id", "item_id", name=op.f("pk_turing_answers")),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("turing_answers")
    with op.batch_alter_table("turing_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turing_items_image_id"))
        batch_op.drop_index(batch_op.f("ix_turing_items_test_id"))
    op.drop_table("turing_items")
    with op.batch_alter_table("turing_raters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turing_raters_test_id"))
    op.drop_table("turing_raters")
    op.drop_table("turing_tests")
