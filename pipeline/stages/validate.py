"""Validate a raw table against a Great Expectations suite built from params.yaml.

A failure stops the pipeline: the report names each failed expectation with example bad
values, and nothing downstream runs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.core.config import Params

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

logger = logging.getLogger(__name__)

SUITE_NAME = "raw_data"
FIXED_RUN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
# The dtypes a column may arrive in, after io.read_table has made nullable extension dtypes
# plain: a whole-number column with a missing value is float64 (numpy has no missing int), a
# boolean one object.
INT_TYPES = ["int64", "int32", "int16", "int8", "uint8", "uint16", "uint32"]
STR_TYPE = "str"


def allowed_types(dtype: str, *, nullable: bool) -> list[str] | None:
    """None means the single str type, which GX checks only with ExpectColumnValuesToBeOfType."""
    if dtype == "str":
        return None
    if dtype == "bool":
        return ["bool", "object"] if nullable else ["bool"]
    if dtype == "int":
        return [*INT_TYPES, "float64"] if nullable else INT_TYPES
    return ["float64", "float32", *INT_TYPES]


def typed_codes(codes: tuple[str, ...], dtype: str) -> list[Any]:
    """The value set as the column holds it: params list every code as text."""
    if dtype == "int":
        return [int(c) for c in codes]
    if dtype == "bool":
        return [c == "true" for c in codes]
    return list(codes)


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    message: str
    examples: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    rows: int
    evaluated: int
    failures: list[Failure]
    # Missing values per declared column that has any (allowed only where params say nullable).
    nulls: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "rows": self.rows,
            "expectations_evaluated": self.evaluated,
            "failures": [f.__dict__ for f in self.failures],
            "nulls": dict(sorted(self.nulls.items())),
        }


def expected_columns(params: Params) -> list[str]:
    data = params.data
    return [params.base.id_column, *data.columns, params.base.target, *data.metadata_columns, *data.ignored]


def build_suite(*, params: Params, name: str = SUITE_NAME, with_target: bool = True) -> ExpectationSuite:
    """The suite is derived from params alone: editing params.yaml is how a team adapts it."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    data, target, id_col = params.data, params.base.target, params.base.id_column
    columns = expected_columns(params)
    if not with_target:
        columns.remove(target)
    suite = gx.ExpectationSuite(name=name)
    add = suite.add_expectation
    add(gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True))
    add(gxe.ExpectTableRowCountToBeBetween(min_value=params.validation.min_rows, max_value=params.validation.max_rows))
    nullable = {c for c, s in data.numeric.items() if s.nullable} | {
        c for c, s in data.categorical.items() if s.nullable
    }
    # Metadata (a period, a date) and ignored columns are carried, not judged: nulls are fine there.
    nullable |= {*data.metadata_columns, *data.ignored}
    for col in columns:
        if col not in nullable:
            add(gxe.ExpectColumnValuesToNotBeNull(column=col))
    add(gxe.ExpectColumnValuesToBeUnique(column=id_col))

    def of_type(col: str, dtype: str, *, nullable: bool) -> None:
        types = allowed_types(dtype, nullable=nullable)
        if types is None:
            add(gxe.ExpectColumnValuesToBeOfType(column=col, type_=STR_TYPE))
        else:
            add(gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=types))

    for col, bounds in data.numeric.items():
        of_type(col, bounds.dtype, nullable=bounds.nullable)
        add(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=bounds.min, max_value=bounds.max))
    for col, spec in data.categorical.items():
        of_type(col, spec.dtype, nullable=spec.nullable)
        # A production batch may bring a code the model scores as "other": drift reports it.
        if with_target or spec.unseen == "refuse":
            add(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=typed_codes(spec.values, spec.dtype)))
    if with_target:
        labels = [params.base.negative_label, params.base.positive_label]
        add(gxe.ExpectColumnValuesToBeInSet(column=target, value_set=labels))
    return suite


def _describe(kind: str, column: str | None, result: dict[str, Any], kwargs: dict[str, Any]) -> str:
    where = f"column {column!r}" if column else "table"
    count = result.get("unexpected_count")
    rows = f" in {count} rows" if count else ""
    if kind == "expect_table_columns_to_match_set":
        observed = set(result.get("observed_value") or [])
        expected = set(kwargs.get("column_set") or [])
        parts = []
        if expected - observed:
            parts.append(f"missing columns {sorted(expected - observed)}")
        if observed - expected:
            parts.append(f"unexpected extra columns {sorted(observed - expected)}")
        return "table: " + ("; ".join(parts) or "column set differs")
    if kind == "expect_table_row_count_to_be_between":
        return f"table: {result.get('observed_value')} rows, expected between {kwargs.get('min_value')} and {kwargs.get('max_value')}"
    if kind == "expect_column_values_to_not_be_null":
        return f"{where}: null values{rows}"
    if kind == "expect_column_values_to_be_unique":
        return f"{where}: duplicated values{rows}"
    if kind == "expect_column_values_to_be_of_type":
        return f"{where}: wrong dtype {result.get('observed_value')!r}, expected {kwargs.get('type_')!r}"
    if kind == "expect_column_values_to_be_in_type_list":
        allowed = ", ".join(kwargs.get("type_list") or [])
        return f"{where}: wrong dtype {result.get('observed_value')!r}, expected one of {allowed}"
    if kind == "expect_column_values_to_be_between":
        return f"{where}: values outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}]{rows}"
    if kind == "expect_column_values_to_be_in_set":
        return f"{where}: values not in the allowed set{rows}"
    return f"{where}: {kind} failed"


def run_suite(
    *, frame: pd.DataFrame, params: Params, docs_dir: Path | None = None, with_target: bool = True
) -> ValidationOutcome:
    """Run the suite on a frame; optionally build Data Docs into docs_dir.

    with_target=False checks a production batch, whose labels arrive separately.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    ctx = gx.get_context(mode="ephemeral")
    batch = ctx.data_sources.add_pandas("raw").add_dataframe_asset("table").add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(build_suite(params=params, with_target=with_target))
    definition = ctx.validation_definitions.add(gx.ValidationDefinition(name=SUITE_NAME, data=batch, suite=suite))
    actions: list[Any] = []
    if docs_dir is not None:
        ctx.add_data_docs_site(
            site_name="local",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["local"]))
    checkpoint = ctx.checkpoints.add(
        gx.Checkpoint(
            name=SUITE_NAME,
            validation_definitions=[definition],
            actions=actions,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": params.validation.example_values},
        )
    )
    # A fixed run identity: Data Docs name folders and stamp pages with it, and the report is a
    # DVC output, so a rerun on the same data must write the same bytes.
    run_id = RunIdentifier(run_name=SUITE_NAME, run_time=FIXED_RUN_TIME)
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    failures: list[Failure] = []
    evaluated = 0
    for run in result.run_results.values():
        for r in run.results:
            evaluated += 1
            if r.success:
                continue
            cfg = r.expectation_config
            if cfg is None:
                continue
            kwargs = dict(cfg.kwargs)
            column = kwargs.get("column")
            if column is not None and column not in frame.columns:
                # Reported once by the column-set expectation; the per-column ones only echo it.
                continue
            res = dict(r.result or {})
            examples = list(res.get("partial_unexpected_list") or [])[: params.validation.example_values]
            message = _describe(cfg.type, column, res, kwargs)
            if cfg.type == "expect_table_columns_to_match_set":
                message = _column_set_message(params, frame, message, with_target=with_target)
            failures.append(Failure(cfg.type, column, message, examples))
    declared = [c for c in params.data.columns if c in frame.columns]
    counts = frame[declared].isna().sum()
    nulls = {str(c): int(n) for c, n in counts.items() if n}
    return ValidationOutcome(success=not failures, rows=len(frame), evaluated=evaluated, failures=failures, nulls=nulls)


def _column_set_message(params: Params, frame: pd.DataFrame, fallback: str, *, with_target: bool) -> str:
    # A missing column is named with the params key that asks for it: that is the line to edit.
    from pipeline.core.config_keys import missing_from_table

    missing = missing_from_table(params, frame.columns, with_target=with_target)
    expected = set(expected_columns(params)) - (set() if with_target else {params.base.target})
    extra = sorted(str(c) for c in set(frame.columns) - expected)
    parts = [
        *missing,
        *([f"unexpected extra columns {extra} (declare them in params data or drop them)"] if extra else []),
    ]
    return "table: " + "; ".join(parts) if parts else fallback


def render_markdown(outcome: ValidationOutcome, *, source: str) -> str:
    verdict = "PASSED" if outcome.success else "FAILED"
    lines = [
        f"# Data validation: {verdict}",
        "",
        f"Source `{source}`: {outcome.rows} rows, {outcome.evaluated} expectations evaluated, "
        f"{len(outcome.failures)} failed.",
        "",
    ]
    if outcome.nulls:
        shares = ", ".join(f"{c} {n} ({n / max(outcome.rows, 1):.1%})" for c, n in sorted(outcome.nulls.items()))
        lines += [f"Missing values: {shares}.", ""]
    if outcome.failures:
        lines += ["| expectation | column | problem | examples |", "|---|---|---|---|"]
        for f in outcome.failures:
            examples = ", ".join(repr(e) for e in f.examples)
            lines.append(f"| `{f.expectation}` | {f.column or '(table)'} | {f.message} | {examples} |")
        lines.append("")
    return "\n".join(lines)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STAMP = re.compile(r"\?d=\d{8}T\d{6}\.\d{6}Z")
_TIME = re.compile(r"\d{8}T\d{6}\.\d{6}Z")


def _numbered(text: str) -> str:
    ids: dict[str, str] = {}
    return _UUID.sub(lambda m: ids.setdefault(m[0], f"block-{len(ids) + 1}"), text)


def canonical_docs(docs_dir: Path) -> None:
    """Data Docs pages carry a random id per collapsible block, a build time in an image URL and
    the batch's load time; ids are numbered in order and times set to the fixed run time, so the
    same data gives the same report bytes.
    """
    fixed = FIXED_RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ")
    for page in sorted(docs_dir.rglob("*.html")):
        text = _STAMP.sub("", _numbered(page.read_text(encoding="utf-8")))
        page.write_text(_TIME.sub(fixed, text), encoding="utf-8")


class ValidationFailed(RuntimeError):
    """The data broke the suite; the message lists every failed expectation."""


def main(*, params: Params, source: Path | None = None) -> ValidationOutcome:
    """The validate stage: read, check, write the report; raise when the data is refused."""
    from pipeline.core import io

    source = source or params.data.raw
    out_dir = params.paths.reports / "validation"
    frame = io.read_table(source)
    outcome = run_suite(frame=frame, params=params, docs_dir=out_dir / "data_docs")
    canonical_docs(out_dir / "data_docs")
    io.write_json({"source": str(source), **outcome.as_dict()}, out_dir / "validation.json")
    io.write_text(render_markdown(outcome, source=str(source)), out_dir / "validation.md")
    if not outcome.success:
        details = "\n".join(
            f"  - {f.message}" + (f" (e.g. {', '.join(repr(e) for e in f.examples)})" if f.examples else "")
            for f in outcome.failures
        )
        raise ValidationFailed(f"{source} failed validation:\n{details}\nReport: {out_dir / 'validation.md'}")
    return outcome
