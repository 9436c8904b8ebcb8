"""The image catalog: database models and migrations, the on-disk store, ingest and splits.

The store mirrors the reference database's layout, ``store/<patient code>/<study code>/<file>``,
and the database (SQLite by default, MariaDB/MySQL or PostgreSQL by URL) holds patients, studies,
images with their features and provenance, splits and runs.
"""
