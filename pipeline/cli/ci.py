"""Commands of the ci wing, the pull-request checks: model smoke test, champion fetch, gate, report,
and `ci`, which runs that whole sequence locally; and the steps every workflow job shares:
`preflight` (its secrets set and reachable), `changes` (what a push asks of cd.yml) and
`remote pull|push` (the DVC remote).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, ParamsOpt, fail, known_errors, verbose

app = typer.Typer()
champion_app = typer.Typer(help="The champion model the gate compares against.", no_args_is_help=True)
app.add_typer(champion_app, name="champion")


@app.command()
def smoke(
    *,
    model: Annotated[Path | None, typer.Option("--model", help="Model file (default: params paths.model).")] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Registry version of params tracking.registered_model instead.")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Load the model as serving does, score a fixed sample, check output schema and one-row latency."""
    from pipeline.core.config import load_params
    from pipeline.delivery.registry_client import RegistryError
    from pipeline.delivery.smoke import SmokeFailed, run

    verbose()
    if model is not None and version is not None:
        fail("give either --model or --version, not both", code=2)
    refusals: tuple[type[Exception], ...] = (*known_errors(), RegistryError, SmokeFailed)
    try:
        run(params=load_params(params), model_path=model, version=version)
    except refusals as exc:
        fail(str(exc))


@champion_app.command("fetch")
def champion_fetch(
    *,
    rev: Annotated[str, typer.Option("--rev", help="Base revision (branch, tag or commit).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the base revision's model file.")],
    rebuild: Annotated[
        bool, typer.Option("--rebuild/--no-rebuild", help="Rebuild from the base commit when nothing is cached.")
    ] = True,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Write the model of a base revision (DVC cache or remote, else rebuilt) for `pipeline gate`."""
    from pipeline.ci.champion import ChampionError, fetch
    from pipeline.core.config import load_params

    verbose()
    refusals: tuple[type[Exception], ...] = (*known_errors(), ChampionError)
    try:
        config = load_params(params)
        fetch(rev=rev, out=out, default_model_path=config.paths.model.as_posix(), rebuild=rebuild)
    except refusals as exc:
        fail(str(exc))


@app.command()
def gate(
    *,
    champion_model: Annotated[
        Path | None,
        typer.Option("--champion-model", help="Base branch's model (from `pipeline champion fetch`)."),
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Candidate vs champion on the candidate's holdout; writes reports/gate.json, exit 1 on failure."""
    from pipeline.ci.gate import GateInputError, run
    from pipeline.core.config import load_params

    verbose()
    refusals: tuple[type[Exception], ...] = (*known_errors(), GateInputError)
    try:
        decision = run(params=load_params(params), champion_model=champion_model)
    except refusals as exc:
        fail(str(exc), code=2)
    typer.echo(f"gate {'passed' if decision['passed'] else 'FAILED'}: {decision['summary']}")
    for reason in decision["reasons"]:
        typer.echo(f"  - {reason}")
    if not decision["passed"]:
        raise typer.Exit(1)


@app.command()
def report(
    *,
    out: Annotated[Path, typer.Option("--out", help="Markdown file to write.")] = Path("reports/pr_report.md"),
    base: Annotated[str | None, typer.Option("--base", help="Base revision for the metrics and params diff.")] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """The pull-request report (verdict, diffs, fairness, validation, MLflow run); also the job summary."""
    from pipeline.ci.report import run
    from pipeline.core.config import load_params

    verbose()
    try:
        run(params=load_params(params), out=out, base=base)
    except known_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote {out}")


@app.command()
def ci(
    *,
    base: Annotated[str, typer.Option("--base", help="Revision whose model is the champion.")] = "HEAD",
    out: Annotated[Path, typer.Option("--out", help="Markdown report to write.")] = Path("reports/pr_report.md"),
    lint: Annotated[bool, typer.Option("--lint/--no-lint", help="Run ruff, mypy, actionlint and zizmor first.")] = True,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """The pull-request workflow locally: lint, dvc repro, smoke, champion fetch, gate, report."""
    from pipeline.ci.local import run

    verbose()
    try:
        failed = run(params_path=params, base=base, out=out, lint=lint)
    except known_errors() as exc:
        fail(str(exc))
    typer.echo(f"report: {out}")
    if failed:
        fail(f"ci failed: {', '.join(failed)}")
    typer.echo("ci passed")


# ---- the workflows' own steps: preflight, what changed, the DVC remote ----
remote_app = typer.Typer(help="The DVC remote: pull what a job needs, push what it produced.", no_args_is_help=True)
app.add_typer(remote_app, name="remote")
DemoOpt = Annotated[
    bool,
    typer.Option("--demo", help="A demo run: the embedded stores stand in for missing secrets (also DEMO_RUN=true)."),
]


@app.command()
def preflight(
    *,
    workflow: Annotated[str, typer.Option("--workflow", help="ci | cd | drift.")],
    job: Annotated[
        str | None,
        typer.Option("--job", help="ci: pipeline|gate; cd: release|production|analyze; drift: check|pr|alert."),
    ] = None,
    demo: DemoOpt = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """First step of a workflow job: what the job needs is set and reachable; exit 2 with one line naming the missing secret."""
    from pipeline.ci import preflight as checks
    from pipeline.core.config import load_params
    from pipeline.monitoring.github import GitHubError, require_token

    try:
        lines = checks.run(
            workflow=workflow,
            job=job,
            params=load_params(params),
            demo=checks.demo_mode(flag=demo),
            require_token=lambda name: require_token(name=name),
        )
    except (*known_errors(), checks.PreflightError, GitHubError) as exc:  # type: ignore[misc]
        fail(str(exc), code=2)
    for line in lines:
        typer.echo(line)


@app.command()
def changes(
    *,
    before: Annotated[
        str | None, typer.Option("--before", help="First commit of the range (default: the event's).")
    ] = None,
    after: Annotated[
        str | None, typer.Option("--after", help="Last commit of the range (default: the event's).")
    ] = None,
    event: Annotated[
        Path | None, typer.Option("--event", help="Event payload JSON (default: GITHUB_EVENT_PATH).")
    ] = None,
    event_name: Annotated[
        str | None,
        typer.Option(
            "--event-name", help="push | pull_request | schedule | workflow_dispatch (default: GITHUB_EVENT_NAME)."
        ),
    ] = None,
    default_branch: Annotated[
        str | None,
        typer.Option("--default-branch", help="For a branch-creating push (default: the event's, else main)."),
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Print the pushed range's changed paths and decide release | production | analyze | none (kind= and base= in GITHUB_OUTPUT)."""
    import json
    import os

    from pipeline.ci.changes import ChangesError, decide, lines, write_output
    from pipeline.ci.dvcfiles import DvcFilesError
    from pipeline.core.config import load_params
    from pipeline.delivery.manifest import DeployError

    event_path = event or (Path(os.environ["GITHUB_EVENT_PATH"]) if os.environ.get("GITHUB_EVENT_PATH") else None)
    refusals: tuple[type[Exception], ...] = (*known_errors(), ChangesError, DvcFilesError, DeployError)
    try:
        payload = {}
        if event_path is not None:
            try:
                payload = json.loads(event_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ChangesError(f"{event_path}: not a readable event payload ({exc})") from exc
        name = event_name or os.environ.get("GITHUB_EVENT_NAME") or ("push" if before or after else "")
        decision = decide(
            event_name=name,
            event=payload if isinstance(payload, dict) else {},
            params=load_params(params),
            before=before,
            after=after,
            default_branch=default_branch,
        )
    except refusals as exc:
        fail(str(exc), code=2)
    for line in lines(decision):
        typer.echo(line)
    if output := os.environ.get("GITHUB_OUTPUT"):
        write_output(decision, path=Path(output))


def _remote(*, demo: bool, action: str) -> str | None:
    """The default remote's name; None (after saying so) in a demo run without one."""
    from pipeline.ci.preflight import ERR_NO_REMOTE, demo_mode
    from pipeline.core import dvc_remote

    name = dvc_remote.default_remote()
    if name is None:
        if demo_mode(flag=demo):
            typer.echo(f"no DVC remote (demo run): nothing to {action}")
            return None
        raise dvc_remote.RemoteError(ERR_NO_REMOTE)
    return name


@remote_app.command("pull")
def remote_pull(
    *,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail when the remote lacks an object (default: the pipeline rebuilds it).")
    ] = False,
    demo: DemoOpt = False,
) -> None:
    """`dvc pull` from the default remote (DVC_REMOTE_URL or .dvc/config), so `dvc repro` finds the committed dvc.lock cached."""
    from pipeline.core import dvc_remote

    try:
        name = _remote(demo=demo, action="pull")
        if name is not None:
            dvc_remote.pull(allow_missing=not strict)
            typer.echo(f"pulled from DVC remote {name}")
    except dvc_remote.RemoteError as exc:
        fail(str(exc), code=2)


@remote_app.command("push")
def remote_push(demo: DemoOpt = False) -> None:
    """`dvc push` of every cached output to the default remote, so the next runner pulls instead of rebuilding."""
    from pipeline.core import dvc_remote

    try:
        name = _remote(demo=demo, action="push")
        if name is not None:
            dvc_remote.push([])
            typer.echo(f"pushed to DVC remote {name}")
    except dvc_remote.RemoteError as exc:
        fail(str(exc), code=2)
