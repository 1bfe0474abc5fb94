"""Turning a run into something to review: `diff` and `finalize`.

The kept changes of a run are commits on the experiment branch, each made by
ratchet with a `ratchet: iter N` subject and a `Ratchet-Iteration` trailer.
That history is bookkeeping; a reviewer wants the change. So:

- `plan()` walks the kept records in order (for a chain, every run's, from
  the first run's start commit: a follow-up run starts at its parent's best,
  whose history is ratchet's) and replays each kept commit's changes as trees
  in a private index (GIT_INDEX_FILE in a temporary folder): only the paths
  that commit changed and that its run's scope allowed (editable, never
  protected, never `.ratchet/`). Commits are identified by the sha in their
  record, never by trailers, so an agent's own commit message cannot
  confuse it, and nothing is cherry-picked: a tree replay cannot conflict.
- `finalize()` makes new commit objects on the start commit from those
  trees (`commit-tree`: one commit, or one per kept iteration with
  `--split`), checks the final tree is byte-for-byte the best commit's tree,
  and only then creates the branch with `update-ref` (which refuses an
  existing name). No checkout, no change to the work tree, the index, the
  experiment branch or the user's branch. A kill at any point before the ref
  leaves only unreferenced objects that `git gc` collects; after it, the
  branch is complete.
- `diff()` shows the same change as text: start to best, or one iteration
  (its kept commit, or the patch a revert saved).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..core import config as configmod
from ..core import record
from ..io import workspace
from ..keep import recover
from ..core import change, faults, headline, paths, term
from ..io import githistory, gitops, lineage
from ..present import figures
from ..core.errors import RatchetError, UsageError
from ..measure.holdout import load as load_holdout
from ..io.store_lock import Lock

ZERO = "0" * 40
SUBJECT_LIMIT = 72


class Keep(record.Record, frozen=False):
    run_id: str
    record: dict
    tree: str            # the replayed tree after it
    paths: tuple = ()    # the paths it changed that the run's scope allows


class Plan(record.Record, frozen=False):
    base: str            # where the clean history starts: the first run's start commit
    best: str            # the current incumbent (every keep beat the one before it)
    best_tree: str
    keeps: list
    start_value: float | None
    runs: int
    skipped: list        # paths a kept commit changed outside its scope (left out)

    @property
    def tree(self) -> str:
        return self.keeps[-1].tree if self.keeps else ""

    @property
    def paths(self) -> list:
        return sorted({p for k in self.keeps for p in k.paths})


def _segments(run) -> list:
    """[(run_id, Config, records)] of every run of the chain, oldest first."""
    out = []
    for seg in lineage.runs(run.store, run.config.run_id):
        if seg["run_id"] == run.config.run_id:
            out.append((seg["run_id"], run.config, seg["records"]))
            continue
        if seg["missing"]:
            raise UsageError(f"the archive of run {seg['run_id']} (.ratchet/runs/{seg['run_id']}) is missing, so the "
                             f"chain's kept changes cannot be replayed from its start")
        archived = run.store.archived(seg["run_id"])
        cfg = archived.read_config()
        if cfg is None:
            raise UsageError(f"run {seg['run_id']} has no config.json in its archive")
        out.append((seg["run_id"], configmod.from_dict(cfg), seg["records"]))
    return out


def _changed(repo: str, a: str, b: str) -> list:
    """[(new mode, new sha, status, path)] of `git diff-tree -r a b`."""
    raw = gitops.git(repo, "diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", a, b)
    parts = raw.split("\0")
    out = []
    for i in range(0, len(parts) - 1, 2):
        meta, path = parts[i], parts[i + 1]
        if not meta.startswith(":"):
            continue
        _, new_mode, _, new_sha, status = meta[1:].split(" ")
        out.append((new_mode, new_sha, status[0], path))
    return out


def _allowed(path: str, cfg) -> bool:
    if path == ".ratchet" or path.startswith(".ratchet/"):
        return False
    return paths.classify(path, cfg.editable, cfg.protect) == paths.EDITABLE


def plan(run) -> Plan:
    """The kept changes replayed as trees (module docstring); UsageError when
    nothing was kept."""
    repo = run.repo
    segments = _segments(run)
    base = segments[0][1].start_commit
    best = run.state.incumbent_sha or run.config.start_commit
    start_value = next((r.get("avg") for r in segments[0][2] if r.get("decision") == "baseline"),
                       run.state.baseline)
    keeps, prev = [], base
    for run_id, cfg, records in segments:
        for rec in records:
            if rec.get("decision") == "keep" and rec.get("sha"):
                keeps.append((run_id, cfg, rec))
    if not keeps or best == base:
        raise UsageError("no change was kept in this run, so there is nothing to finalize or diff"
                         + (" (the run has no baseline yet)" if run.state.iteration < 0 else ""))
    if keeps[-1][2]["sha"] != best:
        raise RatchetError(f"the last kept record (iteration {keeps[-1][2]['iter']}) is not the run's incumbent "
                           f"{best[:10]}; run `ratchet.py status` to let ratchet recover first")
    tmp = tempfile.mkdtemp(prefix="ratchet-finalize-")
    env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
    out, skipped = [], []
    try:
        gitops.git(repo, "read-tree", base, env=env)
        for run_id, cfg, rec in keeps:
            sha = rec["sha"]
            if not githistory.is_ancestor(repo, prev, sha):
                raise RatchetError(f"kept commit {sha[:10]} (iteration {rec['iter']}) does not descend from "
                                   f"{prev[:10]}; the experiment branch was rewritten")
            lines, mine = [], []
            for mode, blob, status, path in _changed(repo, prev, sha):
                if not _allowed(path, cfg):
                    skipped.append(path)
                    continue
                mine.append(path)
                lines.append(f"0 {ZERO}\t{path}" if status == "D" else f"{mode} {blob}\t{path}")
            if lines:
                gitops.git(repo, "update-index", "-z", "--replace", "--index-info",
                           input=("\0".join(lines) + "\0").encode("utf-8", "surrogateescape"), env=env)
            tree = gitops.git(repo, "write-tree", env=env).strip()
            out.append(Keep(run_id, rec, tree, tuple(mine)))
            prev = sha
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Plan(base, best, githistory.tree_of(repo, best), out, start_value, len(segments), sorted(set(skipped)))


# --- diff -----------------------------------------------------------------------

def diff(cwd: str, iteration: int | None = None, color: bool = False) -> tuple:
    """(patch text, what it shows) for start..best, or one iteration's change."""
    run = workspace.open_run(cwd)
    flag = "--color=always" if color else "--no-color"
    if iteration is None:
        p = plan(run)
        text = gitops.git(run.repo, "diff", flag, p.base, p.best, "--", *p.paths) if p.paths else ""
        what = (f"start {p.base[:10]} -> best {p.best[:10]}: {len(p.paths)} path(s), {len(p.keeps)} kept "
                f"iteration(s)" + (f"; left out (outside the scope): {', '.join(p.skipped[:5])}" if p.skipped else ""))
        return text, what
    rec = next((r for r in run.store.records() if r.get("iter") == iteration), None)
    if rec is None:
        raise UsageError(f"no record of iteration {iteration} in this run; `ratchet.py history` lists them")
    if rec.get("decision") == "baseline":
        raise UsageError("iteration 0 is the baseline: the unmodified start, no change to show")
    if rec.get("kept") and rec.get("sha"):
        allowed = [p for _, _, _, p in _changed(run.repo, rec["sha"] + "^", rec["sha"]) if _allowed(p, run.config)]
        text = gitops.git(run.repo, "diff", flag, rec["sha"] + "^", rec["sha"], "--", *allowed) if allowed else ""
        return text, f"iteration {iteration} (keep, commit {rec['sha'][:10]})"
    if rec.get("patch"):
        full = os.path.join(run.store.root, rec["patch"])
        try:
            with open(full, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except FileNotFoundError:
            raise UsageError(f"the saved patch of iteration {iteration} ({full}) is gone") from None
        return text, f"iteration {iteration} ({rec['decision']}, saved patch .ratchet/{rec['patch']})"
    raise UsageError(f"iteration {iteration} ({rec.get('decision')}) left no change to show")


# --- finalize -------------------------------------------------------------------

def _subject(text: str) -> str:
    text = " ".join(str(text or "").split()) or "change"
    return text if len(text) <= SUBJECT_LIMIT else text[:SUBJECT_LIMIT - 1] + "…"


def _gain_subject(cfg, start, best, verified) -> str:
    """The re-measured gain when `verified` (of this best, over this start)
    has one, else the two own-decision means, said to be not re-measured."""
    verb = "Reduce" if cfg.direction == "min" else "Improve"
    pct = change.verified_change(verified, cfg.direction)[0] if verified else None
    if pct is not None:
        return _subject(f"{verb} {cfg.metric_name} by {abs(pct):.1f}% (re-measured against the start)")
    if start is None or best is None:
        return _subject(f"Optimize {cfg.metric_name}")
    return _subject(f"{verb} {cfg.metric_name} ({figures.fmt(start)} -> {figures.fmt(best)}, not re-measured)")


def _single_message(run, p: Plan) -> str:
    cfg, st = run.config, run.state
    best = st.incumbent_score
    # a chain's verify measured its last run only: the subject then keeps to the first start's figures
    verified = headline.of_head(st)
    lines = [_gain_subject(cfg, p.start_value, best, verified if p.runs == 1 else None), ""]
    lines.append(f"{cfg.metric_name} ({'lower' if cfg.direction == 'min' else 'higher'} is better): start "
                 f"{figures.fmt(p.start_value)}, best {figures.fmt(best)} ({headline.NAIVE_LABEL}).")
    of = "" if p.runs == 1 else " of the last run of the chain"
    lines.append(f"Verified gain{of} (paired re-run): {figures.verified_text(verified, cfg.direction)}."
                 if figures.gain_text(verified)
                 else f"Not verified by a paired re-run: each figure is the mean of {cfg.trials} trial(s).")
    held = load_holdout(run.store.root) if cfg.holdout_command and st.stop else None
    if held and held.get("summary"):
        lines.append(f"Holdout: {held['summary']}.")
    lines += ["", f"Kept changes ({len(p.keeps)}):"]
    for k in p.keeps:
        rec = k.record
        what = rec.get("description") or rec.get("hypothesis") or "change"
        lines.append(f"- {_subject(what)}: {figures.effect_summary(rec, cfg.direction)}")
    lines += ["", f"Measured with `{cfg.run_command}`, {cfg.trials} trial(s) per iteration, by ratchet "
                  f"run {cfg.run_id}" + (f" (a chain of {p.runs} runs)" if p.runs > 1 else "") + "."]
    return term.printable("\n".join(lines) + "\n")


def _split_message(cfg, k: Keep) -> str:
    rec = k.record
    subject = _subject(rec.get("description") or rec.get("hypothesis"))
    body = []
    if rec.get("hypothesis") and rec.get("description"):
        body.append(f"Why: {' '.join(rec['hypothesis'].split())}")
    n = len([s for s in rec.get("trial_scores") or [] if s is not None])
    body.append(f"{cfg.metric_name}: {figures.fmt(rec.get('incumbent'))} -> {figures.fmt(rec.get('avg'))}, "
                f"{figures.effect_summary(rec, cfg.direction)}, mean of {n} trial(s) (ratchet run {k.run_id}, "
                f"iteration {rec.get('iter')}).")
    return term.printable(subject + "\n\n" + "\n\n".join(body) + "\n")


def default_branch(cfg) -> str:
    return f"ratchet/{cfg.run_id}-final"


def finalize(cwd: str, branch: str | None = None, split: bool = False) -> dict:
    """Build the clean branch (module docstring); return what was made."""
    run = workspace.open_run(cwd)
    repo = run.repo
    with Lock(run.store, "finalize"):
        recover.recover(run)
        dirty = gitops.tracked_changes(repo)
        if dirty:
            more = f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
            raise UsageError(f"the working tree has uncommitted changes ({', '.join(dirty[:3])}{more}); commit or "
                             f"stash them (or let the iteration finish) before `finalize`")
        name = branch or default_branch(run.config)
        if not gitops.valid_branch_name(repo, name):
            raise UsageError(f"--branch {name!r} is not a valid git branch name")
        if gitops.branch_exists(repo, name):
            raise UsageError(f"branch {name!r} already exists; pick another with --branch (or delete it: "
                             f"git branch -D {name})")
        p = plan(run)
        if p.tree != p.best_tree:
            extra = gitops.git(repo, "diff-tree", "-r", "--name-only", "-z", p.tree, p.best_tree).split("\0")
            shown = ", ".join([x for x in extra if x][:5])
            raise RatchetError(f"the kept changes replayed on the start commit differ from the best commit "
                               f"{p.best[:10]} in {shown}: paths outside the run's scope; nothing was created")
        commits, parent = [], p.base
        if split:
            last_tree = githistory.tree_of(repo, p.base)
            for k in p.keeps:
                if k.tree == last_tree:
                    continue
                parent = githistory.commit_tree(repo, k.tree, parent, _split_message(run.config, k))
                commits.append({"sha": parent, "iter": k.record.get("iter"), "run_id": k.run_id,
                                "subject": _subject(k.record.get("description") or k.record.get("hypothesis"))})
                last_tree = k.tree
        else:
            msg = _single_message(run, p)
            parent = githistory.commit_tree(repo, p.tree, parent, msg)
            commits.append({"sha": parent, "iter": None, "run_id": run.config.run_id, "subject": msg.splitlines()[0]})
        tip_tree = githistory.tree_of(repo, parent)
        if tip_tree != p.best_tree:
            raise RatchetError(f"the new commit's tree {tip_tree[:10]} differs from the best commit's "
                               f"{p.best_tree[:10]}; nothing was created")
        faults.point("finalize-commits")
        # The ref last, and only if the name is still free (an empty old value means "must not exist").
        gitops.git(repo, "update-ref", "-m", "ratchet finalize", f"refs/heads/{name}", parent, "")
    return {"branch": name, "base": p.base, "best": p.best, "tree": p.best_tree, "commits": commits,
            "split": split, "paths": p.paths, "skipped": p.skipped, "next": next_commands(run, name, parent),
            "stopped": bool(run.state.stop), "not_committed": not_committed(repo, p)}


def not_committed(repo: str, p: Plan) -> list:
    """Git-ignored files the kept changes ran with but the branch does not
    carry (the records' `ignored_new`), where they still exist: a clean
    checkout of the branch lacks them. Warned about, not refused: ratchet
    cannot tell whether the code reads them (a scratch file the agent left
    is harmless), and refusing would leave no branch to review; the warning
    names each file and the fix."""
    out = []
    for k in p.keeps:
        for rel in k.record.get("ignored_new") or ():
            if rel not in out and os.path.lexists(os.path.join(repo, rel.rstrip("/"))):
                out.append(rel)
    return out


def next_commands(run, name: str, tip: str) -> list:
    cfg = run.config
    target = cfg.original_branch
    if not target:
        return [f"git log --stat {cfg.start_commit[:10]}..{name}"]
    ff = githistory.is_ancestor(run.repo, target, tip)
    return [f"git log --stat {target}..{name}",
            f"git switch {target} && git merge {'--ff-only ' if ff else ''}{name}",
            f"git push -u origin {name} && gh pr create --base {target} --head {name} --fill"]


def describe(result: dict, color: bool = False) -> str:
    """The human text of a finalize result, printable (term.printable) apart
    from the colour of its first line."""
    n = len(result["commits"])
    head = (f"created branch {result['branch']}: {n} commit{'s' if n != 1 else ''} on the start commit "
            f"{result['base'][:10]}; its tree equals the best commit {result['best'][:10]} (checked)")
    lines = [term.paint(term.printable(head), "ok", color)]
    lines += [f"  {c['sha'][:10]} {c['subject']}" for c in result["commits"][:20]]
    if n > 20:
        lines.append(f"  ... and {n - 20} more")
    lines.append(f"changed: {', '.join(result['paths'][:8])}" + (f" and {len(result['paths']) - 8} more"
                                                                   if len(result['paths']) > 8 else ""))
    missing = result.get("not_committed") or []
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        lines.append(term.paint(f"warning: kept changes ran with git-ignored {shown}, which the branch does not "
                                f"carry: a clean checkout may crash without it; add what the code needs "
                                f"(git add -f) on the branch, or check with a fresh clone", "warn", color))
    if not result["stopped"]:
        lines.append("note: the run is still going; this is its best so far (finalize again with another --branch later)")
    lines.append("your branch and the experiment branch are unchanged. next:")
    lines += [f"  {c}" for c in result["next"]]
    return lines[0] + "".join("\n" + term.printable(line) for line in lines[1:])
