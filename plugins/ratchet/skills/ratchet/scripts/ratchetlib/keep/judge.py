"""The judgement of measured trials: failures, then constraints, then the
metric(s) by the run's rule (the mean rule, the paired test's verdict, or
Pareto for several metrics). Pure: it reads only what it is handed; the
guard runs after it (integrity.gate)."""

from __future__ import annotations


from ..core import constraints, decision, pareto
from . import paired
from ..core.state import RunState


def judge(cfg, st: RunState, trials: list, pair: tuple | None = None) -> tuple:
    """(verdict, record fields) of `trials` against the incumbent in state
    `st`: crash/timeout, then constraints, then the metric(s).

    `pair` = (stats verdict or None, incumbent trials) of a paired
    measurement (paired.py): the test's verdict replaces the mean rule, and
    several metrics are compared with the incumbent as measured in the pairs."""
    avgs = pareto.averages(trials, [cfg.metric_name] + cfg.extra_names)
    extra = {"metrics": avgs}
    if pair is not None:
        bad = decision.failed_trial(pair[1])
        if bad is not None:
            return decision.Verdict(decision.TIMEOUT if bad["status"] == "timeout" else decision.CRASH, avgs[cfg.metric_name],
                                    None, f"incumbent run failed (pair {bad['pair']}, trial {bad['trial']}): "
                                    f"{bad.get('detail') or bad['status']}; the benchmark or machine is unstable"), \
                {**extra, "incumbent_trials": pair[1]}
    if decision.failed_trial(trials) is not None:
        return decision.judge(trials, st.incumbent_score, cfg), extra
    if cfg.warnings:
        extra["warnings"] = constraints.warnings(avgs, cfg.warnings)
    why = constraints.violation(trials, cfg.constraints, cfg.metric_name)
    if why:
        inc = st.incumbent_score
        return decision.Verdict(decision.CONSTRAINT, avgs[cfg.metric_name], avgs[cfg.metric_name] - inc,
                                f"{why}; reverted"), extra
    if pair is not None:
        sv, inc_trials = pair
        extra.update(paired.evidence(cfg, sv, trials, inc_trials))
        inc = decision.mean(t["score"] for t in inc_trials)
        extra["incumbent"] = inc
    if len(cfg.objectives) > 1:
        incumbent = st.incumbent_metrics or {cfg.metric_name: st.incumbent_score}
        if pair is not None:
            incumbent = pareto.averages(pair[1], [n for n, _, _ in cfg.objectives])
        v, extra["compare"] = pareto.judge(avgs, incumbent, cfg.objectives)
    elif pair is not None:
        avg = avgs[cfg.metric_name]
        v = decision.Verdict(decision.KEEP if sv.keep else decision.REVERT, avg, avg - inc, sv.reason)
    else:
        v = decision.judge(trials, st.incumbent_score, cfg)
    return v, extra
