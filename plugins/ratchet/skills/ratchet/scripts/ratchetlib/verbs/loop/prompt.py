"""The iteration prompt of the headless loop: everything a fresh agent needs
to make one good change, in a bounded size.

A new agent process starts every iteration with no memory, so the prompt
carries the goal, the rules (integrity.md and the run's instructions), the
editable and protected paths, what has been kept so far (the incumbent's
diff against the start, editable paths only), the last few iterations, and
`.ratchet/program.md` when it exists (the resume document with hints,
escalation and the bandit's arm), and, with `--strategy bandit`, the arm
this agent is to use (the loop credits the arm with the result). Every
part is capped, so the prompt costs the same at iteration 5 and at
iteration 5,000.

`render` is pure (strings and dicts in, text out); `build` gathers its inputs
from the run. Callers add sections with `extra=[(title, text), ...]`.
"""

from __future__ import annotations

import functools
import os

from ...core import decision, paths
from ...core.text import clip, num
from ...io import gitops
from ...core.state import RunState

SKILL_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4))
"""The skill's folder (scripts/ratchetlib/verbs/loop/ is four levels below it)."""
INTEGRITY_FILE = os.path.join(SKILL_DIR, "instructions", "integrity.md")
MAX_DIFF_BYTES = 6000
MAX_INTEGRITY_BYTES = 6000  # integrity.md whole (about 4.6 KB since the integrity work added examples)
MAX_PROGRAM_BYTES = 3500
MAX_EXTRA_BYTES = 2000
RECENT = 8


def _cap(text: str, limit: int, what: str) -> str:
    data = (text or "").encode("utf-8")
    if len(data) <= limit:
        return (text or "").rstrip()
    cut = data[:limit].decode("utf-8", "ignore")
    return cut[: cut.rfind("\n") if "\n" in cut else len(cut)].rstrip() + f"\n… ({what} cut at {limit} bytes)"


def _paths(specs, empty: str) -> str:
    return ", ".join(f"`{s}`" for s in specs[:30]) + (f" (+{len(specs) - 30} more)" if len(specs) > 30 else "") \
        if specs else empty


def recent_line(r: dict) -> str:
    """One past iteration: outcome, score, what was tried (and why it failed)."""
    head = f"- iter {r.get('iter')} {r.get('decision')}"
    if r.get("avg") is not None:
        head += f" {num(r['avg'])}"
        if r.get("delta") is not None:
            head += f" ({num(r['delta'], sign=True)})"
    text = clip(r.get("hypothesis") or "", 140)
    desc = clip(r.get("description") or "", 100)
    if desc:
        text += f" [{desc}]"
    if r.get("decision") not in ("keep", "revert", "baseline"):
        text += f" — {clip(r.get('reason') or '', 120)}"
    return f"{head}: {text}"


def _goal_and_paths(cfg, st: RunState) -> list:
    """The prompt's Goal and Paths sections: what is measured and how it is
    decided, where the agent may write, and what a protected edit costs."""
    source = {"stdout": "its stdout", "stderr": "its stderr"}.get(cfg.report_source, f"the file `{cfg.report_source}`")
    lines = [
        "", "## Goal",
        f"{'Maximize' if cfg.direction == 'max' else 'Minimize'} `{cfg.metric_name}` as printed by "
        f"`{cfg.run_command}` (read from {source}); {cfg.trials} trial(s) per candidate; a change is kept "
        f"when its mean beats the incumbent by more than {cfg.min_improvement}.",
        f"Baseline {num(st.baseline)}; incumbent {num(st.incumbent_score)}; "
        f"best {num(st.best)} (iter {st.best_iter}).",
        " · ".join(decision.progress(st, cfg)),
        "", "## Paths",
        f"- editable: {_paths(list(cfg.editable), 'every path that is not protected')}",
        f"- protected (never edit, create, delete or rename): {_paths(list(cfg.protect), 'none')}",
    ]
    auto = list(getattr(cfg, "auto_protected", ()) or ())
    if auto:
        lines += [f"  (of these, {_paths(auto, '')} are protected because the run, guard or holdout command names them)"]
    return lines + [
        "A change to a protected path is `tampered` (the harness is restored from its pinned copy); a change "
        "outside the editable paths is `out-of-scope`; both are reverted. Hard constraints and the guard "
        "command (when the run has them) must pass too, or the change is reverted.",
    ]


def render(config, state: RunState, iteration: int, *, integrity: str, diff: str, recent: list,
           program: str | None = None, extra=(), slot: tuple | None = None) -> str:
    """The prompt text. `config` is a Config; `slot` is (k, n) with --parallel."""
    cfg, st = config, state
    goal = "raise" if cfg.direction == "max" else "lower"
    lines = [
        f"# ratchet iteration {iteration}",
        "",
        f"You are one step of an automated optimization loop. Make ONE focused change to this repository "
        f"that should {goal} `{cfg.metric_name}`, then stop. After you exit, ratchet runs the benchmark, keeps "
        f"your change (it commits it) only if the measurement proves it better, and reverts it otherwise.",
        "",
        "- One change, then finish. Do not run your own loop of attempts, and do not run `ratchet.py` verbs "
        "that act on the run (iterate, decide, run-trial, stop): the loop does that after you exit.",
        "- Do not commit, stash, or switch branches: leave your change in the working tree.",
        "- You may read any file and run quick checks (e.g. the benchmark once) to make sure your change works.",
        "- If you find nothing worth trying, change nothing and say why.",
        "- End your final message with exactly these two lines:",
        "  HYPOTHESIS: <one line: why this change should improve the metric>",
        "  DESCRIPTION: <one line: what you changed>",
    ]
    if slot:
        k, n = slot
        lines += ["", f"You are proposer {k} of {n}, each working on its own copy of the repository at the same "
                      f"time; only the best measured proposal is kept. "
                      + ("Make the most promising change." if k == 1 else
                         f"Pick an idea that differs from the obvious first choice (proposer {k} explores).")]
    lines += _goal_and_paths(cfg, st)
    lines += [
        "", "## Rules (integrity)",
        _cap(integrity, MAX_INTEGRITY_BYTES, "integrity rules"),
    ]
    if cfg.instructions:
        lines += ["", "Run-specific instructions (part of the rules):", _cap(cfg.instructions, 1500, "instructions")]
    lines += ["", "## Kept so far (the incumbent against the start, editable paths)"]
    diff = _cap(diff, MAX_DIFF_BYTES + 500, "diff")
    lines += [f"```diff\n{diff}\n```" if diff.strip() else "Nothing kept yet: the code is as it was at the start."]
    lines += ["", f"## Recent iterations (last {RECENT}, newest last)"]
    lines += [recent_line(r) for r in recent[-RECENT:]] or ["- none yet"]
    if program and program.strip():
        lines += ["", "## Program (.ratchet/program.md)", _cap(program, MAX_PROGRAM_BYTES, "program.md")]
    for title, text in extra:
        lines += ["", f"## {title}", _cap(text, MAX_EXTRA_BYTES, title)]
    return "\n".join(lines) + "\n"


def incumbent_diff(run, limit: int = MAX_DIFF_BYTES) -> str:
    """`git diff start..incumbent` over the editable changed paths, capped.

    When it is longer than `limit`, the per-file stat comes first and the
    diff is cut, so the agent still sees which files changed. Commits never
    change, so the text is cached per (start, incumbent): a revert costs no
    git call here.
    """
    cfg, st = run.config, run.state
    start, inc = cfg.start_commit, st.incumbent_sha
    if not inc or inc == start:
        return ""
    return _diff(run.repo, start, inc, tuple(cfg.editable), tuple(cfg.protect), limit)


@functools.lru_cache(maxsize=8)
def _diff(repo: str, start: str, inc: str, editable: tuple, protect: tuple, limit: int) -> str:
    changed = [p for p in gitops.git(repo, "diff", "--name-only", "-z", start, inc).split("\0") if p]
    mine = [p for p in changed if paths.classify(p, editable, protect) == paths.EDITABLE]
    if not mine:
        return ""
    text = gitops.git(repo, "diff", "--no-color", start, inc, "--", *mine)
    if len(text.encode("utf-8", "surrogateescape")) <= limit:
        return text.rstrip()
    stat = gitops.git(repo, "diff", "--stat=100", start, inc, "--", *mine).rstrip()
    room = max(limit - len(stat) - 200, 500)
    body = text.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    body = body[: body.rfind("\n")] if "\n" in body else body
    return (f"{stat}\n\n{body}\n… (diff cut at {limit} bytes; see all: "
            f"git diff {start[:10]} {inc[:10]})")


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit * 2).decode("utf-8", "replace")
    except OSError:
        return ""


def integrity_rules(text: str) -> str:
    """integrity.md as a prompt section: its title dropped, its headings one
    level down, and its closing part about verdict lines (written for the
    in-session skill) cut, since the prompt states the run's instructions."""
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    out = []
    for line in lines:
        if line.startswith("## Run-specific"):
            break
        out.append("#" + line if line.startswith("## ") else line)
    return "\n".join(out).strip()


def build_prompt(run, iteration: int, slot: tuple | None = None, extra=(), arm: str | None = None) -> str:
    """The prompt for `iteration` of `run`, from the run's files and git;
    `arm` is the bandit arm this agent is asked to use (learning.loop_arms)."""
    if arm:
        from ...learn import learning
        extra = [("Strategy for this iteration", learning.arm_text(run, arm)
                  + " This overrides the arm program.md suggests.")] + list(extra)
    return render(run.config, run.state, iteration,
                  integrity=integrity_rules(_read(INTEGRITY_FILE, MAX_INTEGRITY_BYTES)),
                  diff=incumbent_diff(run),
                  recent=[r for r in run.store.records(last=RECENT) if r.get("decision") != "baseline"],
                  program=_read(run.store.path("program.md"), MAX_PROGRAM_BYTES),
                  extra=extra, slot=slot)
