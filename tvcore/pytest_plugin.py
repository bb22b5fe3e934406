"""The tvcore pytest plugin, registered under the ``pytest11`` entry point.

Options: ``--gpu``, ``--data-root``, ``--weights``, ``--update-baselines``,
``--results-dir``, ``--baselines-dir``, ``--seeds``, and those shared with
``tvcore run``: ``--workers``, ``--pool``, ``--fresh``, ``--finetuned``, and
``--plan`` (each selected suite's plan in the summary, no run). Options
that cannot be honoured are usage errors before anything runs; a user's mistake
met while running (a bad baseline file, a dataset tree) fails its test with one
line naming the file, without a traceback. Fixtures: ``tvcore_options``,
``tvcore_runs`` (runs suites once per (suite, seed) per session, writes their
records and plots, gates them against the baselines or, with
``--update-baselines --seeds N``, writes each suite's baseline pooled over seeds
0..N-1) and ``tvcore_seed``. At the end of the session
a summary table and each experiment's tables are printed.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .errors import TvcoreError, UsageError

MARKERS = {
    "speed": "speed benchmark (pytest-benchmark); select with -k speed or -m speed",
    "micro": "embedded micro-reproduction on the tiny model and digits (CPU, minutes)",
    "real": "real suite: needs --data-root and --weights (OpenCLIP ViT-B-32, real datasets)",
    "gpu": "runs on CUDA when --gpu is given",
}


def pytest_addoption(parser):
    group = parser.getgroup("tvcore", "tvcore task-arithmetic suites")
    group.addoption("--gpu", action="store_true", help="run the suites on CUDA (a usage error without CUDA)")
    group.addoption("--data-root", default=os.environ.get("TVCORE_DATA"),
                    help="root of the real datasets: <root>/mini-ddsm/..., <root>/<Task>/{train,test} "
                         "(default: $TVCORE_DATA)")
    group.addoption("--weights", default=os.environ.get("TVCORE_WEIGHTS"),
                    help="OpenCLIP ViT-B-32 weights file for the real suites (default: $TVCORE_WEIGHTS)")
    group.addoption("--update-baselines", action="store_true",
                    help="write the measured metrics as the new baselines (atomically) instead of gating")
    group.addoption("--results-dir", default="results", help="where result records and plots go")
    group.addoption("--baselines-dir", default=None, help="baseline files (default: <rootdir>/baselines)")
    group.addoption("--seeds", type=int, default=1,
                    help="run each suite with fine-tuning seeds 0..N-1 and record each metric's seed spread "
                         "(the reference checks use it); with --update-baselines, each suite's baseline pools "
                         "them. Without it, each gated suite runs its baseline's most central seed")
    group.addoption("--quick-gelu", action="store_true", default=None, dest="quick_gelu",
                    help="the real suites' activation when neither the --weights file nor its tag records it "
                         "(OpenAI-trained CLIP weights); never forced over what a file records")
    group.addoption("--no-quick-gelu", action="store_false", dest="quick_gelu",
                    help="plain GELU for the real suites' weights when nothing records the activation")
    group.addoption("--accept-improvements", action="store_true",
                    help="let a headline far better than its baseline pass (otherwise it fails as a suspicious "
                         "improvement); rebuild the baseline afterwards in a commit that says why")
    group.addoption("--plan", action="store_true", dest="tvcore_plan",
                    help="plan each selected suite (fine-tuning steps, images evaluated, pixel cache, predicted "
                         "wall time, as tvcore run --plan), print the plans in the summary and skip the runs")
    from .cli import add_run_options

    add_run_options(group.addoption)


def pytest_configure(config):
    from .cli import freeze_at_exit

    freeze_at_exit()  # a session that imported torch ends a second sooner
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    if config.getoption("gpu", default=False):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--gpu was given but CUDA is not available on this machine "
                                    f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
    if config.getoption("seeds", default=1) < 1:
        raise pytest.UsageError("--seeds must be at least 1")
    _check_outputs(config)


def pytest_report_header(config):
    """Said at the start of the session: a GPU left unused by a session without
    --gpu (the suites then run on the CPU, for hours on the real ones)."""
    if config.getoption("gpu", default=False):
        return None
    import torch

    if torch.cuda.is_available():
        return (f"tvcore: CUDA is available ({torch.cuda.get_device_name(0)}) but unused: the suites run on the "
                "CPU; pass --gpu to run them on it")
    return None


@contextmanager
def _paced_bars_off_a_terminal(seconds: float = 30.0):
    """Progress bars written to a log rather than a terminal (CI) redraw at most
    every ``seconds`` (tqdm's TQDM_MININTERVAL, unless the user set it): a log keeps
    each bar's start and end, not hundreds of redraws."""
    if sys.stderr.isatty() or "TQDM_MININTERVAL" in os.environ:
        yield
        return
    os.environ["TQDM_MININTERVAL"] = str(seconds)
    try:
        yield
    finally:
        os.environ.pop("TQDM_MININTERVAL", None)


def _check_outputs(config) -> None:
    """Every folder the session would write to or read options from is checked
    now: a --results-dir that is a file must not cost a whole run's measurements."""
    from .cli import check_run_options, one_line
    from .errors import TvcoreError
    from .outputs import check_output_dir

    try:
        check_run_options(config.getoption("workers", default=None), config.getoption("pool", default=None),
                          config.getoption("finetuned", default=None), jobs=config.getoption("jobs", default=1))
        check_output_dir(config.getoption("results_dir", default="results"), "--results-dir")
        baselines = config.getoption("baselines_dir", default=None)
        if baselines is not None and config.getoption("update_baselines", default=False):
            check_output_dir(baselines, "--baselines-dir")
        elif baselines is not None and os.path.exists(baselines) and not os.path.isdir(baselines):
            raise UsageError(f"--baselines-dir {baselines} is a file, not a folder; give the baselines folder")
    except TvcoreError as exc:
        raise pytest.UsageError(one_line(exc)) from None


@dataclass
class Options:
    device: str
    data_root: str | None
    weights: str | None
    update_baselines: bool
    results_dir: Path
    baselines_dir: Path
    seeds: int
    workers: int | None = None  # None: automatic
    accept_improvements: bool = False
    quick_gelu: bool | None = None
    pool: str | None = None
    fresh: bool = False
    finetuned: str | None = None
    plan: bool = False  # --plan: plan the suites, run none
    jobs: int = 1  # --jobs N: fine-tunes trained side by side before each suite runs
    progress: bool = True  # progress bars and pool lines on the terminal (off with -q)


@dataclass
class CaseRun:
    case: str
    seed: int
    record: dict
    path: Path
    seconds: float
    gate: str = "not gated"
    notes: list = field(default_factory=list)
    suite: str | None = None  # the suite's name (``case`` without its seed); None: the case

    @property
    def suite_name(self) -> str:
        return self.suite or self.case


class Runs:
    """Runs each suite once per (suite, seed) in a session and keeps the records."""

    def __init__(self, options: Options):
        self.options = options
        self.contexts: dict = {}
        self.runs: dict[tuple[str, int], CaseRun] = {}
        self.written: set[str] = set()  # suites whose baseline this session wrote
        self.ci_seeds: dict[str, int] = {}
        self.spread: set[str] = set()  # suites whose records carry their seed spread
        self.plans: dict = {}  # suite -> tvcore.plan.Plan, with --plan
        self.config = None  # pytest's config, for the terminal (see visible)

    @contextmanager
    def visible(self, what: str):
        """Inside it, long work's progress (bars, the pool's lines) reaches the
        terminal instead of the test's captured output, after a line saying
        ``what`` runs; with -q it stays captured and no bars are drawn."""
        plugins = self.config.pluginmanager if self.config is not None else None
        capture = plugins.get_plugin("capturemanager") if plugins else None
        terminal = plugins.get_plugin("terminalreporter") if plugins else None
        if not self.options.progress or capture is None or terminal is None:
            yield
            return
        with capture.global_and_fixture_disabled(), _paced_bars_off_a_terminal():
            terminal.write_line(f"tvcore: {what}")
            yield

    def ci_seed(self, name: str) -> int:
        """The seed a suite is gated on: its baseline's most central seed (so a
        change of a few images cannot fail CI); 0 when writing baselines or
        without a seeded baseline."""
        if name not in self.ci_seeds:
            from . import baselines

            seed, path = 0, self.options.baselines_dir / f"{name}.json"
            if not self.options.update_baselines and path.is_file():
                try:
                    seed = baselines.central_seed(baselines.read_baseline(path))
                except TvcoreError:
                    seed = 0  # the gate reports the bad baseline in its own words
            self.ci_seeds[name] = seed
        return self.ci_seeds[name]

    def seed_records(self, run: "CaseRun") -> list[dict]:
        """The records of ``run``'s suite for seeds 0..N-1 of --seeds N, running
        the seeds this session has not run yet."""
        return [run.record if s == run.seed else self.run(run.suite_name, s).record
                for s in range(self.options.seeds)]

    def with_seed_spread(self, run: "CaseRun") -> "CaseRun":
        """With --seeds N (N >= 2): run the suite's other seeds and write every
        metric's per-seed values and SD into this run's record (``seed_spread``),
        where the reference checks read the measured training spread."""
        from .records import seed_spread, write_json

        n = self.options.seeds
        if n < 2 or run.suite_name in self.spread:
            return run
        run.record["seed_spread"] = seed_spread(self.seed_records(run))
        write_json(run.record, run.path)
        self.spread.add(run.suite_name)
        return run

    def context_options(self, suite, seed: int) -> dict:
        """The keyword arguments of :func:`tvcore.experiments.context_for` for this
        session's run of ``suite`` with ``seed`` (also what --jobs workers build theirs from)."""
        from .cli import context_options

        o = self.options
        return dict(device=o.device, data_root=o.data_root, weights=o.weights, progress=o.progress, seed=seed,
                    results_dir=str(o.results_dir), quick_gelu=o.quick_gelu if suite.model is None else None,
                    **context_options(o.workers, o.pool, o.fresh, o.finetuned))

    def context(self, suite, seed: int):
        from .experiments import context_for

        key = (repr(suite.model), repr(suite.recipe), seed)
        if key not in self.contexts:
            self.contexts[key] = context_for(suite, **self.context_options(suite, seed))
        return self.contexts[key]

    def run(self, name: str, seed: int | None = None) -> CaseRun:
        """The suite's run with this fine-tuning seed (default: :meth:`ci_seed`)."""
        from .experiments import SUITES, run_and_record

        seed = self.ci_seed(name) if seed is None else seed
        if self.options.plan:
            if name not in self.plans:
                from .parallel import plan_devices
                from .plan import plan_suite

                with user_errors_fail(name), self.visible(f"planning {name}"):
                    ctx = self.context(SUITES[name], seed)
                    self.plans[name] = plan_suite(SUITES[name], ctx, plan_devices(str(ctx.device), self.options.jobs))
            pytest.skip(f"--plan: {name} planned, not run (its plan is in the summary)")
        if (name, seed) not in self.runs:
            suite = SUITES[name]
            case = name if seed == 0 else f"{name}-seed{seed}"
            with user_errors_fail(case), self.visible(f"running {case}"):
                ctx = self.context(suite, seed)
                if self.options.jobs > 1:
                    from .parallel import train_entries

                    train_entries(suite, self.context_options(suite, seed), jobs=self.options.jobs, ctx=ctx)
                record, path = run_and_record(suite, ctx, case, self.options.results_dir, seed)
            self.runs[(name, seed)] = CaseRun(case, seed, record, path, record["timings"]["case_s"], suite=name)
        return self.runs[(name, seed)]

    def gate(self, run: CaseRun) -> None:
        """Judge a run against its suite's baseline (``<suite>.json``): fail on a
        gated metric that regressed, pass and say so on improvements, note the
        reported metrics that fell. With --update-baselines, write the suite's
        baseline instead, pooled over seeds 0..N-1 of --seeds N (running the seeds
        this session has not run yet), once per suite."""
        from . import results
        from .experiments import GATED_SUITES

        suite = run.suite_name
        path = self.options.baselines_dir / f"{suite}.json"
        self.with_seed_spread(run)
        if self.options.update_baselines:
            if suite not in self.written:
                records = self.seed_records(run)
                with user_errors_fail(run.case):
                    results.write_json(results.baseline_from_records(records, suites=len(GATED_SUITES)), path)
                self.written.add(suite)
                if self.options.seeds < 2:
                    run.notes.append(f"{suite}: a baseline of one seed has no SD and gates by the single-seed "
                                     f"test-set rule; pool seeds with {results.UPDATE_COMMAND}")
            run.gate = f"baseline written ({self.options.seeds} seed{'s' if self.options.seeds > 1 else ''})"
            return
        if not path.exists():
            run.gate = "no baseline"
            pytest.fail(f"no baseline for {suite} at {path}; create it with: {results.UPDATE_COMMAND}",
                        pytrace=False)
        run.gate = "bad baseline"
        with user_errors_fail(run.case):
            baseline = results.read_baseline(path)
            findings = results.gate(run.record, baseline, suites=len(GATED_SUITES))
        if not results.is_seeded(baseline):
            run.notes.append(f"{run.case}: {path} is a single-seed baseline (SD unknown): every metric gated by "
                             f"the test-set rule; rebuild with {results.UPDATE_COMMAND}")
        accept = self.options.accept_improvements
        improved = [f for f in findings if f.status in ("improved", "suspicious") and f.gated]
        run.notes.extend(f"improved: {f.message()}" for f in improved if f.status == "improved" or accept)
        run.notes.extend(f"reported: {f.message()}" for f in results.reported(findings))
        bad = results.failures(findings, accept_improvements=accept)
        if bad:
            run.gate = f"FAILED ({len(bad)})"
            pytest.fail(f"{run.case}: {len(bad)} metric(s) beyond tolerance against {path} (seed {run.seed}):\n"
                        + "\n".join("  " + f.message() for f in bad), pytrace=False)
        run.gate = f"passed ({len(improved)} improved)" if improved else "passed"


_RUNS = pytest.StashKey[Runs]()


class user_errors_fail:
    """Inside it, a :class:`TvcoreError` (a user's mistake: a bad file, a missing
    tree) fails the current test with its one line, without a traceback."""

    def __init__(self, case: str):
        self.case = case

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, TvcoreError):
            from .cli import one_line

            pytest.fail(f"{self.case}: {one_line(exc)}", pytrace=False)
        return False


def _options(config) -> Options:
    rootdir = Path(str(config.rootpath))
    baselines = config.getoption("baselines_dir")
    return Options(
        device="cuda" if config.getoption("gpu") else "cpu",
        data_root=config.getoption("data_root"),
        weights=config.getoption("weights"),
        update_baselines=config.getoption("update_baselines"),
        results_dir=Path(config.getoption("results_dir")),
        baselines_dir=Path(baselines) if baselines else rootdir / "baselines",
        seeds=config.getoption("seeds"),
        accept_improvements=config.getoption("accept_improvements"),
        quick_gelu=config.getoption("quick_gelu"),
        workers=config.getoption("workers"),
        pool=config.getoption("pool"),
        fresh=config.getoption("fresh"),
        finetuned=config.getoption("finetuned"),
        plan=config.getoption("tvcore_plan"),
        jobs=config.getoption("jobs"),
        progress=config.get_verbosity() >= 0,
    )


@pytest.fixture(scope="session")
def tvcore_options(pytestconfig) -> Options:
    return _options(pytestconfig)


@pytest.fixture(scope="session")
def tvcore_runs(pytestconfig, tvcore_options) -> Runs:
    if _RUNS not in pytestconfig.stash:
        pytestconfig.stash[_RUNS] = Runs(tvcore_options)
        pytestconfig.stash[_RUNS].config = pytestconfig
    return pytestconfig.stash[_RUNS]


def pytest_generate_tests(metafunc):
    if "tvcore_seed" in metafunc.fixturenames:
        seeds = metafunc.config.getoption("seeds", default=1)
        if seeds == 1:  # one run per suite: the seed its baseline gates (tvcore_runs.ci_seed)
            metafunc.parametrize("tvcore_seed", [None], ids=["ci-seed"])
        else:
            metafunc.parametrize("tvcore_seed", list(range(seeds)), ids=[f"seed{s}" for s in range(seeds)])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    runs = config.stash.get(_RUNS, None)
    if runs is not None and runs.plans:
        terminalreporter.section("tvcore plans")
        for plan in runs.plans.values():
            terminalreporter.write_line(plan.render())
    if runs is None or not runs.runs:
        return
    from tabulate import tabulate

    from . import report

    tr = terminalreporter
    tr.section("tvcore results")
    rows = []
    for run in runs.runs.values():
        rows.append([run.case, run.record["experiment"], run.gate, f"{run.seconds:.1f}", str(run.path)])
    tr.write_line(tabulate(rows, headers=["case", "experiment", "gate", "seconds", "record"], tablefmt="github"))
    from .cli import quick_gelu_line

    for line in sorted({quick_gelu_line(run.record) for run in runs.runs.values()}):
        tr.write_line(line)
    for run in runs.runs.values():
        if run.seed != runs.ci_seed(run.suite_name):
            continue
        tr.write_line("")
        tr.write_line(report.render(run.record))
        for note in run.notes:
            tr.write_line(note)
    for suite, records in _by_suite(runs).items():
        if len(records) > 1:
            tr.write_line("")
            tr.write_line(f"{suite} over {len(records)} seeds (fine-tuning seed; the data splits stay fixed):")
            tr.write_line(report.seed_table(records))


def _by_suite(runs: Runs) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for (name, _seed), run in sorted(runs.runs.items()):
        out.setdefault(name, []).append(run.record)
    return out
