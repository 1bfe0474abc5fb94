"""The run configuration: validated once at `init`, then read-only.

`build()` turns the raw `init` flags into a `Config`, rejecting every mistake
with a one-line `UsageError` before anything touches the repository. The
config round-trips through `config.json` (see FORMATS.md); `from_dict` refuses
a format newer than this code understands instead of guessing.
"""

from __future__ import annotations

import math
import re

from . import constraints, paths, record, sourcespec
from .flag_paths import check_artifacts, check_outputs, check_report_source, read_instructions, repo_relative
from .steering import parse_arms, parse_escalation
from .errors import UsageError

FORMAT = 1


class Margin(record.Record):
    """The practical-significance margin: absolute units or percent."""

    value: float = 0.0
    relative: bool = False

    def over(self, incumbent: float) -> float:
        """The margin in metric units when measured against `incumbent`."""
        return abs(incumbent) * self.value / 100.0 if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g}"


class Config(record.Record):
    run_command: str
    direction: str
    metric_name: str
    report_source: str = "stdout"
    metric_pattern: str | None = None
    trials: int = 1
    iterations: int = 20
    threshold: float | None = None
    patience: int = 0
    min_improvement: Margin = Margin()
    max_consecutive_crashes: int = 3
    trial_timeout_seconds: float | None = None
    cancel_command: str | None = None
    critic: bool = False
    instructions: str = ""
    instructions_file: str | None = None
    editable: tuple = ()
    protect: tuple = ()
    artifact_globs: tuple = ()
    artifacts_on_revert: str = "keep"
    outputs: tuple = ()          # --output: what the benchmark writes (carry.py never counts it)
    strategy: str | None = None
    arms: tuple = ()
    escalation: dict = record.Factory(dict)
    run_id: str = ""
    branch: str | None = None
    original_branch: str | None = None
    start_commit: str = ""
    created: str = ""
    # Integrity (see constraints.py, pareto.py, guard.py, holdout.py, harness.py).
    metrics: tuple = ()          # more primary metrics: {"name", "direction", "margin": {..} or None}
    constraints: tuple = ()      # hard limits {"name", "op", "value"}: a violation reverts
    warnings: tuple = ()         # soft limits, recorded only
    guard_command: str | None = None
    guard_metrics: tuple = ()    # limits on the guard's output
    guard_timeout_seconds: float | None = None
    holdout_command: str | None = None
    auto_protected: tuple = ()   # protected because a command names them
    # Decisions (issue 3, see paired.py and sprt.py).
    decision: str = "paired"     # paired | mean
    target: float = 2.0          # H1 of the sequential test, percent
    alpha: float = 0.05
    beta: float = 0.2
    max_trials: int = 10         # the pair cap (paired)
    seed_env: str | None = None
    calibration_runs: int = 10
    verify_every: int = 25
    # Where trials run (executor.py): local, slurm or ray, and the engine's submit options.
    executor: str = "local"
    executor_options: str = ""

    @property
    def min_pairs(self) -> int:
        """Pairs before the sequential test may decide: --trials, at least 2."""
        return max(2, self.trials)

    @property
    def source(self) -> sourcespec.Source:
        """The parsed report source (a stream, a plain report file, or a `KIND:` source)."""
        return sourcespec.parse_source(self.report_source)

    @property
    def report_path(self) -> str | None:
        """The plain report file relative to the repo root; None for a stream or a `KIND:` source."""
        src = self.source
        return src.path if src.kind == sourcespec.TEXT else None

    def better(self, a: float, b: float) -> bool:
        """True when `a` is strictly better than `b` in the run's direction."""
        return a > b if self.direction == "max" else a < b

    @property
    def objectives(self) -> list:
        """[(name, direction, Margin)]: the primary metric, then each --metric."""
        out = [(self.metric_name, self.direction, self.min_improvement)]
        for m in self.metrics:
            mg = m.get("margin")
            out.append((m["name"], m["direction"],
                        Margin(float(mg["value"]), bool(mg["relative"])) if mg else self.min_improvement))
        return out

    @property
    def extra_names(self) -> list:
        """Every metric read from a trial's report besides the primary one."""
        names = [m["name"] for m in self.metrics] + [c["name"] for c in self.constraints + self.warnings]
        return [n for n in dict.fromkeys(names) if n != self.metric_name]

    def to_dict(self) -> dict:
        d = record.asdict(self)
        d["editable"], d["protect"] = list(self.editable), list(self.protect)
        d["artifact_globs"] = list(self.artifact_globs)
        d["outputs"] = list(self.outputs)
        d["arms"] = list(self.arms)
        return {"format": FORMAT, **d}


def from_dict(d: dict) -> Config:
    """Load a config written by `to_dict`; unknown keys are ignored."""
    fmt = d.get("format", FORMAT)
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise UsageError(
            f"config.json has format {fmt!r}, newer than this ratchet understands ({FORMAT}); upgrade ratchet"
        )
    names = set(record.fields(Config))
    kw = {k: v for k, v in d.items() if k in names}
    mi = kw.get("min_improvement") or {}
    kw["min_improvement"] = Margin(float(mi.get("value", 0.0)), bool(mi.get("relative", False)))
    kw["editable"] = tuple(kw.get("editable") or ())
    kw["protect"] = tuple(kw.get("protect") or ())
    kw["artifact_globs"] = tuple(kw.get("artifact_globs") or ())
    kw["outputs"] = tuple(kw.get("outputs") or ())
    for key in ("metrics", "constraints", "warnings", "guard_metrics", "auto_protected"):
        kw[key] = tuple(kw.get(key) or ())
    kw["arms"] = tuple(kw.get("arms") or ())
    kw["escalation"] = dict(kw.get("escalation") or {})
    kw.setdefault("decision", "mean")  # a run configured before paired decisions existed keeps its rule
    return Config(**kw)


def parse_margin(text: str) -> Margin:
    """'0.5' -> absolute 0.5; '2%' -> relative 2 percent. Must be >= 0."""
    raw = str(text).strip()
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        raise UsageError(f"--min-improvement {text!r} is not a number; use e.g. 0.5 or 2%") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--min-improvement {text!r} must be a finite number >= 0")
    return Margin(value, relative)


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if value is None or isinstance(value, bool) or int(value) != value or value < minimum:
        raise UsageError(f"{name} must be a whole number >= {minimum} (got {value!r})")
    return int(value)


def _check_pattern(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--metric-pattern is not a valid regular expression: {e}") from None
    if compiled.groups < 1:
        raise UsageError("--metric-pattern needs one capture group around the number, e.g. 'took ([0-9.]+) ms'")
    return pattern


def build(args: dict, repo_root: str, named: tuple = ()) -> Config:
    """Validate raw `init` flags (a dict of argparse values) into a Config.

    `named` are the tracked files the run, guard and holdout commands name
    (io/harness_named.named_files, found by the caller so this layer reads no git):
    they are protected unless `--editable` lists them. The caller then checks
    the executor against the machine (io/executor.validate: its commands on PATH).
    Raises UsageError naming the first mistake; never touches the repository.
    """
    run_command = (args.get("run_command") or "").strip()
    if not run_command:
        raise UsageError("--run-command is required: the command that prints the metric")
    args, extra_metrics = _primary_from_metrics(args)
    direction, metric_name, threshold, timeout = _primary_fields(args)
    source, source_path = check_report_source(args.get("report_source") or "", repo_root)
    artifact_globs = check_artifacts(args.get("artifact_glob"), args.get("artifacts_on_revert") or "keep", repo_root)
    instructions_file = args.get("instructions_file")
    text = "\n".join(t for t in ((args.get("instructions") or "").strip(),
                                 read_instructions(instructions_file, repo_root)) if t)
    editable, protect = _editable_and_protected(args, repo_root, source_path)
    integrity = _integrity(args, named, editable, protect, metric_name, extra_metrics)
    protect = tuple(dict.fromkeys(protect + list(integrity["auto_protected"])))
    for spec in editable:
        if spec == "." and not args.get("protect"):
            continue
        if paths.matches_any(spec, protect):
            raise UsageError(f"--editable {spec!r} is also protected; a path cannot be both")
    return Config(
        run_command=run_command,
        direction=direction,
        metric_name=metric_name,
        report_source=source,
        metric_pattern=_check_pattern(args.get("metric_pattern")),
        trials=_positive_int("--trials", args.get("trials", 1)),
        iterations=_positive_int("--iterations", args.get("iterations", 20)),
        threshold=threshold,
        patience=_positive_int("--patience", args.get("patience", 0), minimum=0),
        min_improvement=parse_margin(args.get("min_improvement") or "0"),
        max_consecutive_crashes=_positive_int("--max-consecutive-crashes", args.get("max_consecutive_crashes", 3)),
        trial_timeout_seconds=timeout,
        cancel_command=(args.get("cancel_command") or "").strip() or None,
        critic=bool(args.get("critic")),
        instructions=text,
        instructions_file=instructions_file,
        editable=editable,
        protect=protect,
        artifact_globs=artifact_globs,
        artifacts_on_revert=args.get("artifacts_on_revert") or "keep",
        outputs=check_outputs(args.get("output")),
        **integrity,
        strategy=args.get("strategy"),
        arms=parse_arms(args.get("strategy"), args.get("arms")),
        escalation=parse_escalation(args.get("escalation")),
        **_decision_fields(args),
        **_executor_fields(args),
    )


def _primary_from_metrics(args: dict) -> tuple:
    """(args, the --metric objectives beyond the primary). With no
    --metric-name and no --direction, the first --metric is the primary;
    its own margin becomes --min-improvement and the others keep the
    global one."""
    extra_metrics = [_parse_metric(t) for t in args.get("metric") or ()]
    if not args.get("metric_name") and not args.get("direction") and extra_metrics:
        first = extra_metrics.pop(0)
        args = {**args, "metric_name": first["name"], "direction": first["direction"]}
        if first["margin"] is not None:  # the primary's own margin; the others keep the global one
            glob = parse_margin(args.get("min_improvement") or "0")
            extra_metrics = [m if m["margin"] else {**m, "margin": {"value": glob.value, "relative": glob.relative}}
                             for m in extra_metrics]
            args["min_improvement"] = f"{first['margin']['value']}{'%' if first['margin']['relative'] else ''}"
    return args, extra_metrics


def _primary_fields(args: dict) -> tuple:
    """(direction, metric name, threshold, trial timeout), validated in this order."""
    if args.get("branch") and args.get("no_branch"):
        raise UsageError("--branch and --no-branch contradict each other; give one of them")
    direction = args.get("direction")
    if direction not in ("max", "min"):
        raise UsageError(f"--direction must be max or min (got {direction!r})")
    metric_name = (args.get("metric_name") or "").strip()
    if not metric_name or any(c.isspace() for c in metric_name):
        raise UsageError("--metric-name is required and must not contain spaces")
    threshold = args.get("threshold")
    if threshold is not None and not math.isfinite(threshold):
        raise UsageError("--threshold must be a finite number")
    timeout = args.get("trial_timeout_seconds")
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise UsageError(f"--trial-timeout-seconds must be > 0 (got {timeout!r})")
    return direction, metric_name, threshold, timeout


def _editable_and_protected(args: dict, repo_root: str, source_path: str | None) -> tuple:
    """(editable pathspecs, protected pathspecs so far): .ratchet, --protect,
    the report file and the instructions file are protected."""
    editable = tuple(dict.fromkeys(paths.inside(s, repo_root, "--editable") for s in args.get("editable") or ()))
    protect = [".ratchet"] + [paths.inside(s, repo_root, "--protect") for s in args.get("protect") or ()]
    if source_path:
        protect.append(source_path)
    instructions_file = args.get("instructions_file")
    if instructions_file:
        rel = repo_relative(instructions_file, repo_root)
        if rel:
            protect.append(rel)
    return editable, protect


def _executor_fields(args: dict) -> dict:
    """--executor and --executor-options as given, once they combine with the
    other flags; io/executor.validate checks them against the machine after."""
    if args.get("executor") == "ray" and (args.get("report_source") or "stdout") != "stdout":
        raise UsageError("--executor ray reads the metric from the job's logs (files it writes stay in Ray's copy "
                         "of the working directory): use --report-source stdout")
    if (args.get("executor") or "local") != "local" and (args.get("cancel_command") or "").strip():
        raise UsageError(f"--cancel-command is for a run command that submits its own job; --executor "
                         f"{args['executor']} cancels its jobs itself: leave --cancel-command out")
    return {"executor": (args.get("executor") or "local").strip(),
            "executor_options": (args.get("executor_options") or "").strip()}


def _decision_fields(args: dict) -> dict:
    """--decision, --target, --alpha, --beta, --max-trials, --seed-env,
    --calibration-runs, --verify-every, validated."""
    rule = args.get("decision") or "paired"
    if rule not in ("paired", "mean"):
        raise UsageError(f"--decision must be paired or mean (got {rule!r})")
    target = args.get("target", 2.0)
    target = 2.0 if target is None else target
    if not math.isfinite(target) or target <= 0:
        raise UsageError(f"--target must be a percentage > 0 (got {target!r})")
    levels = {}
    for name in ("alpha", "beta"):
        v = args.get(name)
        v = {"alpha": 0.05, "beta": 0.2}[name] if v is None else v
        if not (math.isfinite(v) and 0 < v < 0.5):
            raise UsageError(f"--{name} must be between 0 and 0.5 (got {v!r})")
        levels[name] = float(v)
    max_trials = _positive_int("--max-trials", args.get("max_trials") or 10)
    trials = args.get("trials", 1) or 1
    if rule == "paired" and max_trials < max(2, trials):
        raise UsageError(f"--max-trials {max_trials} is below the minimum pairs ({max(2, trials)}: --trials, at least 2)")
    seed_env = (args.get("seed_env") or "").strip() or None
    if seed_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", seed_env):
        raise UsageError(f"--seed-env {seed_env!r} is not an environment variable name")
    calibration = args.get("calibration_runs")
    calibration = _positive_int("--calibration-runs", 10 if calibration is None else calibration, minimum=2)
    every = args.get("verify_every")
    every = _positive_int("--verify-every", 25 if every is None else every, minimum=0)
    return {"decision": rule, "target": float(target), **levels, "max_trials": max_trials, "seed_env": seed_env,
            "calibration_runs": calibration, "verify_every": every}


def _parse_metric(text: str) -> dict:
    """'NAME:max', 'NAME:min:2%' -> {"name", "direction", "margin"} for --metric."""
    parts = str(text).strip().split(":")
    margin = None
    if len(parts) >= 3 and parts[-2] in ("max", "min"):
        try:
            margin = parse_margin(parts.pop())
        except UsageError:
            raise UsageError(f"--metric {text!r}: the margin must be a number >= 0 or a percentage (e.g. 0.5 or 2%)") from None
    if len(parts) < 2 or parts[-1] not in ("max", "min") or not ":".join(parts[:-1]).strip():
        raise UsageError(f"--metric {text!r} is not NAME:max or NAME:min (optionally NAME:max:MARGIN, e.g. mem_mb:min:2%)")
    name = ":".join(parts[:-1]).strip()
    if any(c.isspace() for c in name):
        raise UsageError(f"--metric {text!r}: the name must not contain spaces")
    return {"name": name, "direction": parts[-1],
            "margin": None if margin is None else {"value": margin.value, "relative": margin.relative}}


def _integrity(args: dict, named: tuple, editable: tuple, protect: list,
               metric_name: str, extra_metrics: list) -> dict:
    """The integrity fields of the Config: more metrics, limits, guard, holdout,
    and the files the commands name, protected unless listed in --editable."""
    names = [metric_name] + [m["name"] for m in extra_metrics]
    if len(set(names)) != len(names):
        raise UsageError(f"--metric names repeat: {', '.join(names)}")
    guard = (args.get("guard_command") or "").strip() or None
    holdout = (args.get("holdout_command") or "").strip() or None
    guard_metrics = tuple(constraints.parse(t, "--guard-metric") for t in args.get("guard_metric") or ())
    if guard_metrics and not guard:
        raise UsageError("--guard-metric needs --guard-command (the command whose output it is read from)")
    timeout = args.get("guard_timeout_seconds")
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise UsageError(f"--guard-timeout-seconds must be > 0 (got {timeout!r})")
    listed = [s for s in editable if s != "."]
    auto = tuple(p for p in dict.fromkeys(named)
                 if not paths.matches_any(p, protect) and not paths.matches_any(p, listed))
    return {"metrics": tuple(extra_metrics),
            "constraints": tuple(constraints.parse(t) for t in args.get("constraint") or ()),
            "warnings": tuple(constraints.parse(t, "--warn") for t in args.get("warn") or ()),
            "guard_command": guard, "guard_metrics": guard_metrics, "guard_timeout_seconds": timeout,
            "holdout_command": holdout, "auto_protected": auto}
