"""`pipeline changes`: what a workflow run has to do, decided from the pushed range's paths (never
from commit messages) and the deploy manifests.

  release     a pipeline input changed (dvc.lock, dvc.yaml, params, a stage's code or data):
              register the model, roll it into staging, propose the production canary
  production  the production manifest changed and no pipeline input did: apply it (after approval)
  analyze     a scheduled or dispatched run while the production manifest names a canary
  none        nothing to do

A branch-creating push has an all-zeros `before`: the range then starts at the merge-base with
the default branch, or, when there is none (the default branch itself was just created), every
tracked file counts as changed. The range's start is also the comparison base the PR gate uses.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.ci.dvcfiles import touches
from pipeline.core.config import Params

ZERO = "0" * 40
KINDS = ("release", "production", "analyze", "none")
# A dispatch names a task; `apply` is the production job (staging is applied by release only).
DISPATCH_KINDS = {"release": "release", "apply": "production", "analyze": "analyze"}
SHOWN_PATHS = 30


class ChangesError(RuntimeError):
    """The range or the event cannot be read (one line)."""


@dataclass(frozen=True)
class Decision:
    kind: str
    # The revision the range starts at (the gate's BASE); None when nothing came before.
    base: str | None
    head: str
    paths: tuple[str, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)


def _git(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def _commit(rev: str, *, root: Path) -> str | None:
    result = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", root=root)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def _lines(result: subprocess.CompletedProcess[str]) -> tuple[str, ...]:
    return tuple(line for line in result.stdout.splitlines() if line.strip())


def push_range(
    *, before: str | None, after: str, default_branch: str, root: Path
) -> tuple[str | None, tuple[str, ...], str]:
    """(base, changed paths, how the base was chosen) for a push of `before`..`after`."""
    head = _commit(after, root=root)
    if head is None:
        raise ChangesError(f"revision {after!r} not found (the checkout needs fetch-depth: 0 to see the pushed range)")
    if before and before != ZERO:
        base = _commit(before, root=root)
        if base is not None:
            diff = _git("diff", "--name-only", "--no-renames", base, head, root=root)
            if diff.returncode != 0:
                raise ChangesError(f"git diff {base[:12]} {head[:12]} failed: {diff.stderr.strip()}")
            return base, _lines(diff), f"pushed range {base[:12]}..{head[:12]}"
        note = f"before {before[:12]} is not in this clone (a force push?)"
    else:
        note = "a branch-creating push (before is all zeros)"
    for ref in (f"origin/{default_branch}", default_branch):
        found = _git("merge-base", ref, head, root=root)
        merge_base = found.stdout.strip()
        if found.returncode == 0 and merge_base and merge_base != head:
            diff = _git("diff", "--name-only", "--no-renames", merge_base, head, root=root)
            return merge_base, _lines(diff), f"{note}: compared with the merge-base with {ref}"
    # Nothing came before on the default branch: everything this commit holds is new.
    tracked = _lines(_git("ls-tree", "-r", "--name-only", head, root=root))
    parent = _commit(f"{head}^", root=root)
    return parent, tracked, f"{note}: no merge-base with {default_branch}, every tracked file counts as changed"


def classify(
    *, paths: tuple[str, ...], inputs: tuple[str, ...], production_manifest: str
) -> tuple[str, tuple[str, ...]]:
    """(kind, reasons) for a push that changed `paths`; pure."""
    pipeline = tuple(p for p in paths if touches(p, inputs))
    if pipeline:
        shown = ", ".join(pipeline[:5]) + (f" and {len(pipeline) - 5} more" if len(pipeline) > 5 else "")
        return "release", (f"pipeline inputs changed: {shown}",)
    if production_manifest in paths:
        return "production", (f"{production_manifest} changed and no pipeline input did",)
    if not paths:
        return "none", ("no file changed",)
    return "none", ("neither a pipeline input nor the production manifest changed",)


def canary_running(*, params: Params, env: str = "production") -> bool:
    from pipeline.delivery.manifest import load_manifest

    manifest = load_manifest(params=params, env=env)
    return manifest.strategy == "canary" and manifest.challenger is not None


def _production_manifest(params: Params, root: Path) -> str:
    from pipeline.delivery.manifest import manifest_path

    path = manifest_path(params=params, env="production")
    return (path.relative_to(root.resolve()) if path.is_absolute() else path).as_posix()


def _scheduled(*, event_name: str, event: Mapping[str, Any], params: Params, head: str) -> Decision:
    if event_name == "workflow_dispatch":
        task = str((event.get("inputs") or {}).get("task") or "")
        if task not in DISPATCH_KINDS:
            raise ChangesError(f"dispatch input task must be one of {', '.join(DISPATCH_KINDS)}, not {task!r}")
        if DISPATCH_KINDS[task] != "analyze":
            return Decision(DISPATCH_KINDS[task], None, head, reasons=(f"dispatched with task {task}",))
    if canary_running(params=params):
        return Decision("analyze", None, head, reasons=("the production manifest names a canary",))
    return Decision("none", None, head, reasons=("no manifest names a canary: nothing to analyze",))


def decide(
    *,
    event_name: str,
    event: Mapping[str, Any],
    params: Params,
    root: Path = Path("."),
    before: str | None = None,
    after: str | None = None,
    default_branch: str | None = None,
) -> Decision:
    """The decision for one workflow run; `before`/`after` given explicitly mean a push range."""
    from pipeline.ci import dvcfiles

    branch = default_branch or str((event.get("repository") or {}).get("default_branch") or "main")
    if before is None and after is None:
        if event_name in {"schedule", "workflow_dispatch"}:
            head = _commit("HEAD", root=root) or "HEAD"
            return _scheduled(event_name=event_name, event=event, params=params, head=head)
        if event_name == "pull_request":
            # Compared with the base branch's commit; the checkout is the PR's merge commit.
            before = str(((event.get("pull_request") or {}).get("base") or {}).get("sha") or "") or None
        elif event_name == "push":
            before, after = str(event.get("before") or "") or None, str(event.get("after") or "") or None
        else:
            raise ChangesError(f"cannot decide for a {event_name or 'missing'} event: give --before and --after")
    base, paths, how = push_range(before=before, after=after or "HEAD", default_branch=branch, root=root)
    kind, reasons = classify(
        paths=paths,
        inputs=dvcfiles.read(root=root).inputs,
        production_manifest=_production_manifest(params, root),
    )
    head = _commit(after or "HEAD", root=root) or "HEAD"
    if base is None:
        how += "; no earlier commit, so the gate compares the model with its own"
    return Decision(kind, base or head, head, paths, (how, *reasons))


def lines(decision: Decision) -> list[str]:
    """What the command prints: the reasons, the changed paths (capped) and the kind."""
    out = list(decision.reasons)
    out += [f"  {p}" for p in decision.paths[:SHOWN_PATHS]]
    if len(decision.paths) > SHOWN_PATHS:
        out.append(f"  ... and {len(decision.paths) - SHOWN_PATHS} more")
    out.append(f"kind={decision.kind}" + (f" base={decision.base[:12]}" if decision.base else ""))
    return out


def write_output(decision: Decision, *, path: Path) -> None:
    """kind= and base= for later steps and jobs (GITHUB_OUTPUT's key=value lines)."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"kind={decision.kind}\n")
        fh.write(f"base={decision.base or ''}\n")
