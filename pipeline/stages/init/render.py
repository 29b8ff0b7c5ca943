"""Pure text of what `pipeline init` writes: params sections, the model card skeleton, the data
dictionary, and the summary it prints. Values are written as YAML that reads back exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.core.config import Label, Params
from pipeline.core.params_edit import yaml_scalar
from pipeline.stages.init.inspect import FREE_TEXT_MEAN_LENGTH, INT_CATEGORY_LIMIT, MARGIN, Column
from pipeline.stages.init.plan import BANDS, THRESHOLD, Grouping, Plan

MARKER = "Written by `pipeline init`"
SHOWN_VALUES = 12


def number(value: float) -> str:
    """A YAML number without an exponent (PyYAML reads 1e-05 as text)."""
    return str(np.format_float_positional(round(float(value), 10), trim="-"))


def text(value: str) -> str:
    return yaml_scalar(value=value)


def flow(items: Sequence[str]) -> str:
    return "[" + ", ".join(text(i) for i in items) + "]"


def label(value: Label) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else text(value)


def base_section(*, plan: Plan, params: Params) -> str:
    target = plan.schema.target
    return "\n".join(
        [
            "base:",
            f"  seed: {params.base.seed}",
            f"  target: {text(target.name)}",
            f"  # The unique row key that joins late labels ({plan.schema.id_reason}).",
            f"  id_column: {text(plan.schema.id_column)}",
            '  # The two values the target takes (0/1, true/false, "yes"/"no"); the model scores',
            f"  # positive_label. Inferred: {target.reason}.",
            f"  positive_label: {label(target.positive)}",
            f"  negative_label: {label(target.negative)}",
        ]
    )


def _numeric(column: Column) -> str:
    assert column.low is not None
    assert column.high is not None
    return (
        f"{{min: {number(column.low)}, max: {number(column.high)}, dtype: {column.dtype}, "
        f"nullable: {'true' if column.nullable else 'false'}}}"
    )


def _categorical(column: Column) -> str:
    return (
        f"{{values: {flow(column.values)}, dtype: {column.dtype}, nullable: {'true' if column.nullable else 'false'}}}"
    )


def data_section(*, plan: Plan, params: Params, raw: str, query: str | None, url_env: str | None) -> str:
    schema = plan.schema
    declared = [c for c in schema.columns if c.declared]
    numeric = [c for c in declared if c.kind == "numeric"]
    categorical = [c for c in declared if c.kind == "categorical"]
    lines = [
        "data:",
        f"  # {MARKER} from {schema.source} ({schema.rows} rows); `pipeline init --help` gives the rules.",
        f"  raw: {text(raw)}",
        "  # 0 keeps every row; a positive number draws a seeded sample (quick runs, e2e tests).",
        f"  sample_rows: {params.data.sample_rows}",
        "  # Carried along for lineage, never used as a model input (dates and periods).",
        f"  metadata_columns: {flow([c.name for c in schema.of('metadata')])}",
        "  # Declared columns that are validated, logged and grouped for fairness and drift, but never fed",
        "  # to the model (e.g. a sensitive attribute the model must not use).",
        f"  audit_only: {flow([c.name for c in schema.of('audit-only')])}",
        "  # A numeric column: {min, max, dtype: float|int, nullable}. The range is the observed one widened",
        f"  # by {MARGIN:.0%} of its width on each side (not below 0 for a column with no negative value). A",
        "  # nullable column is imputed inside the model pipeline and its null share is reported by validation.",
        "  # Whole numbers with more than"
        f" {INT_CATEGORY_LIMIT} distinct values are numeric, with fewer they are codes (categorical).",
    ]
    if numeric:
        lines += ["  numeric:"] + [f"    {text(c.name)}: {_numeric(c)}" for c in numeric]
    else:
        lines += ["  numeric: {}"]
    lines += [
        "  # A categorical column: every value seen (codes as text), dtype str|int|bool, nullable, and",
        "  # unseen: refuse|other (default refuse: a value outside the list is refused by validation).",
    ]
    if categorical:
        lines += ["  categorical:"] + [f"    {text(c.name)}: {_categorical(c)}" for c in categorical]
    else:
        lines += ["  categorical: {}"]
    dropped = schema.of("dropped")
    lines.append("  # Columns the table holds that the project leaves out: validation accepts them, the model")
    lines.append("  # frame drops them. Declare one above (and remove it here) to use it.")
    lines += [f"  #   {c.name}: {c.reason}" for c in dropped]
    lines.append(f"  ignored: {flow([c.name for c in dropped])}")
    if query is not None and url_env is not None:
        lines += [
            "  # The ingest stage snapshots this query into `raw`; the URL is read from the environment",
            "  # variable url_env, never written here.",
            "  source:",
            f"    query: {json.dumps(query, ensure_ascii=False)}",
            f"    url_env: {url_env}",
        ]
    return "\n".join(lines)


def _grouping_lines(grouping: Grouping) -> list[str]:
    lines = [f"    {text(grouping.column)}:"]
    if grouping.codes is not None:
        codes = ", ".join(f"{text(name)}: {flow(members)}" for name, members in grouping.codes.items())
        return [*lines, f"      codes: {{{codes}}}"]
    assert grouping.bins is not None
    assert grouping.labels is not None
    return [
        *lines,
        f"      bins: [{', '.join(number(b) for b in grouping.bins)}]",
        f"      labels: {flow(grouping.labels)}",
    ]


def fairness_section(*, plan: Plan, params: Params) -> str:
    lines = [
        "fairness:",
        f'  # {MARKER}: one group per value (values too small to judge merged into "other"),',
        f"  # or {BANDS} quantile bands for a numeric column (a band includes its lower edge).",
        f"  min_group_size: {params.fairness.min_group_size}",
    ]
    if plan.groupings:
        lines += ["  groups:", *(line for g in plan.groupings for line in _grouping_lines(g))]
    else:
        lines += ["  groups: {}"]
    lines += [
        "  # Per sensitive feature: a null threshold means reported, not judged (a group too small for",
        "  # prepare.representation.min_rows_per_group in the train split, or with too few positives).",
        f"  # A judged threshold is {number(THRESHOLD)}, or three standard errors of a rate difference",
        "  # between the two smallest groups of the test split when that is larger (smaller tables).",
    ]
    if plan.groupings:
        lines.append("  thresholds:")
        for g in plan.groupings:
            value = number(g.threshold) if g.judged else "null"
            lines.append(f"    {text(g.column)}: {{demographic_parity: {value}, equalized_odds: {value}}}")
    else:
        lines.append("  thresholds: {}")
    return "\n".join(lines)


def simulate_section(*, plan: Plan, params: Params) -> str:
    sim, current = plan.simulation, params.simulate
    codes = ", ".join(f"{text(k)}: {flow(v)}" for k, v in sim.codes.items())
    ranges = ", ".join(f"{text(k)}: [{number(lo)}, {number(hi)}]" for k, (lo, hi) in sim.ranges.items())
    return "\n".join(
        [
            "simulate:",
            f"  rows: {current.rows}",
            "  # Rows are drawn with weights exp(strength * z-score of the feature).",
            f"  covariate: {{feature: {text(sim.covariate)}, strength: {number(current.covariate.strength)}}}",
            "  # Labels flipped for a share of one subgroup (these codes, values in [low, high)).",
            "  concept:",
            f"    share: {number(current.concept.share)}",
            f"    codes: {{{codes}}}",
            f"    ranges: {{{ranges}}}",
            "  # A code the reference never saw replaces a share of one categorical column.",
            f"  new_category: {{column: {text(sim.new_column)}, code: {text(sim.new_code)}, "
            f"share: {number(current.new_category.share)}}}",
        ]
    )


# ------------------------------------------------------------------------------ other files

CARD_TODO: Mapping[str, str] = {
    "title": "TODO: what the model predicts, for whom",
    "overview": "TODO: what the model predicts from which inputs, and why the team built it.",
    "owners": "TODO: the team that owns the model and how to reach it.",
    "intended_use": "TODO: the decisions or analyses the model is meant for.",
    "out_of_scope": "TODO: the uses it must not serve (e.g. decisions about an individual).",
    "factors": "TODO: the sensitive factors and why they matter.",
    "ethical_considerations": "TODO: whose data this is, what errors cost, and who bears them.",
    "caveats": "TODO: the population and period the data covers, known gaps.",
}


def card_source(*, plan: Plan, keys: Mapping[str, bool]) -> str:
    """A model card source with the given keys (True: a list) holding TODO text to replace."""
    schema = plan.schema
    measured = ", ".join(
        f"{g.column} ({', '.join(g.codes or g.labels or [])}{'' if g.judged else '; reported, not judged'})"
        for g in plan.groupings
    )
    lines = [
        "# The hand-written part of model_card.md. Numbers never go here: they come from the reports.",
        f"# {MARKER} for {schema.source}: replace every TODO before anyone relies on the model.",
    ]
    for key, is_list in keys.items():
        todo = CARD_TODO.get(key, f"TODO: {key.replace('_', ' ')}.")
        if key == "title":
            todo = f"TODO: predicts {schema.target.name} = {schema.target.positive}"
        if key == "factors" and measured:
            todo += f" The fairness stage measures {measured}."
        lines += [f"{key}:", f"  - {json.dumps(todo)}"] if is_list else [f"{key}: {json.dumps(todo)}"]
    return "\n".join(lines) + "\n"


def _shown(column: Column) -> str:
    if column.kind == "numeric" and column.observed is not None:
        return f"{number(column.observed[0])} to {number(column.observed[1])} (declared {number(column.low or 0)} to {number(column.high or 0)})"
    if column.values:
        more = f", ... ({len(column.values)} values)" if len(column.values) > SHOWN_VALUES else ""
        return ", ".join(column.values[:SHOWN_VALUES]) + more
    return ""


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


EARLIER = "## Before `pipeline init`"


def earlier_readme(previous: str | None) -> str:
    """What data/README.md said before init first ran (the demo tables' provenance and licence
    among it: those tables stay), carried along, headings one level down, by every later run.
    """
    if not previous or not previous.strip():
        return ""
    if MARKER in previous:
        return previous[previous.index(EARLIER) :] if EARLIER in previous else ""
    lines, fenced = [], False
    for line in previous.strip().splitlines():
        fenced = fenced != line.startswith("```")
        lines.append(f"#{line}" if line.startswith("#") and not fenced else line)
    return EARLIER + "\n\n" + "\n".join(lines) + "\n"


def data_readme(*, plan: Plan, raw: str, query: str | None, previous: str | None = None) -> str:
    schema, target = plan.schema, plan.schema.target
    counts = ", ".join(f"{k}: {n}" for k, n in target.counts.items())
    where = f"the query in params `data.source`, snapshotted to `{raw}`" if query else f"`{raw}`"
    lines = [
        f"# Data: {plan.name}",
        "",
        f"{MARKER} from {where}: {schema.rows} rows. Edit this file freely; params.yaml is what the",
        "pipeline reads. Raw data is immutable: add a new file and point `data.raw` at it, never edit one",
        "in place. Labelled production batches go to `data/incoming/` (see its README).",
        "",
        f"- Target: `{target.name}`, positive `{target.positive}`, negative `{target.negative}` ({counts}).",
        f"- Id: `{schema.id_column}` ({schema.id_reason}): unique, joins late labels.",
        "",
        "| column | role | dtype | nulls | range or values | why |",
        "|---|---|---|---:|---|---|",
    ]
    for c in schema.columns:
        role = f"dropped ({c.reason})" if c.role == "dropped" else c.role
        lines.append(
            f"| {_cell(c.name)} | {_cell(role)} | {c.dtype} | {c.nulls} | {_cell(_shown(c))} | {_cell(c.reason)} |"
        )
    if plan.groupings:
        lines += ["", "## Sensitive columns", ""]
        for g in plan.groupings:
            sizes = ", ".join(f"{k}: {n}" for k, n in g.sizes.items())
            verdict = "judged" if g.judged else "reported, not judged"
            lines.append(f"- `{g.column}` ({verdict}): {sizes}.")
    lines += [
        "",
        "Rules: `pipeline init --help`; free text means a mean length of at least "
        f"{FREE_TEXT_MEAN_LENGTH} characters with mostly distinct values.",
        "",
    ]
    earlier = earlier_readme(previous)
    return "\n".join(lines) + (f"\n{earlier}" if earlier else "")


INCOMING_README = """# Labelled production batches

Drop each period here as two files, named so that they sort in time (2024-01, 2024-02, ...):
- `<period>_features.parquet`: the rows as serving saw them (id and inputs, no target);
- `<period>_labels.parquet`: the id and the target, once the labels arrive.

The drift check reads the newest period; retraining (params `retrain`) joins the labelled ones to
the reference table `data.raw`.
"""


def summary(*, plan: Plan, written: Sequence[str], kept: Sequence[str]) -> list[str]:
    """What init decided and why, one line per column, then warnings and the files it wrote."""
    schema, target = plan.schema, plan.schema.target
    rows = [("column", "role", "dtype", "why")]
    rows.append((target.name, "target", f"{target.positive} / {target.negative}", target.reason))
    rows.append((schema.id_column, "id", "", schema.id_reason))
    rows += [
        (c.name, c.role, f"{c.kind} {c.dtype}".strip() + (" nullable" if c.nullable else ""), c.reason)
        for c in schema.columns
    ]
    widths = [min(max(len(r[i]) for r in rows), 30) for i in range(3)]
    lines = [f"{schema.source}: {schema.rows} rows, {len(schema.columns) + 2} columns"]
    lines += ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines += [f"warning: {w}" for w in plan.warnings]
    lines += [f"wrote {path}" for path in written] + [f"kept {path}" for path in kept]
    lines += [
        "Tables already under data/ (such as the template's demo data) stay in place: the template's own",
        "tests run on them. Next: check params.yaml and data/README.md, replace the TODOs in the card",
        "source, then `make run` (or `dvc repro`).",
    ]
    return lines
