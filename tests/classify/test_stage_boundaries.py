"""The classifier and metrics stages never pull in the database layer or the GAN."""

import subprocess
import sys


def test_classify_and_metrics_import_no_catalog_sqlalchemy_or_gan() -> None:
    code = (
        "import sys\n"
        "import pathsynth.classify.config, pathsynth.classify.networks, pathsynth.classify.trainer\n"
        "import pathsynth.classify.evaluate, pathsynth.imaging.augment\n"
        "import pathsynth.metrics.classification, pathsynth.metrics.aggregate\n"
        "import pathsynth.metrics.registry, pathsynth.metrics.memorisation\n"
        "import pathsynth.metrics.features\n"
        "bad = [m for m in sys.modules if m.startswith(('sqlalchemy', 'pathsynth.catalog',"
        " 'pathsynth.gan', 'alembic'))]\n"
        "print(','.join(bad))\n"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert loaded == ""
