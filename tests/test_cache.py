"""The compiled-model cache: its key, its lock, and no recompiling of unchanged models.

The lock and key tests use a stand-in engine whose "build" is slow and
counted, so that two processes racing for one model are cheap to test.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

import pystanmods as psm
from pystanmods.compile import cache
from pystanmods.engines.base import Draws, Engine, Program


class CountingEngine(Engine):
    """Builds by sleeping and appending a line to a log shared by processes."""

    name = "counting"

    def __init__(self, log: Path, version: str = "2.35.0") -> None:
        self.log = log
        self.version = version

    def stan_version(self) -> str:
        return self.version

    def default_compile_options(self) -> dict[str, Any]:
        return {"O": 3}

    def build(self, program: Program, directory: Path) -> None:
        time.sleep(1.0)  # long enough that a second process arrives mid-build
        (directory / "model.bin").write_text(program.code)
        with self.log.open("a") as f:
            f.write(f"{program.name}\n")

    def is_built(self, program: Program, directory: Path) -> bool:
        return (directory / "model.bin").is_file()

    def sample(self, *args: Any, **kwargs: Any) -> Draws:
        raise NotImplementedError

    def log_prob(self, *args: Any, **kwargs: Any) -> float:
        raise NotImplementedError


def _compile_in_child(root: str, log: str, queue: Any) -> None:
    import os

    os.environ["PYSTANMODS_CACHE_DIR"] = root
    result = cache.compile_program(Program("race", "model {}", {"O": 3}), CountingEngine(Path(log)), quiet=True)
    queue.put((str(result.directory), result.cached))


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("PYSTANMODS_CACHE_DIR", str(root))
    return root


def test_cache_lives_in_the_user_cache_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSTANMODS_CACHE_DIR", raising=False)
    root = cache.cache_root()
    assert "pystanmods" in str(root)
    assert not str(root).startswith(str(Path(psm.__file__).resolve().parent))


def test_key_covers_code_engine_version_and_options() -> None:
    base = cache.cache_key("model {}", "pystan", "2.35.0", {"O": 3})
    assert base == cache.cache_key("model {}", "pystan", "2.35.0", {"O": 3})
    assert base != cache.cache_key("model { }", "pystan", "2.35.0", {"O": 3})
    assert base != cache.cache_key("model {}", "cmdstan", "2.35.0", {"O": 3})
    assert base != cache.cache_key("model {}", "pystan", "2.36.0", {"O": 3})
    assert base != cache.cache_key("model {}", "pystan", "2.35.0", {"O": 1})


def test_second_compile_is_a_cache_hit(cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = tmp_path / "builds.log"
    engine = CountingEngine(log)
    program = Program("m", "model {}", {"O": 3})
    first = cache.compile_program(program, engine)
    announced = capsys.readouterr().err
    assert "compiling m" in announced and "compiled m in" in announced
    second = cache.compile_program(program, engine)
    assert not first.cached and second.cached and first.directory == second.directory
    assert log.read_text().splitlines() == ["m"]
    assert capsys.readouterr().err == ""
    # Another Stan version is another entry, built again.
    cache.compile_program(program, CountingEngine(log, version="2.36.0"), quiet=True)
    assert log.read_text().splitlines() == ["m", "m"]


def test_two_processes_compiling_one_model_build_it_once(cache_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_compile_in_child, args=(str(cache_dir), str(log), queue)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    results = [queue.get(timeout=5) for _ in children]
    assert log.read_text().splitlines() == ["race"], "the lock let both processes build"
    assert results[0][0] == results[1][0]
    assert sorted(cached for _, cached in results) == [False, True]


def test_a_fit_does_not_recompile_an_unchanged_model() -> None:
    simulation = psm.get_model("model1").simulate(seed=1)
    psm.compile_model("model1", "centered", "pystan", quiet=True)
    fit = psm.fit("model1", simulation.data, engine="pystan", seed=1, chains=1, iter_warmup=100,
                  iter_sampling=100, show_progress=False)
    assert fit.attrs["compile_cached"] == 1


def _package_files() -> dict[str, tuple[int, int] | None]:
    """Every file and folder of the installed package and its Stan sources:
    size and modification time (None for a folder); bytecode caches aside."""
    from pystanmods.models.base import stan_dir

    found: dict[str, tuple[int, int] | None] = {}
    for root in {Path(psm.__file__).resolve().parent, stan_dir().resolve()}:
        for path in root.rglob("*"):
            if "__pycache__" in path.parts:
                continue
            stat = path.stat()
            found[str(path)] = None if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return found


def test_a_session_writes_nothing_into_the_installed_package(tmp_path: Path) -> None:
    # The package may be installed read-only, or shared by several users: the
    # cache, httpstan's copies, data and fits go elsewhere. Run from another
    # folder, as a user would, through every command that writes a file.
    import subprocess
    import sys

    cli = [sys.executable, "-m", "pystanmods.cli.main"]
    before = _package_files()
    assert any(name.endswith("model1.stan") for name in before)
    for args in (["simulate", "model1", "-o", "d.csv", "--seed", "1", "--truth", "truth.json"],
                 ["standata", "model1", "d.csv", "-o", "d.json"],
                 ["compile", "model1"],
                 ["fit", "model1", "d.csv", "-o", "f.nc", "--chains", "1", "--iter-warmup", "30",
                  "--iter-sampling", "30", "--seed", "1", "--quiet"]):
        done = subprocess.run([*cli, *args], cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (args, done.stderr)
    assert {p.name for p in tmp_path.iterdir()} >= {"d.csv", "truth.json", "d.json", "f.nc"}
    assert _package_files() == before


def test_a_compile_keeps_its_object_files_out_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpstan's compile wrote build/temp.*/ (35 MB of object files per model)
    # into the working directory. Checked here on httpstan's build command
    # itself, without a compile; test_faults' slow test compiles for real.
    import httpstan.build_ext
    import setuptools

    from pystanmods.engines.pystan import _keep_build_files_out_of_cwd

    monkeypatch.chdir(tmp_path)
    _keep_build_files_out_of_cwd()
    command = httpstan.build_ext.build_ext.build_ext(setuptools.Distribution())
    command.finalize_options()
    temp = Path(command.build_temp).resolve()
    assert temp.is_dir() and not temp.is_relative_to(tmp_path.resolve())
    command.extensions = []
    command.run()
    assert not temp.exists()
    assert list(tmp_path.iterdir()) == []
