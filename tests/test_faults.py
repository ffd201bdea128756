"""Faults during a fit, run as a user meets them: a real signal, a damaged cache, a dead chain.

Each fit runs in a separate process, so that what it leaves behind (exit
status, child processes, socket files) can be seen from outside. The chain
processes are found through /proc, so these tests need Linux.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import pystanmods as psm
from pystanmods.compile import cache, integrity
from pystanmods.engines.base import Draws, Engine, Program

from tests.conftest import engines

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds processes through /proc")

#: Long enough that, were the signal ignored, the chains would run for
#: minutes after it: 2 x 10,000 iterations on 50,000 rows (about 4 minutes
#: on one idle core, measured at 400 iterations in 12.9 s).
LONG_FIT = ["--chains", "2", "--iter-warmup", "5000", "--iter-sampling", "5000", "--seed", "1",
            "--no-log-lik", "--no-y-rep"]
#: A fit that reaches its draws within seconds (100 warmup iterations per
#: chain) and would then draw for minutes (2 x 5,000 on 50,000 rows).
DRAWING_FIT = ["--chains", "2", "--iter-warmup", "100", "--iter-sampling", "5000", "--seed", "1",
               "--no-log-lik", "--no-y-rep"]
DRAWING_WARMUP = 100
#: Not a speed requirement: a bound that tells an exit from a hang, with
#: room for a loaded machine. The chains themselves would need minutes.
EXIT_WITHIN = 60.0
# Progress bars once some iterations are done: the embedded engine's
# ("Sampling: 1%|...| 100/20000") and cmdstanpy's, one per chain ("chain 1: ...").
SAMPLING = re.compile(rb"(?:Sampling|chain \d+):[^\r\n]*\|\s*[1-9]\d*/\d+")
# The progress bar as soon as it shows, before any iteration ("| 0/20000"):
# the chains have just been started.
AT_THE_BAR = re.compile(rb"(?:Sampling|chain \d+):[^\r\n]*?\|\s*\d+/\d+")
_COUNTS = re.compile(rb"(Sampling|chain \d+):[^\r\n]*?\|\s*(\d+)/\d+")


def _drawing(data: bytes, warmup: int) -> bool:
    """Some chain is past its warmup, saving draws.

    The embedded engine's one bar counts the iterations of all chains (two
    here): past 2 x warmup, at least one chain is past its own. cmdstanpy's
    bars count one chain each.
    """
    counts: dict[bytes, int] = {}
    for name, count in _COUNTS.findall(data):
        counts[name] = max(counts.get(name, 0), int(count))
    return counts.get(b"Sampling", 0) > 2 * warmup or any(
        n > warmup for name, n in counts.items() if name.startswith(b"chain"))


#: When the signal is sent: as soon as the progress bar shows, once warmup
#: iterations are done, and once draws are being saved.
MOMENTS = ["at-the-bar", "warmup", "drawing"]


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faults")
    files = {"big": root / "big.csv", "small": root / "small.csv"}
    model = psm.get_model("model1")
    model.simulate(seed=1, n_cell_lines=50_000).data.to_csv(files["big"], index=False)
    model.simulate(seed=2, n_cell_lines=20).data.to_csv(files["small"], index=False)
    return files


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment, with a temporary directory of the fit's own."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1", "PYSTANMODS_TEST_TOKEN": str(tmp_path),
            **extra}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead child not yet reaped holds no memory and runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _with_token(token: str) -> list[int]:
    """Running processes whose environment holds ``token``: the fit and all it
    started, also those no longer its children."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "environ").read_bytes().split(b"\0") and _running(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _assert_nothing_left(tmp_path: Path) -> None:
    """No process started by the test's fit still runs, its children's children
    and orphans included: all carry the test's token in their environment."""
    token = f"PYSTANMODS_TEST_TOKEN={tmp_path}"
    # The fit's own chain processes die with it (the kernel's parent-death
    # signal), a moment after it ends.
    deadline = time.monotonic() + 10
    while (left := _with_token(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "processes left running after the fit ended"


def _assert_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _running(pid)], f"chain processes still running: {pids}"


class _Stderr:
    """Collects a process's stderr from a thread, so the test can wait for a pattern in it."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.data = b""
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        while chunk := os.read(process.stderr.fileno(), 4096):
            self.data += chunk

    def wait_for(self, pattern: re.Pattern | Callable[[bytes], bool], process: subprocess.Popen,
                 timeout: float = 300) -> None:
        found = pattern if callable(pattern) else pattern.search
        deadline = time.monotonic() + timeout
        while not found(self.data):
            assert process.poll() is None, f"ended before sampling: {self.data.decode(errors='replace')}"
            assert time.monotonic() < deadline, "sampling never started"
            # Polled often: "at-the-bar" means at once.
            time.sleep(0.02)

    def text(self) -> str:
        self._thread.join(timeout=10)
        return self.data.decode(errors="replace")


def _lines_besides_progress(text: str) -> list[str]:
    """stderr without progress bars (httpstan's, cmdstanpy's) and cmdstanpy's INFO lines."""
    parts = re.split(r"[\r\n]+", text)
    return [p for p in parts
            if p.strip() and not re.match(r"\s*(Sampling:|chain \d|\x1b)", p) and " - cmdstanpy - INFO - " not in p]


#: Runs a command with SIGINT at its default disposition (or ignored), then
#: execs it. A process inherits an ignored SIGINT, and keeps it through exec:
#: so did every fit started by a test suite run as a background job of a
#: script (``make test &``), whose Ctrl-C tests then waited in vain. A
#: terminal's foreground job, which Ctrl-C reaches, never has it ignored.
_LAUNCH = ("import os, signal, sys; "
           "signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == 'ignored' else signal.SIG_DFL); "
           "os.execv(sys.argv[2], sys.argv[2:])")


def _start(args: list[str], tmp_path: Path, env: dict[str, str],
           sigint: str = "default") -> tuple[subprocess.Popen, _Stderr]:
    process = subprocess.Popen([sys.executable, "-c", _LAUNCH, sigint, *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    return process, _Stderr(process)


def _wait_for_moment(process: subprocess.Popen, stderr: _Stderr, moment: str) -> None:
    if moment == "at-the-bar":
        stderr.wait_for(AT_THE_BAR, process)
    elif moment == "warmup":
        stderr.wait_for(SAMPLING, process)
    else:
        stderr.wait_for(lambda data: _drawing(data, DRAWING_WARMUP), process)


def _interrupt(process: subprocess.Popen, stderr: _Stderr, sig: signal.Signals,
               moment: str = "warmup") -> tuple[list[int], float]:
    """At ``moment`` of the fit, send ``sig``; the chain processes and the seconds to exit."""
    _wait_for_moment(process, stderr, moment)
    chains = _children(process.pid)
    # cmdstanpy shows its bars before it starts the chains; what it starts
    # after the signal is looked for by _assert_nothing_left.
    assert chains or moment == "at-the-bar", "no chain processes found under the fit"
    start = time.monotonic()
    process.send_signal(sig)
    _wait_or_kill(process, chains, sig.name)
    return chains, time.monotonic() - start


def _wait_or_kill(process: subprocess.Popen, chains: list[int], what: str) -> None:
    """Wait for the fit to end; a hang fails the test and leaves nothing running."""
    try:
        process.wait(timeout=EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        for pid in chains:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"still running {EXIT_WITHIN:.0f} s after {what}")


def _sockets(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "tmpdir").glob("httpstan_*.sock"))


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_fit_interrupted_stops_its_chains_and_exits_130(
    engine: str, sig: signal.Signals, moment: str, csv_files: dict[str, Path], tmp_path: Path
) -> None:
    env = _env(tmp_path, PYSTANMODS_ENGINE=engine)
    cli = [sys.executable, "-m", "pystanmods.cli.main", "fit", "model1"]
    fit = DRAWING_FIT if moment == "drawing" else LONG_FIT
    process, stderr = _start([*cli, str(csv_files["big"]), "-o", "big.nc", *fit], tmp_path, env)
    chains, seconds = _interrupt(process, stderr, sig, moment)
    assert process.returncode == 130, stderr.text()
    # One line, not asyncio's tracebacks.
    assert _lines_besides_progress(stderr.text()) == ["pystanmods: interrupted"]
    _assert_gone(chains)
    _assert_nothing_left(tmp_path)
    assert not (tmp_path / "big.nc").exists()
    assert _sockets(tmp_path) == []
    # The next fit, in a fresh process, works.
    after = subprocess.run([*cli, str(csv_files["small"]), "-o", "small.nc", "--chains", "2", "--iter-warmup", "200",
                            "--iter-sampling", "200", "--seed", "2", "--quiet"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert after.returncode == 0, after.stderr
    assert (tmp_path / "small.nc").is_file()


@pytest.mark.parametrize("engine", engines())
def test_a_fit_started_with_sigint_ignored_ignores_it_and_stops_on_sigterm(
    engine: str, csv_files: dict[str, Path], tmp_path: Path
) -> None:
    """A job started with ``&`` by a script (no job control) inherits an
    ignored SIGINT. It keeps ignoring it, as Python and every program do;
    SIGTERM still stops the fit in one line. Before, SIGTERM went through
    SIGINT's handler, absent then: the CLI printed asyncio's tracebacks, and
    the API hung."""
    env = _env(tmp_path, PYSTANMODS_ENGINE=engine)
    cli = [sys.executable, "-m", "pystanmods.cli.main", "fit", "model1"]
    process, stderr = _start([*cli, str(csv_files["big"]), "-o", "big.nc", *LONG_FIT], tmp_path, env,
                             sigint="ignored")
    stderr.wait_for(SAMPLING, process)
    chains = _children(process.pid)
    process.send_signal(signal.SIGINT)
    # Not a timing requirement: the fit has minutes to go, so had SIGINT
    # acted, the process would have ended well within this.
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    process.send_signal(signal.SIGTERM)
    _wait_or_kill(process, chains, "SIGTERM")
    assert process.returncode == 130, stderr.text()
    assert _lines_besides_progress(stderr.text()) == ["pystanmods: interrupted"]
    _assert_gone(chains)
    _assert_nothing_left(tmp_path)
    assert _sockets(tmp_path) == []


API_SCRIPT = """
import asyncio
import sys
import pandas as pd
import pystanmods as psm


def fit_twice():
    try:
        psm.fit("model1", pd.read_csv(sys.argv[1]), chains=2, iter_warmup=int(sys.argv[4]), iter_sampling=5000,
                seed=1, compute_log_lik=False, compute_y_rep=False)
    except KeyboardInterrupt as error:
        print("interrupted:", error, flush=True)
        # The same process fits again: its chain processes were replaced.
        fit = psm.fit("model1", pd.read_csv(sys.argv[2]), chains=2, iter_warmup=200, iter_sampling=200, seed=2,
                      show_progress=False)
        print("refit draws", fit.idata.posterior.sizes["draw"], flush=True)
        raise


async def in_notebook():
    fit_twice()


if sys.argv[3] == "loop":
    asyncio.run(in_notebook())
else:
    fit_twice()
"""


@pytest.mark.parametrize(
    ("sig", "where", "moment"),
    [(signal.SIGINT, "script", "warmup"), (signal.SIGTERM, "script", "warmup"), (signal.SIGINT, "loop", "warmup"),
     (signal.SIGINT, "script", "at-the-bar"), (signal.SIGTERM, "script", "drawing"),
     (signal.SIGINT, "loop", "at-the-bar"), (signal.SIGTERM, "loop", "drawing")],
    ids=["SIGINT", "SIGTERM", "SIGINT-in-a-running-loop", "SIGINT-at-the-bar", "SIGTERM-drawing",
         "SIGINT-in-a-running-loop-at-the-bar", "SIGTERM-in-a-running-loop-drawing"],
)
def test_api_fit_interrupted_raises_keyboardinterrupt_and_fits_again(
    sig: signal.Signals, where: str, moment: str, csv_files: dict[str, Path], tmp_path: Path
) -> None:
    """A plain script, and a fit inside a running event loop (as in Jupyter,
    where the chains run from a helper thread): there the refit's chains died
    of SIGSEGV until the model was first loaded in the calling thread."""
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(API_SCRIPT))
    env = _env(tmp_path, PYSTANMODS_ENGINE="pystan")
    warmup = DRAWING_WARMUP if moment == "drawing" else 5000
    process, stderr = _start([sys.executable, str(script), str(csv_files["big"]), str(csv_files["small"]), where,
                              str(warmup)], tmp_path, env)
    chains, seconds = _interrupt(process, stderr, sig, moment)
    stdout = process.stdout.read().decode()
    # An unhandled KeyboardInterrupt ends Python by SIGINT: a shell reports 130.
    assert process.returncode == -signal.SIGINT, stderr.text()
    assert "interrupted: sampling model1 was interrupted; its chains were stopped" in stdout
    assert "refit draws 200" in stdout, stderr.text()
    text = stderr.text()
    # The traceback runs from the script to pystanmods' raise, through no
    # asyncio task, httpstan or aiohttp code (the loop variant's own
    # asyncio.run frames are the script's).
    assert not re.search(r"CancelledError|httpstan/|aiohttp/|Exception in callback", text), text
    assert _lines_besides_progress(text)[-1].startswith("KeyboardInterrupt: sampling model1 was interrupted")
    _assert_gone(chains)
    _assert_nothing_left(tmp_path)
    assert _sockets(tmp_path) == []


CMDSTAN_LIKE_SCRIPT = """
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pystanmods.engines import interrupts


class Engine:
    # The engine's binary is `sleep`, run as cmdstanpy runs CmdStan: one
    # process per chain, each waited for by a thread reading its output, and
    # more chains (4) than threads (2), so that two wait in the queue.
    def binaries(self, program, directory):
        return [Path(shutil.which("sleep"))]

    @interrupts.stop_cmdstan_on_interrupt
    def sample(self, program, directory):
        def chain(i):
            process = subprocess.Popen(["sleep", "300"], stdout=subprocess.PIPE)
            process.stdout.read()
            return process.wait()
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(chain, i) for i in range(4)]
            print("started", flush=True)
        return [f.result() for f in futures]


class Program:
    name = "fake"


Engine().sample(Program(), Path("."))
"""


# Back in `make test` (it was under -m slow). The hang was fixed first (the chains
# are stopped by a thread woken through the wakeup fd, not by the Python-level
# handler: 3 of 18 runs of the four cases hung before, none of 96 after). The orphan
# left in 2 of those 96 runs at SIGTERM-at-start came from CPython issue 90882
# (test_chains_of_a_thread_whose_join_was_cut_short_are_still_stopped). After that
# fix, the script below run outside pytest with the signal as here: 0 orphans, hangs
# or wrong exits in 500 runs (SIGTERM and SIGINT at start 156 and 155, chains
# running 95 and 94), against 4 orphans in 176 SIGTERM-at-start runs of the code
# before, measured alongside.
@pytest.mark.parametrize("moment", ["at-start", "chains-running"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cmdstan_style_chains_are_stopped_on_interrupt(sig: signal.Signals, moment: str, tmp_path: Path) -> None:
    """The CmdStan engine's interrupt handling, run here without CmdStan: the
    chains are child processes waited for by threads, as in cmdstanpy.

    "at-start": the signal is sent as soon as the chains are submitted, when
    they may not exist yet, or be forked but not yet running the binary (a
    single sweep of the children missed those). "chains-running": once two
    chains run; the two queued chains start as soon as those are killed.
    """
    script = tmp_path / "chains.py"
    script.write_text(textwrap.dedent(CMDSTAN_LIKE_SCRIPT))
    token = f"PYSTANMODS_TEST_TOKEN={tmp_path}"
    env = _env(tmp_path)
    process, stderr = _start([sys.executable, str(script)], tmp_path, env)
    assert process.stdout.readline() == b"started\n"
    chains: list[int] = []
    if moment == "chains-running":
        deadline = time.monotonic() + 30
        while len(chains := _children(process.pid)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    process.send_signal(sig)
    _wait_or_kill(process, chains or _with_token(token), sig.name)
    assert process.returncode == -signal.SIGINT
    assert stderr.text().rstrip().endswith("KeyboardInterrupt: sampling fake was interrupted; its chains were stopped")
    _assert_gone(chains)
    _assert_nothing_left(tmp_path)


def test_chains_of_a_thread_whose_join_was_cut_short_are_still_stopped() -> None:
    """The cause of the stand-in test's orphans: on Python 3.10-3.12 a join()
    cut short by an exception from a signal handler (the KeyboardInterrupt in
    cmdstanpy's ``with ThreadPoolExecutor``) marks the joined thread stopped
    while it runs on (CPython issue 90882). The stopper took it for ended and
    returned; the thread then started its next chain, and the interpreter, not
    joining it either, exited and left that chain running.

    Here a thread starts its chain (``sleep``) 0.5 s after the main thread's
    join of it was cut short: the stopper must wait for the thread, kill the
    chain it starts, and return only once the thread has ended.
    """
    from pystanmods.engines import interrupts

    sleep = Path(shutil.which("sleep")).resolve()
    spawned: list[subprocess.Popen] = []

    def chain() -> None:
        time.sleep(0.5)
        spawned.append(subprocess.Popen([str(sleep), "300"]))
        spawned[-1].wait()

    class Cut(Exception):
        pass

    def cut(signum: int, frame: object) -> None:
        raise Cut

    thread = threading.Thread(target=chain)
    previous = signal.signal(signal.SIGALRM, cut)
    try:
        # quiet: a bound for a loaded machine, far above the 0.5 s the thread
        # waits before its chain.
        with interrupts._ChainStopper([sleep], [], on_stop=lambda: None, quiet=30.0) as stopper:
            thread.start()
            with pytest.raises(Cut):
                signal.setitimer(signal.ITIMER_REAL, 0.1)
                thread.join()
            stopper.stop_and_wait()
            assert thread not in threading.enumerate(), "the stopper returned while the thread still ran"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        # Whatever the stopper did, leave no chain behind (join() cannot be
        # trusted on this thread, which is the point).
        deadline = time.monotonic() + 10
        while thread in threading.enumerate() and time.monotonic() < deadline:
            for process in spawned:
                process.kill()
            time.sleep(0.05)
    assert len(spawned) == 1 and spawned[0].returncode == -signal.SIGTERM


COMPILE_LIKE_SCRIPT = """
import asyncio
import subprocess
import sys
from pathlib import Path

from pystanmods.compile import cache
from pystanmods.engines.base import Engine, Program


class Engine(Engine):
    # Builds as httpstan does: asyncio.run, with the compiler started from an
    # executor thread; the "compiler" is a driver (sh) that waits for a
    # process of its own (sleep), like gcc for cc1plus.
    name = "fake"

    def stan_version(self):
        return "2.35.0"

    def default_compile_options(self):
        return {}

    def build(self, program, directory):
        async def compile():
            def driver():
                print("compiling", flush=True)
                subprocess.run(["sh", "-c", "sleep 300 & wait"], check=True)
            await asyncio.get_running_loop().run_in_executor(None, driver)
        asyncio.run(compile())
        (directory / "model.bin").write_text("built")

    def is_built(self, program, directory):
        return (directory / "model.bin").is_file()

    def binaries(self, program, directory):
        return [directory / "model.bin"]

    def sample(self, *args, **kwargs):
        raise NotImplementedError

    def log_prob(self, *args, **kwargs):
        raise NotImplementedError


cache.compile_program(Program("fake", "model {}"), Engine(), quiet=True)
"""


def _compilers(token: str) -> list[str]:
    """The command names of the fit's processes other than Python."""
    names = []
    for pid in _with_token(token):
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            pass
    return [name for name in names if not name.startswith("python") and name != "pystanmods"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_compile_interrupted_stops_the_compiler(sig: signal.Signals, tmp_path: Path) -> None:
    """The signal goes to the Python process alone (``kill PID``, a job
    scheduler), not to its process group as Ctrl-C in a terminal: before,
    SIGTERM ended Python at once and left the compiler (here: sh and its
    sleep) running as orphans, and SIGINT waited for the compiler to finish."""
    script = tmp_path / "compile.py"
    script.write_text(textwrap.dedent(COMPILE_LIKE_SCRIPT))
    token = f"PYSTANMODS_TEST_TOKEN={tmp_path}"
    env = _env(tmp_path, PYSTANMODS_CACHE_DIR=str(tmp_path / "cache"))
    process, stderr = _start([sys.executable, str(script)], tmp_path, env)
    assert process.stdout.readline() == b"compiling\n"
    deadline = time.monotonic() + 30
    while _compilers(token).count("sleep") < 1:
        assert time.monotonic() < deadline, _compilers(token)
        time.sleep(0.05)
    process.send_signal(sig)
    _wait_or_kill(process, _with_token(token), sig.name)
    # First, so that a failure leaves no compiler behind either.
    _assert_nothing_left(tmp_path)
    assert process.returncode == -signal.SIGINT, stderr.text()
    assert stderr.text().rstrip().endswith("KeyboardInterrupt")
    # Nothing recorded as built: the next compile starts again.
    assert not list((tmp_path / "cache").rglob("compiled.json"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_real_compile_interrupted_exits_130_and_leaves_no_compiler(
    sig: signal.Signals, csv_files: dict[str, Path], tmp_path: Path
) -> None:
    """The same with httpstan and the C++ compiler: a fit whose model is not
    yet in the (empty, private) cache, signalled once the compiler runs. Costs a
    few seconds of compiling, not a whole compile."""
    token = f"PYSTANMODS_TEST_TOKEN={tmp_path}"
    env = _env(tmp_path, PYSTANMODS_CACHE_DIR=str(tmp_path / "cache"), PYSTANMODS_ENGINE="pystan")
    process, stderr = _start([sys.executable, "-m", "pystanmods.cli.main", "fit", "model1", str(csv_files["small"]),
                              "-o", "small.nc", "--chains", "2", "--seed", "1"], tmp_path, env)
    deadline = time.monotonic() + 120
    # gcc's compiler proper (a grandchild of the fit), or clang's.
    while not {"cc1plus", "clang", "clang++"} & set(_compilers(token)):
        assert process.poll() is None, stderr.text()
        assert time.monotonic() < deadline, "the C++ compiler never started"
        time.sleep(0.1)
    process.send_signal(sig)
    _wait_or_kill(process, _with_token(token), sig.name)
    _assert_nothing_left(tmp_path)
    assert process.returncode == 130, stderr.text()
    lines = _lines_besides_progress(stderr.text())
    assert lines[0].startswith("pystanmods: compiling model1") and lines[1:] == ["pystanmods: interrupted"]
    assert not list((tmp_path / "cache").rglob("compiled.json")) and not (tmp_path / "small.nc").exists()
    # Stopped, not waited for: no module was linked (before, SIGINT waited
    # for the compiler to finish the build).
    assert not list((tmp_path / "cache").rglob("*.so"))


def _cmdstanpy_error(retcodes: str) -> RuntimeError:
    # The shape of cmdstanpy 1.3's error after a failed run (CmdStanModel.sample
    # and RunSet.__repr__), here with CmdStan's own error line.
    return RuntimeError(
        "Error during sampling:\n\nCommand and output files:\nRunSet: chains=2, chain_ids=[1, 2], num_processes=2\n"
        f" cmd (chain 1):\n\t['/cache/model1', 'id=1']\n retcodes={retcodes}\n per-chain output files (showing chain 1"
        " only):\n csv_file:\n\t/tmp/x.csv\n console_msgs (if any):\n\t/tmp/x.txt"
    )


@pytest.mark.parametrize("retcodes", ["[-7, 0]", "[1, 0]"])
def test_a_crashed_cmdstan_process_is_named_with_the_model_and_cache_entry(retcodes: str, tmp_path: Path) -> None:
    """Read by the CmdStan engine from cmdstanpy's error: a negative return
    code is a CmdStan process killed by that signal; others pass unchanged."""
    from pystanmods.engines import interrupts

    class Engine:
        def binaries(self, program: Program, directory: Path) -> list[Path]:
            return [directory / "model1"]

        @interrupts.stop_cmdstan_on_interrupt
        def sample(self, program: Program, directory: Path) -> None:
            raise _cmdstanpy_error(retcodes)

    with pytest.raises(RuntimeError) as raised:
        Engine().sample(Program("model1", ""), tmp_path)
    if retcodes.startswith("[-7"):
        assert str(raised.value) == interrupts.chain_died("model1", "signal SIGBUS", tmp_path).args[0]
        assert "a chain process of model1 died while sampling (signal SIGBUS)" in str(raised.value)
        assert str(tmp_path) in str(raised.value)
    else:
        assert str(raised.value).startswith("Error during sampling")


def test_a_fit_leaves_no_socket_files(csv_files: dict[str, Path], tmp_path: Path) -> None:
    # httpstan binds one Unix socket per chain in the temporary directory
    # (TMPDIR, here the test's own); before, each fit left both behind.
    env = _env(tmp_path, PYSTANMODS_ENGINE="pystan")
    before = _sockets(tmp_path)
    result = subprocess.run([sys.executable, "-m", "pystanmods.cli.main", "fit", "model1", str(csv_files["small"]),
                             "-o", "small.nc", "--chains", "2", "--iter-warmup", "100", "--iter-sampling", "100",
                             "--seed", "3", "--quiet"], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert before == [] and _sockets(tmp_path) == []


@pytest.fixture
def bound_sockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """An in-process fit's temporary directory of its own, and the socket paths httpstan binds there.

    httpstan names each chain's socket with ``tempfile.mkstemp``: recording
    those names shows the test watches the directory the sockets really go to.
    Sockets that other runs left in the shared directory are not touched.
    """
    directory = tmp_path / "tmpdir"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    bound: list[str] = []
    mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = mkstemp(*args, **kwargs)
        if Path(name).name.startswith("httpstan_"):
            bound.append(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    return directory, bound


def _left_sockets(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("httpstan_*.sock"))


SMALL_FIT = {"chains": 2, "iter_warmup": 100, "iter_sampling": 100, "seed": 3, "show_progress": False,
             "engine": "pystan"}


def test_an_in_process_fit_leaves_no_socket_files(bound_sockets: tuple[Path, list[str]]) -> None:
    # Before, each chain left its httpstan_*.sock in the temporary directory
    # (3,542 of them in /tmp from test runs).
    directory, bound = bound_sockets
    data = psm.get_model("model1").simulate(seed=2, n_cell_lines=20).data
    fit = psm.fit("model1", data, **SMALL_FIT)
    assert fit.idata.posterior.sizes["draw"] == 100
    assert tempfile.gettempdir() == str(directory)
    assert len(bound) == 2 and all(Path(name).parent == directory for name in bound)
    assert _left_sockets(directory) == []


def test_chains_that_fail_in_stan_leave_no_socket_files(bound_sockets: tuple[Path, list[str]]) -> None:
    # sigma = -1 is outside its support: every chain fails to initialise.
    directory, bound = bound_sockets
    data = psm.get_model("model1").simulate(seed=2, n_cell_lines=20).data
    with pytest.raises(RuntimeError, match="could not initialise|Initialization failed"):
        psm.fit("model1", data, inits={"sigma": -1.0}, **SMALL_FIT)
    assert len(bound) == 2
    assert _left_sockets(directory) == []


def test_chains_submitted_to_a_stopped_pool_leave_no_socket_files(
    bound_sockets: tuple[Path, list[str]]
) -> None:
    """A chain submitted after its pool was stopped, as when a signal arrives
    while the chains are being started, never runs; httpstan has bound its
    socket all the same. Here the pool is shut down before the fit, so the
    submit of every chain fails."""
    from pystanmods.engines import samplers

    directory, bound = bound_sockets
    data = psm.get_model("model1").simulate(seed=2, n_cell_lines=20).data
    samplers.start().shutdown(wait=True)
    try:
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            psm.fit("model1", data, **SMALL_FIT)
    finally:
        samplers.stop()
    assert len(bound) == 2
    assert _left_sockets(directory) == []
    # The next fit forks a new pool and works.
    assert psm.fit("model1", data, **SMALL_FIT).idata.posterior.sizes["draw"] == 100
    assert len(bound) == 4 and _left_sockets(directory) == []


def test_only_httpstan_chain_functions_have_their_socket_removed(tmp_path: Path) -> None:
    """The socket path is read from httpstan 4.13's chain function only; a
    function of another shape (another httpstan, or not httpstan) leaves
    every path alone, and a path that is not a socket is never removed."""
    import socket

    from httpstan import services_stub

    from pystanmods.engines import samplers

    chain = services_stub._make_lazy_function_wrapper("hmc_nuts_diag_e_adapt", "models/abc")
    path = str(tmp_path / "httpstan_abc.sock")
    assert samplers._socket_of(functools.partial(chain, path, num_samples=10)) == path
    assert samplers._socket_of(functools.partial(chain, path, "extra")) is None
    assert samplers._socket_of(functools.partial(str, path)) is None
    assert samplers._socket_of(functools.partial(chain, str(tmp_path / "other.sock"))) is None

    pool = samplers.SamplerPool()
    try:
        with socket.socket(socket.AF_UNIX) as bound:
            bound.bind(path)
            pool.submit(functools.partial(str, path)).result()
            assert Path(path).exists()
        # httpstan's shape, but a regular file at the path: kept.
        regular = tmp_path / "httpstan_regular.sock"
        regular.write_text("not a socket")
        samplers._unlink_socket(str(regular))
        assert regular.exists()
        samplers._unlink_socket(path)
        assert not Path(path).exists()
    finally:
        pool.shutdown(wait=True)


def _chains_once_sampling(process: subprocess.Popen, stderr: _Stderr, tmp_path: Path) -> list[int]:
    """The fit's chain processes, once both chains' sockets are in its TMPDIR (sampling began)."""
    deadline = time.monotonic() + 300
    while len(_sockets(tmp_path)) < 2:
        assert process.poll() is None, stderr.text()
        assert time.monotonic() < deadline, "sampling never started"
        time.sleep(0.2)
    return _children(process.pid)


#: A fit in a thread, as a Dask worker runs one: a short fit whose thread
#: then ends, and a long one in a second thread.
_FITS_IN_THREADS = textwrap.dedent("""
    import sys, threading
    import pandas as pd
    import pystanmods as psm
    def fit(path, iterations):
        psm.fit("model1", pd.read_csv(path), engine="pystan", chains=2, iter_warmup=iterations,
                iter_sampling=iterations, seed=1, compute_log_lik=False, compute_y_rep=False, show_progress=False)
    first = threading.Thread(target=fit, args=(sys.argv[1], 200))
    first.start(); first.join()
    print("LONG FIT", file=sys.stderr, flush=True)
    second = threading.Thread(target=fit, args=(sys.argv[2], 5000))
    second.start(); second.join()
""")


def test_chains_of_a_fit_in_a_thread_die_with_their_process(csv_files: dict[str, Path], tmp_path: Path) -> None:
    """A Dask worker fits in a thread of its pool. Its chain processes were
    forked from that thread, so they had no parent-death signal (it would have
    fired when the thread ended): a worker killed mid-fit left its chains
    running as orphans (2 found after an SBC run was stopped). They are
    forked from a keeper thread now. The short first fit shows that its
    thread's end does not stop the chains a later fit uses."""
    psm.compile_model("model1", engine="pystan", quiet=True)
    env = _env(tmp_path, PYSTANMODS_ENGINE="pystan")
    process, stderr = _start([sys.executable, "-c", _FITS_IN_THREADS, str(csv_files["small"]),
                              str(csv_files["big"])], tmp_path, env)
    stderr.wait_for(re.compile(rb"LONG FIT"), process)
    chains = _chains_once_sampling(process, stderr, tmp_path)
    assert len(chains) == 2, chains
    process.kill()
    process.wait(timeout=EXIT_WITHIN)
    _assert_gone(chains)
    _assert_nothing_left(tmp_path)


def test_a_crashed_chain_process_is_named_with_the_model_and_cache_entry(
    csv_files: dict[str, Path], tmp_path: Path
) -> None:
    entry = psm.compile_model("model1", engine="pystan", quiet=True).directory
    env = _env(tmp_path, PYSTANMODS_ENGINE="pystan")
    process, stderr = _start([sys.executable, "-m", "pystanmods.cli.main", "fit", "model1", str(csv_files["big"]),
                              "-o", "big.nc", *LONG_FIT, "--quiet"], tmp_path, env)
    # --quiet shows no progress: the chains' sockets in TMPDIR say sampling began.
    chains = _chains_once_sampling(process, stderr, tmp_path)
    assert len(chains) == 2
    os.kill(chains[0], signal.SIGBUS)  # what a truncated model did to its chain
    _wait_or_kill(process, chains, "a chain's SIGBUS")
    lines = _lines_besides_progress(stderr.text())
    assert process.returncode == 2
    assert len(lines) == 1, lines
    assert "a chain process of model1 died while sampling (signal SIGBUS)" in lines[0]
    assert str(entry) in lines[0]
    _assert_gone(chains)
    # No orphans: the crashes each left two chain workers of ~156 MB.
    _assert_nothing_left(tmp_path)
    # The other chain's socket too: its process was ended by the pool's collapse.
    assert _sockets(tmp_path) == []


# --------------------------------------------------------------------------
# Cache integrity


class FileEngine(Engine):
    """Builds by copying a file (an ELF binary) into the entry, counting builds."""

    name = "file"

    def __init__(self, source: Path) -> None:
        self.source = source
        self.builds = 0

    def stan_version(self) -> str:
        return "2.35.0"

    def default_compile_options(self) -> dict:
        return {}

    def build(self, program: Program, directory: Path) -> None:
        shutil.copy(self.source, directory / "model.bin")
        self.builds += 1

    def is_built(self, program: Program, directory: Path) -> bool:
        return (directory / "model.bin").is_file()

    def binaries(self, program: Program, directory: Path) -> list[Path]:
        return [directory / "model.bin"]

    def sample(self, *args: object, **kwargs: object) -> Draws:
        raise NotImplementedError

    def log_prob(self, *args: object, **kwargs: object) -> float:
        raise NotImplementedError


@pytest.fixture
def file_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FileEngine:
    monkeypatch.setenv("PYSTANMODS_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "binary"
    shutil.copy(sys.executable if Path(sys.executable).stat().st_size > 8192 else "/bin/ls", source)
    return FileEngine(source.resolve())


def _damaged_notices(err: str) -> list[str]:
    return [line for line in err.splitlines() if "is damaged" in line]


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "delete"])
def test_a_damaged_build_is_rebuilt_with_one_notice(
    damage: str, file_engine: FileEngine, capsys: pytest.CaptureFixture
) -> None:
    program = Program("m", "model {}")
    first = cache.compile_program(program, file_engine, quiet=True)
    binary = first.directory / "model.bin"
    recorded = cache._read_marker(first.directory)["sha256"]
    assert recorded == {"model.bin": integrity.sha256(file_engine.source)}
    assert cache.compile_program(program, file_engine, quiet=True).cached
    capsys.readouterr()
    if damage == "truncate":
        os.truncate(binary, 4096)
    elif damage == "flip a byte":
        # Same size, a byte changed in the middle: only the checksum sees it.
        with binary.open("r+b") as f:
            f.seek(binary.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
    else:
        binary.unlink()
    again = cache.compile_program(program, file_engine, quiet=True)
    assert not again.cached and file_engine.builds == 2
    notices = _damaged_notices(capsys.readouterr().err)
    if damage == "delete":
        assert notices == [f"pystanmods: the cached build of m in {first.directory} is damaged "
                           "(the compiled files are missing); rebuilding it"]
    else:
        assert len(notices) == 1 and "model.bin does not match its recorded sha256" in notices[0]
    assert integrity.sha256(binary) == integrity.sha256(file_engine.source)
    assert cache.compile_program(program, file_engine, quiet=True).cached


def test_an_entry_without_checksums_is_checked_then_adopted(
    file_engine: FileEngine, capsys: pytest.CaptureFixture
) -> None:
    program = Program("m", "model {}")
    directory = cache.compile_program(program, file_engine, quiet=True).directory
    marker = cache._read_marker(directory)
    del marker["sha256"]  # as written before checksums were recorded
    cache._write_marker(directory, marker)
    # Whole: adopted without a rebuild, its checksum recorded.
    assert cache.compile_program(program, file_engine, quiet=True).cached
    assert cache._read_marker(directory)["sha256"] == {"model.bin": integrity.sha256(file_engine.source)}
    # Cut short: its ELF headers describe more bytes than it has.
    cache._write_marker(directory, marker)
    os.truncate(directory / "model.bin", 4096)
    capsys.readouterr()
    assert not cache.compile_program(program, file_engine, quiet=True).cached
    notices = _damaged_notices(capsys.readouterr().err)
    assert len(notices) == 1 and "model.bin has 4,096 bytes, its ELF headers describe" in notices[0]
    assert file_engine.builds == 2


def _seed_cache(root: Path) -> Path:
    """A throwaway cache holding a copy of model1's build from the user cache (no compile)."""
    built = psm.compile_model("model1", engine="pystan", quiet=True).directory
    entry = root / built.relative_to(cache.cache_root())
    shutil.copytree(built, entry)
    return entry


def _fit_small(csv: Path, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pystanmods.cli.main", "fit", "model1", str(csv), "-o", "small.nc",
                           "--chains", "2", "--iter-warmup", "100", "--iter-sampling", "100", "--seed", "4", "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)


def test_a_damaged_httpstan_copy_is_replaced(csv_files: dict[str, Path], tmp_path: Path) -> None:
    """httpstan keeps its own copy of each build (its model directory, under
    the pystanmods cache); a truncated copy made every fit die of SIGBUS (exit 135)."""
    root = tmp_path / "cache"
    entry = _seed_cache(root)
    env = _env(tmp_path, PYSTANMODS_CACHE_DIR=str(root), PYSTANMODS_ENGINE="pystan")
    first = _fit_small(csv_files["small"], tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert not _damaged_notices(first.stderr)
    (built,) = (entry / "httpstan").glob("*.so")
    (copy,) = (root / "httpstan-4.13.0" / "models").glob(f"*/{built.name}")
    os.truncate(copy, 4096)
    second = _fit_small(csv_files["small"], tmp_path, env)
    assert second.returncode == 0, second.stderr
    notices = _damaged_notices(second.stderr)
    assert len(notices) == 1 and notices[0].startswith(f"pystanmods: httpstan's copy of model1 in {copy.parent}")
    assert f"replacing it from {entry}" in notices[0]
    assert integrity.sha256(copy) == integrity.sha256(built)


def test_a_module_left_beside_httpstan_copy_is_removed(tmp_path: Path) -> None:
    """httpstan loads the first extension module it lists in a model directory.
    A build is named by the interpreter that made it, so after a rebuild
    elsewhere an interpreter's copy can hold a module under another name
    beside the verified one; were that one damaged, every fit that listed it
    first died of SIGBUS (exit 135, reproduced by hand), while the verified
    module was found whole and nothing was replaced."""
    source, target = tmp_path / "entry", tmp_path / "copy"
    source.mkdir()
    shutil.copy("/bin/ls", source / "stan_services_model_new.so")
    (source / "stderr.log").write_text("compiler output")
    integrity.copy_files(source, target)
    (target / "fits").mkdir()  # httpstan's own fits: not part of the build, kept
    (target / "notes.txt").write_text("not a module: kept")
    binaries = [source / "stan_services_model_new.so"]
    assert integrity.differences(source, target, binaries) is None
    stray = target / "stan_services_model_old.so"
    stray.write_bytes((source / "stan_services_model_new.so").read_bytes()[:4096])
    assert integrity.differences(source, target, binaries) == (
        "it also holds stan_services_model_old.so (4,096 bytes), not part of the verified build")
    integrity.copy_files(source, target, binaries)
    assert sorted(p.name for p in target.iterdir()) == ["fits", "notes.txt", "stan_services_model_new.so",
                                                         "stderr.log"]
    assert integrity.differences(source, target, binaries) is None


def test_a_damaged_module_beside_httpstan_copy_is_removed_before_a_fit(
    csv_files: dict[str, Path], tmp_path: Path
) -> None:
    """The same through a real fit: a truncated module under another name
    beside httpstan's whole copy is named in one notice and removed."""
    root = tmp_path / "cache"
    entry = _seed_cache(root)
    env = _env(tmp_path, PYSTANMODS_CACHE_DIR=str(root), PYSTANMODS_ENGINE="pystan")
    first = _fit_small(csv_files["small"], tmp_path, env)
    assert first.returncode == 0, first.stderr
    (built,) = (entry / "httpstan").glob("*.so")
    (copy,) = (root / "httpstan-4.13.0" / "models").glob(f"*/{built.name}")
    # httpstan takes whichever module the file system lists first; with two
    # strays one is likelier to come first. Either way the old code gave no
    # notice and kept them.
    strays = [copy.parent / f"stan_services_model_{name}{''.join(built.suffixes)}" for name in ("0000", "zzzz")]
    for stray in strays:
        stray.write_bytes(built.read_bytes()[:4096])
    second = _fit_small(csv_files["small"], tmp_path, env)
    assert second.returncode == 0, second.stderr
    notices = _damaged_notices(second.stderr)
    assert len(notices) == 1 and notices[0].startswith(f"pystanmods: httpstan's copy of model1 in {copy.parent}")
    assert f"it also holds {strays[0].name} (4,096 bytes)" in notices[0]
    assert sorted(copy.parent.glob("*.so")) == [copy]


@pytest.mark.slow
def test_a_truncated_model_in_the_cache_is_rebuilt_and_fits(csv_files: dict[str, Path], tmp_path: Path) -> None:
    """The real thing: model1's own compiled module cut to 4 KiB. Costs one
    compile (about a minute); the same logic runs in CI through
    test_a_damaged_build_is_rebuilt_with_one_notice."""
    root = tmp_path / "cache"
    entry = _seed_cache(root)
    env = _env(tmp_path, PYSTANMODS_CACHE_DIR=str(root), PYSTANMODS_ENGINE="pystan")
    (built,) = (entry / "httpstan").glob("*.so")
    os.truncate(built, 4096)
    result = _fit_small(csv_files["small"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    notices = _damaged_notices(result.stderr)
    assert len(notices) == 1 and notices[0].startswith(f"pystanmods: the cached build of model1 in {entry}")
    assert "pystanmods: compiled model1" in result.stderr
    (rebuilt,) = (entry / "httpstan").glob("*.so")
    assert integrity.elf_shortfall(rebuilt) is None
    # The compile ran in the fit's working directory and left no object files there.
    assert not (tmp_path / "build").exists()
    assert cache._read_marker(entry)["sha256"] == {f"httpstan/{rebuilt.name}": integrity.sha256(rebuilt)}
