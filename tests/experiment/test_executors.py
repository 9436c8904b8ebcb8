"""Where units run: sequential, local worker processes and a real Ray cluster give the same
results; a killed unit runs again, a unit that fails twice fails its stage in one line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pathsynth.catalog.workspace import Workspace
from pathsynth.errors import ConfigError, TaskFailed
from pathsynth.executors import ExecutorSpec, Task, run_tasks
from pathsynth.experiment.config import experiment_presets
from pathsynth.experiment.pipeline import Experiment, run_fold

CLASSES = ("normal_intermediate", "normal_superficiel")
UNITS = "executor_units"


def test_executor_names_are_read_and_others_refused():
    assert ExecutorSpec.parse("sequential") == ExecutorSpec()
    assert ExecutorSpec.parse("local:3") == ExecutorSpec("local", 3)
    assert ExecutorSpec.parse("ray") == ExecutorSpec("ray")
    assert ExecutorSpec.parse("ray:10.0.0.5:6379") == ExecutorSpec("ray", address="10.0.0.5:6379")
    assert ExecutorSpec.parse("local") == ExecutorSpec("local", 0)  # one per GPU, else per core
    assert not ExecutorSpec.parse("local:1").parallel and ExecutorSpec.parse("local:2").parallel
    assert ExecutorSpec.parse("local").parallel and str(ExecutorSpec.parse("local")) == "local"
    for wrong in ("local:0", "local:two", "dask", "sequential:2"):
        with pytest.raises(ConfigError, match="--executor"):
            ExecutorSpec.parse(wrong)


def test_local_units_run_at_once_in_their_own_processes(tmp_path):
    tasks = [
        Task("a", f"{UNITS}:meet", (str(tmp_path), "a", "b")),
        Task("b", f"{UNITS}:meet", (str(tmp_path), "b", "a")),
    ]
    lines: list[str] = []
    run_tasks(ExecutorSpec("local", 2), tasks, lines.append)
    pids = {(tmp_path / name).read_text() for name in ("a", "b")}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert sorted(line.split(":")[0].strip() for line in lines) == ["a", "b"]
    assert any("(2 of 2)" in line for line in lines)


def test_a_killed_worker_s_unit_runs_again(tmp_path):
    tasks = [Task("fold 1", f"{UNITS}:die_once", (str(tmp_path), "u"))]
    lines: list[str] = []
    run_tasks(ExecutorSpec("local", 2), tasks, lines.append)
    assert (tmp_path / "u").is_file()
    assert "fold 1: its worker was killed by signal 9; running it again" in lines[0]


@pytest.mark.parametrize("spec", [ExecutorSpec("local", 2), ExecutorSpec()])
def test_a_unit_that_fails_twice_fails_in_one_line(tmp_path, spec):
    tasks = [
        Task("ok", f"{UNITS}:record", (str(tmp_path), "ok")),
        Task("fit 3", f"{UNITS}:always_fail", (str(tmp_path), "bad")),
    ]
    if spec.parallel:
        with pytest.raises(TaskFailed, match=r"^fit 3 failed twice: the unit bad cannot read"):
            run_tasks(spec, tasks, lambda line: None)
        assert (tmp_path / "bad.attempts").read_text() == "2"
    else:  # in this process the unit's own error comes through as it is, at once
        with pytest.raises(Exception, match="the unit bad cannot read its input"):
            run_tasks(spec, tasks, lambda line: None)
        assert (tmp_path / "bad.attempts").read_text() == "1"


def _results(root: Path, name: str) -> dict:
    """``results.json`` without what differs from run to run whatever the executor: durations
    and the creation time."""
    results = json.loads((root / "experiments" / name / "results.json").read_text())
    results["experiment"].pop("created")
    for stage in results["stages"]:
        stage.pop("seconds")
    return results


def _run(space: Workspace, source: Path, overrides: dict, spec: ExecutorSpec) -> dict:
    config = experiment_presets("cytology").resolve("smoke", overrides)
    experiment = Experiment.create(space, source, config, CLASSES, "x", lambda line: None,
                                   executor=spec)  # fmt: skip
    experiment.run(until="results")
    return _results(space.root, "x")


@pytest.fixture(scope="module")
def one_thread():
    """Every run here computes with one thread, as a Ray unit does and as each local worker does
    when there are as many workers as cores: the same sums in the same order, so the same
    numbers (with other thread counts they differ in the last bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


ONE_THREAD_EACH = ExecutorSpec("local", max(2, os.cpu_count() or 1))
CV = {"folds": 2, "seeds": 1, "protocols": "honest", "conditions": "original,affine"}


@pytest.fixture(scope="module")
def sequential_cv(herlev, tmp_path_factory, one_thread):
    """A 2-fold cross-validation run sequentially: the results every executor must give."""
    return _run(Workspace.create(tmp_path_factory.mktemp("seq") / "ws"), herlev, CV, ExecutorSpec())


@pytest.mark.slow
def test_folds_on_local_workers_give_the_sequential_results(herlev, tmp_path, sequential_cv):
    assert _run(Workspace.create(tmp_path / "ws"), herlev, CV, ONE_THREAD_EACH) == sequential_cv


@pytest.mark.slow
def test_fits_on_local_workers_give_the_sequential_results(herlev, tmp_path, one_thread):
    overrides = {"seeds": 1, "protocols": "honest", "conditions": "original,affine"}  # 2 fits
    sequential = _run(Workspace.create(tmp_path / "a"), herlev, overrides, ExecutorSpec())
    parallel = _run(Workspace.create(tmp_path / "b"), herlev, overrides, ONE_THREAD_EACH)
    assert parallel == sequential


@pytest.mark.slow
def test_a_cross_validation_killed_in_a_fold_goes_on_where_it_stopped(herlev, tmp_path):
    """A fold finished before the kill is not sent again; the others are run to the end."""
    space = Workspace.create(tmp_path / "ws")
    overrides = {"folds": 2, "seeds": 1, "protocols": "honest", "conditions": "original"}
    config = experiment_presets("cytology").resolve("smoke", overrides)
    lines: list[str] = []
    first = Experiment.create(space, herlev, config, CLASSES, "cv", lines.append)
    first.run(until="ingest")
    # fold 0 finished alone, as if the kill came during fold 1
    run_fold(space.root, herlev, dataclasses.replace(config, fold=0), CLASSES, "cv-fold0", "cv")
    again = Experiment.create(space, herlev, config, CLASSES, "cv", lines.append,
                              executor=ExecutorSpec("local", 2))  # fmt: skip
    again.run(until="results")
    units = [line for line in lines if "done in" in line]
    assert len(units) == 1 and "fold 1" in units[0]


# -- a real Ray cluster: a head and a second node on this machine ----------------------------------


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A Ray head and one more node (one CPU each) started like a lab would (``ray start``),
    stopped afterwards."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the Ray tests need ray (pip install -e '.[dev]'); under CI=true they run")
        pytest.skip("the Ray tests need ray: pip install -e '.[dev]'")
    ray_cli = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    temp = tmp_path_factory.mktemp("ray")
    port = 6300 + os.getpid() % 500
    common = ["--num-cpus=1", "--object-store-memory=80000000", "--disable-usage-stats"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    head = [ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false",
            f"--temp-dir={temp}", *common]  # fmt: skip
    subprocess.run(head, check=True, capture_output=True, env=env, timeout=120)
    try:
        node = [ray_cli, "start", f"--address=127.0.0.1:{port}", *common]
        subprocess.run(node, check=True, capture_output=True, env=env, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.mark.slow
@pytest.mark.ray
def test_a_ray_cluster_refuses_sqlite_across_nodes(ray_cluster, tmp_path):
    with pytest.raises(
        ConfigError, match="the Ray cluster has 2 nodes and the catalog is a SQLite"
    ):
        run_tasks(ExecutorSpec("ray", address=ray_cluster),
                  [Task("u", f"{UNITS}:record", (str(tmp_path), "u"))], lambda line: None,
                  catalog_url=f"sqlite:///{tmp_path / 'c.db'}")  # fmt: skip


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.postgres
def test_a_cross_validation_on_ray_with_postgres_gives_the_sequential_results(
    ray_cluster, herlev, tmp_path, postgres_url, sequential_cv
):
    space = Workspace.create(tmp_path / "ws", postgres_url)
    assert _run(space, herlev, CV, ExecutorSpec("ray", address=ray_cluster)) == sequential_cv


@pytest.mark.slow
@pytest.mark.ray
def test_a_ray_unit_that_fails_twice_fails_in_one_line(ray_cluster, tmp_path):
    tasks = [Task("fold 0", f"{UNITS}:always_fail", (str(tmp_path), "bad"))]
    with pytest.raises(TaskFailed, match=r"^fold 0 failed twice: the unit bad cannot read"):
        run_tasks(ExecutorSpec("ray", address=ray_cluster), tasks, lambda line: None)
    assert (tmp_path / "bad.attempts").read_text() == "2"
