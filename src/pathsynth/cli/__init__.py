"""The ``pathsynth`` command line: a thin layer that parses options and calls the stages.

One module per command or group of commands, named by it. Command modules import the catalog
lazily, inside the commands that need it, so that the generator commands run on machines without
any SQL package. The modules are imported in the order a lab works (``--help`` lists the commands
so): the catalog, the experiment, the generators and pretraining, then what uses their results.
"""

# isort: off
from pathsynth.cli import catalog as _catalog  # noqa: F401  (registers commands)
from pathsynth.cli import experiment as _experiment  # noqa: F401
from pathsynth.cli import gan as _gan  # noqa: F401
from pathsynth.cli import diffusion as _diffusion  # noqa: F401
from pathsynth.cli import pretrain as _pretrain  # noqa: F401
from pathsynth.cli import embed as _embed  # noqa: F401
from pathsynth.cli import generate as _generate  # noqa: F401
from pathsynth.cli import predict as _predict  # noqa: F401
from pathsynth.cli import runs as _runs  # noqa: F401
from pathsynth.cli import serve as _serve  # noqa: F401
from pathsynth.cli import turing as _turing  # noqa: F401

# isort: on
from pathsynth.cli.app import app, main

__all__ = ["app", "main"]
