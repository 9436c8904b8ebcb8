"""An experiment's name names a folder and a web address as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathsynth.errors import DataError
from pathsynth.files import NAME, check_name, name_from


@pytest.mark.parametrize("name", ["my run", "a<b>", "../x", "", ".hidden", "-x", "a/b", "é"])
def test_a_name_that_is_not_a_plain_folder_and_url_is_refused_in_one_line(
    name: str, tmp_path: Path
) -> None:
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.pipeline import Experiment

    config = experiment_presets("histology").resolve("smoke")
    with pytest.raises(DataError, match="may hold letters, digits") as refused:
        Experiment.create(Workspace.create(tmp_path / "ws"), tmp_path, config, None, name)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "ws" / "experiments").exists() or not any(
        (tmp_path / "ws" / "experiments").iterdir()
    )


def test_a_default_name_from_a_source_folder_is_made_plain() -> None:
    assert name_from("site 2 (BACH)-quick") == "site-2-BACH-quick"
    assert name_from("<>") == "x"
    assert NAME.match(name_from("Größe ✓ cases-quick"))
    assert check_name("bach-quick", "experiment") == "bach-quick"


def test_an_experiment_another_process_is_running_is_refused_at_once(tmp_path: Path) -> None:
    """Two ``reproduce`` with one workspace and name both ran every stage (an orphan GAN run
    remained); the second now stops before any stage, naming the first's process."""
    import os
    import subprocess
    import sys

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.errors import WorkspaceError
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.pipeline import Experiment

    space = Workspace.create(tmp_path / "ws")
    config = experiment_presets("histology").resolve("smoke")
    experiment = Experiment.create(space, tmp_path, config, None, "twice", log=lambda _: None)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from pathsynth.catalog.lock import held_alone\n"
         "with held_alone(Path(sys.argv[1]), 'x'):\n    print('held', flush=True); time.sleep(60)",
         str(experiment.paths.run_lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkspaceError, match="being run by another process") as refused:
            experiment.run()
        assert f"pid {holder.pid}" in str(refused.value)
        assert experiment.state.stages == {}  # no stage started
    finally:
        holder.kill()
        holder.wait()
    assert os.path.exists(experiment.paths.run_lock)
