"""The comment-preserving edits `pipeline init` adds to params_edit: a one-line value written as
YAML text (numbers, null, flow lists), and a whole top-level section replaced.
"""

from __future__ import annotations

import pytest
import yaml

from pipeline.core import params_edit
from tests.conftest import DEMO_PARAMS

pytestmark = pytest.mark.unit

TEXT = """# The file's own header.

base:
  seed: 42  # why
  target: y

# About data: stays, it sits above the next section.
data:
  raw: a.parquet
  # inside data: replaced with it
  numeric:
    x: {min: 0, max: 1}
  list: [a, "b, c"]  # kept

  # an indented comment at the end of data goes with it

# About fairness.
fairness:
  groups: {}
"""


def test_replace_section_keeps_the_comments_around_it() -> None:
    new = params_edit.replace_section(text=TEXT, key="data", body="data:\n  raw: b.parquet\n")
    assert new == TEXT.replace(
        TEXT[TEXT.index("data:\n") : TEXT.index("\n# About fairness.")], "data:\n  raw: b.parquet\n"
    )
    assert "# About data: stays" in new
    assert "# About fairness." in new
    assert "inside data" not in new
    assert yaml.safe_load(new) == {
        "base": {"seed": 42, "target": "y"},
        "data": {"raw": "b.parquet"},
        "fairness": {"groups": {}},
    }


def test_replace_section_handles_the_last_section_and_windows_line_endings() -> None:
    new = params_edit.replace_section(text=TEXT, key="fairness", body="fairness:\n  groups: {a: 1}")
    assert new.endswith("# About fairness.\nfairness:\n  groups: {a: 1}\n")
    crlf = TEXT.replace("\n", "\r\n")
    new = params_edit.replace_section(text=crlf, key="base", body="base:\n  seed: 1\n  target: z\n")
    assert "\r\nbase:\r\n  seed: 1\r\n  target: z\r\n\r\n# About data" in new
    assert "\n" not in new.replace("\r\n", "")


def test_replace_section_refuses_a_missing_or_nested_key() -> None:
    with pytest.raises(params_edit.ParamsEditError, match="no top-level `nope` section"):
        params_edit.replace_section(text=TEXT, key="nope", body="nope: 1")
    with pytest.raises(params_edit.ParamsEditError, match="no top-level `raw` section"):
        params_edit.replace_section(text=TEXT, key="raw", body="raw: 1")


def test_replace_section_on_the_demo_params_changes_only_that_section() -> None:
    text = DEMO_PARAMS.read_text(encoding="utf-8")
    new = params_edit.replace_section(text=text, key="simulate", body="simulate:\n  rows: 5")
    before, after = yaml.safe_load(text), yaml.safe_load(new)
    assert after["simulate"] == {"rows": 5}
    after["simulate"] = before["simulate"]
    assert after == before
    assert len(new.splitlines()) < len(text.splitlines())


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("base.seed", "7", 7),
        ("data.raw", "null", None),
        ("data.list", "[x, y]", ["x", "y"]),
        ("data.list", "[]", []),
        ("data.numeric.x", "{min: 2, max: 3}", {"min": 2, "max": 3}),
    ],
)
def test_set_value_writes_yaml_text_and_keeps_the_trailing_comment(key: str, value: str, expected: object) -> None:
    new = params_edit.set_value(text=TEXT, key=key, value=value)
    loaded = yaml.safe_load(new)
    node = loaded
    for part in key.split("."):
        node = node[part]
    assert node == expected
    assert len(new.splitlines()) == len(TEXT.splitlines())
    assert "  seed: 7  # why" in new or key != "base.seed"
    assert "]  # kept" in new


def test_set_value_refuses_a_block_value_a_missing_key_and_a_multi_line_value() -> None:
    with pytest.raises(params_edit.ParamsEditError, match=r"`data\.numeric` does not hold a one-line value"):
        params_edit.set_value(text=TEXT, key="data.numeric", value="{}")
    with pytest.raises(params_edit.ParamsEditError, match=r"no `data\.nope` key"):
        params_edit.set_value(text=TEXT, key="data.nope", value="1")
    with pytest.raises(params_edit.ParamsEditError, match="must fit on one line"):
        params_edit.set_value(text=TEXT, key="base.seed", value="1\n2")


def test_keys_under_an_empty_key_lists_the_top_level_keys() -> None:
    assert params_edit.keys_under(text=TEXT, key="") == ["base", "data", "fairness"]
