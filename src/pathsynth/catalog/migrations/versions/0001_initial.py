"""initial catalog schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:41:44.998742
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# One piece: the initial schema, table by table, as Alembic applies it in one transaction.
def upgrade() -> None:

    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("key_kind", sa.String(length=16), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("sex", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "key_kind IN ('patient', 'group', 'image', 'generator')",
            name=op.f("ck_patients_key_kind_allowed"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("code", name=op.f("uq_patients_code")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed')", name=op.f("ck_runs_status_allowed")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("kind", "name", name="kind_name"),
    )
    op.create_table(
        "splits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_splits")),
        sa.UniqueConstraint("name", name=op.f("uq_splits_name")),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("stain", sa.String(length=64), nullable=True),
        sa.Column("magnification", sa.Double(), nullable=True),
        sa.Column("pixel_size_um", sa.Double(), nullable=True),
        sa.Column("study_date", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "modality IN ('histology', 'cytology')", name=op.f("ck_studies_modality_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_studies_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("code", name=op.f("uq_studies_code")),
    )
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_studies_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("store_path", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("bit_depth", sa.Integer(), nullable=False),
        sa.Column("original_mode", sa.String(length=16), nullable=False),
        sa.Column("original_format", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("source_path", sa.String(length=1024), nullable=True),
        sa.Column("transform", sa.JSON(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("checkpoint_step", sa.Integer(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "origin IN ('real', 'affine', 'synthetic')", name=op.f("ck_images_origin_allowed")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_images_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_images_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sha256", name=op.f("uq_images_sha256")),
        sa.UniqueConstraint("store_path", name=op.f("uq_images_store_path")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_label"), ["label"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_origin"), ["origin"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_study_id"), ["study_id"], unique=False)

    op.create_table(
        "image_features",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("rgb_mean_r", sa.Float(), nullable=False),
        sa.Column("rgb_mean_g", sa.Float(), nullable=False),
        sa.Column("rgb_mean_b", sa.Float(), nullable=False),
        sa.Column("rgb_std_r", sa.Float(), nullable=False),
        sa.Column("rgb_std_g", sa.Float(), nullable=False),
        sa.Column("rgb_std_b", sa.Float(), nullable=False),
        sa.Column("rgb_skew_r", sa.Float(), nullable=False),
        sa.Column("rgb_skew_g", sa.Float(), nullable=False),
        sa.Column("rgb_skew_b", sa.Float(), nullable=False),
        sa.Column("od_mean_h", sa.Float(), nullable=False),
        sa.Column("od_mean_e", sa.Float(), nullable=False),
        sa.Column("od_mean_d", sa.Float(), nullable=False),
        sa.Column("od_std_h", sa.Float(), nullable=False),
        sa.Column("od_std_e", sa.Float(), nullable=False),
        sa.Column("od_std_d", sa.Float(), nullable=False),
        sa.Column("od_skew_h", sa.Float(), nullable=False),
        sa.Column("od_skew_e", sa.Float(), nullable=False),
        sa.Column("od_skew_d", sa.Float(), nullable=False),
        sa.Column("glcm_contrast", sa.Float(), nullable=False),
        sa.Column("glcm_homogeneity", sa.Float(), nullable=False),
        sa.Column("glcm_energy", sa.Float(), nullable=False),
        sa.Column("glcm_correlation", sa.Float(), nullable=False),
        sa.Column("grey_entropy", sa.Float(), nullable=False),
        sa.Column("nuclei_count", sa.Float(), nullable=False),
        sa.Column("nuclei_mean_area_px", sa.Float(), nullable=False),
        sa.Column("nuclei_area_fraction", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_features_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image_features")),
    )
    op.create_table(
        "image_parents",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_parents_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["images.id"],
            name=op.f("fk_image_parents_parent_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "parent_id", name=op.f("pk_image_parents")),
    )
    op.create_table(
        "split_members",
        sa.Column("split_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("fold", sa.String(length=8), nullable=False),
        sa.CheckConstraint(
            "fold IN ('train', 'val', 'test')", name=op.f("ck_split_members_fold_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_split_members_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["split_id"],
            ["splits.id"],
            name=op.f("fk_split_members_split_id_splits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("split_id", "image_id", name=op.f("pk_split_members")),
    )


def downgrade() -> None:

    op.drop_table("split_members")
    op.drop_table("image_parents")
    op.drop_table("image_features")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_study_id"))
        batch_op.drop_index(batch_op.f("ix_images_run_id"))
        batch_op.drop_index(batch_op.f("ix_images_origin"))
        batch_op.drop_index(batch_op.f("ix_images_label"))

    op.drop_table("images")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_studies_patient_id"))

    op.drop_table("studies")
    op.drop_table("splits")
    op.drop_table("runs")
    op.drop_table("patients")
