"""embeddings: one feature vector per image content, backbone and preprocessing

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 00:15:00

One new table; nothing existing changes. Vectors are blobs (MEDIUMBLOB on MariaDB/MySQL, whose
plain BLOB stops at 64 KiB) with their dtype and length beside them; see
:class:`pathsynth.catalog.models.Embedding` for why blobs rather than files in the store.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "embeddings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("backbone", sa.String(length=128), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column("preprocess_sha256", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.Integer(), nullable=False),
        sa.Column("dtype", sa.String(length=16), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(length=2**24), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "dtype IN ('float32', 'float16', 'bfloat16')", name=op.f("ck_embeddings_dtype_allowed")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_embeddings_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
        sa.UniqueConstraint(
            "image_sha256", "backbone", "weights_sha256", "preprocess_sha256", name="embedding_key"
        ),
        **MYSQL,
    )
    with op.batch_alter_table("embeddings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embeddings_image_sha256"), ["image_sha256"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_embeddings_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("embeddings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embeddings_run_id"))
        batch_op.drop_index(batch_op.f("ix_embeddings_image_sha256"))
    op.drop_table("embeddings")
