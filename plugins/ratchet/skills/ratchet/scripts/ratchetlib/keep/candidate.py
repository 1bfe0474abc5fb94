"""What the agent changed since the incumbent, sorted by scope: tracked edits,
new files, protected paths and paths outside the editable scope. Undoes what
is not the agent's change (its own commits, the user's untracked files it
staged, a chmod of a protected file) and refuses edits inside submodules."""

from __future__ import annotations


from ..core import paths, record
from ..core.errors import UsageError
from ..io import githistory, gitops, harness, workspace


class Candidate(record.Record):
    """What the agent changed since the incumbent, sorted by scope."""

    tracked: tuple
    new: tuple
    protected: tuple
    outside: tuple
    note: str | None = None
    ignored: tuple = ()  # the git-ignored entries, read with the status (gitops.status_and_ignored), for ignored_new
    kinds: tuple = ()  # (path, edited|deleted|added|staged) for each protected path git reports
    index_is_head: bool = False  # nothing staged: every tracked path is in HEAD, and a swap needs no reset
    status: tuple | None = None  # the status read, ignored entries too, when nothing was put back since (carry.tree)

    @property
    def paths(self) -> list:
        return list(self.tracked) + list(self.new)

    def to_dict(self) -> dict:
        return {"tracked": list(self.tracked), "new": list(self.new), "note": self.note,
                "index_is_head": self.index_is_head}


def candidate(run: workspace.Run) -> Candidate:
    """The agent's change against the incumbent, undoing self-made commits."""
    repo, st, cfg = run.repo, run.state, run.config
    note = None
    head = gitops.head_sha(repo)
    if head != st.incumbent_sha:
        branch = gitops.current_branch(repo)
        if branch != cfg.branch:
            raise UsageError(f"HEAD is on {branch or 'a detached commit'}, not the run's branch {cfg.branch}; "
                             f"`git checkout {cfg.branch}` and retry")
        githistory.soft_reset(repo, st.incumbent_sha)
        note = (f"the agent committed {head[:10]} itself; its change is measured as this iteration's candidate "
                f"(the commit was undone and is re-made on keep)")
    before = set(st.untracked_before or ())
    changes, ignored = gitops.status_and_ignored(repo)
    status = (*changes, *(gitops.Change("!!", p) for p in ignored))
    theirs = {c.path: "untracked before" if c.path in before else "bytecode cache" for c in changes
              if c.xy[0] == "A" and (c.path in before or paths.bytecode_cache(c.path))}
    if theirs:  # staged by the agent's `git add -A`, not its change: the user's untracked files, Python's caches
        gitops.git(repo, "reset", "-q", "--", *theirs)
        changes, status = gitops.status(repo), None
        note = (note + "; " if note else "") + f"unstaged {listing(theirs, 3)}"
    mode_only = [c.path for c in changes if c.xy == " M" and paths.classify(c.path, cfg.editable, cfg.protect)
                 == paths.PROTECTED and harness.content_unchanged(repo, run.store.root, c.path)]
    if mode_only:  # a chmod is not tampering; put the mode back so git sees no change
        gitops.git(repo, "checkout", "-q", "HEAD", "--", *mode_only)
        changes, status = [c for c in changes if c.path not in mode_only], None
        note = (note + "; " if note else "") + f"mode change of protected {', '.join(mode_only[:3])} undone (content unchanged)"
    index_is_head = all(c.xy == "??" or (c.xy[0] == " " and c.xy[1] in "MTD") for c in changes)
    changes = _refuse_nested(repo, changes, before)
    tracked = sorted(c.path for c in changes if not c.untracked)
    new = sorted(c.path for c in changes if c.untracked and c.path not in before and not paths.bytecode_cache(c.path))
    scope = {p: paths.classify(p, cfg.editable, cfg.protect) for p in tracked + new}
    xy = {c.path: c.xy for c in changes}
    protected = tuple(p for p, s in scope.items() if s == paths.PROTECTED)
    return Candidate(tuple(tracked), tuple(new), protected,
                     tuple(p for p, s in scope.items() if s == paths.OUTSIDE), note, tuple(ignored),
                     tuple((p, _git_kind(xy[p], repo, run.store.root, p)) for p in protected), index_is_head, status)


def _refuse_nested(repo: str, changes: list, before: set) -> list:
    """An edit inside a submodule (or a nested repository) is refused: git
    cannot diff, swap, commit or revert its files from this repository, so
    measuring it would report a revert that leaves the edit in place, and a
    keep would point at a submodule commit that exists nowhere else. A
    submodule dirty only with bytecode (its modules were imported) is no
    change: it is dropped from `changes`; one the user had at init
    (`before`) is theirs, as any untracked file."""
    nested = gitops.nested_repos([c for c in changes if c.path not in before])
    subs = [p.rstrip("/") for p in nested if gitops.nested_edited(repo, p)]
    if subs:
        s = subs[0]
        raise UsageError(f"the change is inside git submodule or nested repository {', '.join(subs[:3])}, which ratchet "
                         f"cannot swap, commit or revert from this repository; undo it (git -C {s} stash -u, then "
                         f"git submodule update -- {s} if its commit moved) and change this repository's own files, "
                         f"or run ratchet inside {s}")
    return [c for c in changes if c.path not in nested]


def ignored_new(run: workspace.Run, cand: Candidate) -> list:
    """Git-ignored entries made since init outside any trial (by the agent,
    usually), from the listing read with `cand`: a kept change that reads one
    works here and crashes in a clean checkout of the branch. Not counted:
    what trials write (it is absorbed into `ignored_before` after each
    decision), `.ratchet/`, bytecode, the report and --artifact-glob matches.
    A new file inside an ignored folder that already existed is not seen
    (the folder is one entry)."""
    cfg = run.config
    if run.state.ignored_before is None:  # a run started before this was kept: nothing to compare with
        return []
    before = set(run.state.ignored_before)
    skip = [".ratchet"] + list(cfg.artifact_globs) + ([cfg.report_path] if cfg.report_path else [])
    out = []
    for p in cand.ignored:
        rel = p.rstrip("/")
        if p in before or paths.matches_any(rel, skip) or rel.rsplit("/", 1)[-1] == "__pycache__" \
                or rel.endswith((".pyc", ".pyo")):
            continue
        out.append(p)
    return out


def _git_kind(xy: str, repo: str, store_root: str, path: str) -> str:
    """How git sees a protected path: `staged` is a change in the index only."""
    if xy == "??" or "A" in xy:
        return harness.ADDED
    if "D" in xy:
        return harness.DELETED
    return "staged" if harness.content_unchanged(repo, store_root, path) else harness.EDITED


def listing(changes: dict, n: int = 5) -> str:
    items = [f"{p} ({k})" for p, k in list(changes.items())[:n]]
    return ", ".join(items) + (f" and {len(changes) - n} more" if len(changes) > n else "")
