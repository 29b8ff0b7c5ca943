"""Comment-preserving edits of params.yaml (and other hand-written YAML such as deploy manifests).

params.yaml is read by people as much as by the pipeline: its comments explain each knob. A YAML
round trip would drop them, so values are replaced in place, one line at a time, and every other
byte stays as it was.

Standard library only, and no import from the package: the copier task that fills params.yaml
from the answers (scripts/apply_answers.py) loads this file by path with copier's interpreter,
before the project's environment, and so the package's dependencies, exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, NamedTuple

# The metrics the train stage can rank candidates by (config.TrainSection.primary_metric; a
# unit test keeps the two, and copier.yml's choices, equal).
PRIMARY_METRICS = ("roc_auc", "average_precision", "f1", "accuracy")
TABLE_SUFFIXES = (".parquet", ".pq", ".csv")

# A mapping key at the start of a line (after its indentation): plain or quoted, then a colon
# followed by a space or the end of the line.
_KEY = re.compile(r"""(?P<key>"[^"]*"|'[^']*'|[^\s#'"\[\]{},&*!|>%@`-][^:#]*?)[ \t]*:(?=[ \t]|$)(?P<rest>.*)""")
# Plain scalars that YAML would read as something other than this string (or not at all).
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_NOT_STRINGS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


class ParamsEditError(ValueError):
    """The key to set is missing or does not hold a one-line scalar; nothing was changed."""


class Applied(NamedTuple):
    text: str
    notes: list[str]


def yaml_scalar(*, value: str) -> str:
    """`value` as a YAML scalar that reads back as exactly this string."""
    if _PLAIN.fullmatch(value) and value.lower() not in _NOT_STRINGS:
        return value
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value, ensure_ascii=False)


def _entries(lines: Sequence[str]) -> Iterator[tuple[tuple[str, ...], int, str]]:
    """(key path, line index, text after the colon) for every block-mapping key."""
    stack: list[tuple[int, str]] = []
    block_scalar_indent: int | None = None
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        stripped = body.lstrip(" ")
        indent = len(body) - len(stripped)
        if block_scalar_indent is not None:
            # The lines of a `|` or `>` scalar are text, whatever colons they hold.
            if not stripped or indent > block_scalar_indent:
                continue
            block_scalar_indent = None
        if not stripped or stripped.startswith(("#", "-", "---", "...")):
            continue
        match = _KEY.fullmatch(stripped)
        if match is None:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = match["key"]
        stack.append((indent, key[1:-1] if key[0] in "\"'" else key))
        rest = match["rest"]
        if rest.strip().startswith(("|", ">")):
            block_scalar_indent = indent
        yield tuple(k for _, k in stack), i, rest


def _split_scalar(rest: str) -> tuple[str, str, str] | None:
    """(spacing, value, trailing comment) of a one-line scalar; None for anything else."""
    body = rest.lstrip(" \t")
    spacing = rest[: len(rest) - len(body)]
    if not body or body[0] in "#[]{}|>&*!%@`":
        return None
    if body[0] in "\"'":
        quote = body[0]
        end = 1
        while end < len(body):
            if quote == '"' and body[end] == "\\":
                end += 2
                continue
            if body[end] == quote:
                if quote == "'" and body[end + 1 : end + 2] == "'":
                    end += 2
                    continue
                break
            end += 1
        else:
            return None
        value, tail = body[: end + 1], body[end + 1 :]
        if tail.strip() and not tail.lstrip(" \t").startswith("#"):
            return None
        return spacing, value, tail
    comment = re.search(r"[ \t]#", body)
    value = body[: comment.start()] if comment else body
    value = value.rstrip(" \t")
    return spacing, value, body[len(value) :]


def _find(lines: Sequence[str], path: tuple[str, ...]) -> tuple[int, str] | None:
    return next(((i, rest) for found, i, rest in _entries(lines) if found == path), None)


def set_scalar(*, text: str, key: str, value: str, source: str = "params.yaml") -> str:
    """`text` with the scalar at dotted `key` (e.g. `data.raw`) set to `value`; all else unchanged."""
    lines = text.splitlines(keepends=True)
    found = _find(lines, tuple(key.split(".")))
    if found is None:
        raise ParamsEditError(f"{source}: no `{key}` key to set")
    i, rest = found
    parts = _split_scalar(rest)
    if parts is None:
        raise ParamsEditError(f"{source}: `{key}` does not hold a one-line value; edit it by hand")
    spacing, _, tail = parts
    line = lines[i]
    ending = line[len(line.rstrip("\r\n")) :]
    head = line[: len(line.rstrip("\r\n")) - len(rest)]
    lines[i] = f"{head}{spacing or ' '}{yaml_scalar(value=value)}{tail}{ending}"
    return "".join(lines)


def keys_under(*, text: str, key: str) -> list[str]:
    """The keys directly under dotted `key`, in file order (e.g. the features fairness groups);
    the top-level keys for an empty `key`.
    """
    parent = tuple(key.split(".")) if key else ()
    return [path[-1] for path, _, _ in _entries(text.splitlines()) if path[:-1] == parent]


def _split_flow(rest: str) -> tuple[str, str, str] | None:
    """(spacing, value, trailing comment) of a one-line flow list or mapping; None otherwise."""
    body = rest.lstrip(" \t")
    spacing = rest[: len(rest) - len(body)]
    if not body or body[0] not in "[{":
        return None
    depth, quote, end = 0, "", 0
    while end < len(body):
        char = body[end]
        if quote:
            if char == "\\" and quote == '"':
                end += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                break
        end += 1
    else:
        return None
    value, tail = body[: end + 1], body[end + 1 :]
    if tail.strip() and not tail.lstrip(" \t").startswith("#"):
        return None
    return spacing, value, tail


def set_value(*, text: str, key: str, value: str, source: str = "params.yaml") -> str:
    """`text` with the one-line value at dotted `key` replaced by the YAML text `value` as written
    (a number, null, or a flow list such as `[a, b]`); the key's trailing comment stays.
    """
    if "\n" in value or "\r" in value:
        raise ParamsEditError(f"{source}: the new value of `{key}` must fit on one line")
    lines = text.splitlines(keepends=True)
    found = _find(lines, tuple(key.split(".")))
    if found is None:
        raise ParamsEditError(f"{source}: no `{key}` key to set")
    i, rest = found
    parts = _split_flow(rest) or _split_scalar(rest)
    if parts is None:
        raise ParamsEditError(f"{source}: `{key}` does not hold a one-line value; edit it by hand")
    spacing, _, tail = parts
    line = lines[i]
    ending = line[len(line.rstrip("\r\n")) :]
    head = line[: len(line.rstrip("\r\n")) - len(rest)]
    lines[i] = f"{head}{spacing or ' '}{value}{tail}{ending}"
    return "".join(lines)


def replace_section(*, text: str, key: str, body: str, source: str = "params.yaml") -> str:
    """`text` with the whole top-level section `key` (its key line and every line under it)
    replaced by `body`, which starts with `key:`. The comment lines above the section, and those
    above the next one, stay as they are; `body` takes the file's line endings.
    """
    lines = text.splitlines(keepends=True)
    found = _find(lines, (key,))
    if found is None:
        raise ParamsEditError(f"{source}: no top-level `{key}` section to replace")
    start = found[0]
    if lines[start][:1] in (" ", "\t"):
        raise ParamsEditError(f"{source}: `{key}` is not a top-level section")
    top_level = [i for path, i, _ in _entries(lines) if len(path) == 1 and i > start]
    end = top_level[0] if top_level else len(lines)
    # Blank lines and unindented comments just before the next section describe that section.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    ending = "\r\n" if lines[start].endswith("\r\n") else "\n"
    new = [f"{line}{ending}" for line in body.rstrip("\r\n").replace("\r\n", "\n").split("\n")]
    return "".join([*lines[:start], *new, *lines[end:]])


# --------------------------------------------------------------------------- copier answers

# Which params key each answer sets. The table is also the retraining reference: at the start
# it is the data the first champion is trained on.
ANSWER_KEYS = {
    "project_name": ("tracking.experiment",),
    "registered_model": ("tracking.registered_model",),
    "table": ("data.raw", "retrain.reference"),
    "target": ("base.target",),
    "id_column": ("base.id_column",),
    "primary_metric": ("train.primary_metric",),
}


def _text_answer(answers: Mapping[str, Any], name: str) -> str:
    value = answers.get(name)
    if not isinstance(value, str) or not value.strip() or value != value.strip() or "\n" in value:
        raise ParamsEditError(f"answer {name}: give a non-empty one-line text without surrounding spaces")
    return value


def check_answers(*, params_text: str, answers: Mapping[str, Any]) -> list[str]:
    """Refuse answers params cannot take; the notes say what the team still has to do by hand."""
    for name in ANSWER_KEYS:
        _text_answer(answers, name)
    table = PurePosixPath(answers["table"])
    if table.is_absolute() or ".." in table.parts or table.suffix.lower() not in TABLE_SUFFIXES:
        raise ParamsEditError(
            f"answer table: {answers['table']!r} must be a path inside the project ending in "
            f"{', '.join(TABLE_SUFFIXES)} (e.g. data/raw/my_table.parquet)"
        )
    if answers["primary_metric"] not in PRIMARY_METRICS:
        raise ParamsEditError(f"answer primary_metric: {answers['primary_metric']!r} is not one of {PRIMARY_METRICS}")
    if answers["target"] == answers["id_column"]:
        raise ParamsEditError("answers target and id_column name the same column; they must differ")
    sensitive = answers.get("sensitive_columns")
    if not isinstance(sensitive, list) or not sensitive or not all(isinstance(c, str) for c in sensitive):
        raise ParamsEditError("answer sensitive_columns: give a non-empty list of column names, e.g. [sex, age]")
    # Groupings (codes or bins per group) cannot be guessed from a column name: only columns
    # params already groups are accepted, until `pipeline init` writes groupings from the table.
    known = keys_under(text=params_text, key="fairness.groups")
    unknown = [c for c in sensitive if c not in known]
    if unknown:
        raise ParamsEditError(
            f"answer sensitive_columns: params.yaml fairness.groups has no grouping for {unknown}; "
            f"answer with some of {known} and add the others to fairness.groups and "
            "fairness.thresholds by hand after the copy"
        )
    if {answers["target"], answers["id_column"]} & set(sensitive):
        raise ParamsEditError("answer sensitive_columns: the target and the id column cannot be sensitive columns")
    left_out = [c for c in known if c not in sensitive]
    if not left_out:
        return []
    return [
        f"params.yaml fairness.groups still measures {left_out} (not in your sensitive columns): "
        "remove them from fairness.groups, fairness.thresholds and prepare.representation.group_features "
        "if they are not sensitive for your table"
    ]


def apply_answers(*, params_text: str, answers: Mapping[str, Any]) -> Applied:
    """params.yaml text with the answers of `copier copy` in place, and notes for the team."""
    notes = check_answers(params_text=params_text, answers=answers)
    text = params_text
    for name, keys in ANSWER_KEYS.items():
        for key in keys:
            text = set_scalar(text=text, key=key, value=answers[name])
    return Applied(text, notes)
