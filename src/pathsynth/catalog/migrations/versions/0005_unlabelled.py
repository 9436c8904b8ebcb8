"""unlabelled images: a fourth image origin for self-supervised pretraining

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 02:20:00

``ingest --unlabelled`` stores images without a class as origin ``unlabelled`` (label ""). Every
query that splits, exports or trains a classifier selects origin ``real``, so none of them takes
one; only ``pretrain`` (and ``embed`` over the whole catalog) reads them. The one change is the
origin check constraint (on SQLite an edit of the table's recorded SQL, see :func:`_replace_sqlite`).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ck_images_origin_allowed"
OLD = "origin IN ('real', 'affine', 'synthetic')"
NEW = "origin IN ('real', 'affine', 'synthetic', 'unlabelled')"


def _replace(old: str, new: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _replace_sqlite(old, new)
        return
    op.drop_constraint(op.f(NAME), "images", type_="check")
    op.create_check_constraint("origin_allowed", "images", new)


def _replace_sqlite(old: str, new: str) -> None:
    """Edit the table's recorded SQL, SQLite's own procedure for a change that no stored row
    can violate (sqlite.org/lang_altertable.html, "other kinds of table schema changes"): a
    widened CHECK needs no copy of the table, and a copy (Alembic's batch mode) would drop the
    old ``images`` table, which with foreign keys on cascades to every image's features, parents
    and split memberships."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'images'"
    ).scalar_one()
    if new in sql:  # already there (a catalog made at this version and set back)
        return
    if old not in sql:
        raise RuntimeError(f"images table has no check {old!r}: {sql}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema=ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'images'",
            (sql.replace(old, new),),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema=OFF")
    problems = bind.exec_driver_sql("PRAGMA integrity_check").scalar_one()
    if problems != "ok":
        raise RuntimeError(f"SQLite integrity check after the schema edit: {problems}")


def upgrade() -> None:
    _replace(OLD, NEW)


def downgrade() -> None:
    """Refused while unlabelled images exist (the old constraint would not hold)."""
    _replace(NEW, OLD)
