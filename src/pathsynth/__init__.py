"""pathsynth: grow small labelled microscopy sets and measure honestly whether it helps.

Stages, each a package that imports only the ones before it:

- ``pathsynth.imaging``: decode, validate and describe images (no database).
- ``pathsynth.catalog``: the image catalog (SQLAlchemy models, Alembic migrations, store, ingest,
  splits).
- ``pathsynth.gan``: the class-conditional GAN (networks, losses, augmentation, EMA, trainer,
  sampling); it takes tensors or folders and never imports the catalog.
- ``pathsynth.cli``: a thin typer front end that parses and calls.
"""

__version__ = "0.1.0"
