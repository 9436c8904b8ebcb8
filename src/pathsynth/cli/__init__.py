"""The ``pathsynth`` command line: a thin layer that parses options and calls the stages.

Command modules import the catalog lazily, inside the commands that need it, so that the GAN
commands run on machines without any SQL package.
"""

from pathsynth.cli import catalog as _catalog  # noqa: F401  (registers commands)
from pathsynth.cli import diffusion as _diffusion  # noqa: F401
from pathsynth.cli import embed as _embed  # noqa: F401
from pathsynth.cli import experiment as _experiment  # noqa: F401
from pathsynth.cli import gan as _gan  # noqa: F401
from pathsynth.cli import predict as _predict  # noqa: F401
from pathsynth.cli import pretrain as _pretrain  # noqa: F401
from pathsynth.cli import serve as _serve  # noqa: F401
from pathsynth.cli.app import app, main

__all__ = ["app", "main"]
