"""Label-store scenarios shared by the SQLite and PostgreSQL tests: each takes a log URL, writes
predictions and labels of known ids and times, and asserts what the store keeps and reads back.
"""

from __future__ import annotations

import dataclasses

from pipeline.core import predlog
from tests.predlog_support import DAY, log_row

NOW = 1_800_000_000.0


def label(association_id: str, value: int, *, source: str = "feedback", observed: float = NOW) -> predlog.LabelRecord:
    return predlog.LabelRecord(association_id, value, str(value), observed, source)


def write(url: str, records: list[predlog.LabelRecord], duplicates: str, *, now: float = NOW) -> predlog.LabelWrite:
    return predlog.write_labels(url=url, records=records, duplicates=duplicates, now=now)


def log_predictions(url: str, ids: dict[str, float], *, env: str = "production", role: str = "champion") -> None:
    """One prediction per id, `ids[id]` days before NOW."""
    store = predlog.open_store(url)
    try:
        rows = [dataclasses.replace(log_row(i, NOW - age * DAY), env=env, role=role) for i, age in ids.items()]
        store.write(rows)
    finally:
        store.close()


def newest(url: str, *, now: float = NOW, retention_days: int | None = None) -> dict[str, tuple[int, str, int]]:
    """Each labelled id's (label, source, version) as readers see it."""
    joined = predlog.labelled_predictions(url, retention_days=retention_days, now=now)
    columns = ("association_id", "label", "label_source", "label_version")
    return {
        str(i): (int(lab), str(src), int(ver)) for i, lab, src, ver in zip(*(joined[c] for c in columns), strict=True)
    }


def refuse_scenario(url: str) -> None:
    """refuse: the first label stays, a different later one is reported, a retry is not a duplicate."""
    log_predictions(url, {"a": 1.0, "b": 1.0})
    first = write(url, [label("a", 1), label("b", 0)], "refuse")
    assert (first.inserted, first.unchanged, first.refused) == (2, 0, ())
    later = write(url, [label("a", 0), label("a", 1), label("b", 0, source="import:late.csv")], "refuse")
    assert later.inserted == 0
    assert later.unchanged == 1
    assert [(r.association_id, r.label, r.stored_label, r.stored_source) for r in later.refused] == [
        ("a", 0, 1, "feedback"),
        # The same value from another source is a second label all the same.
        ("b", 0, 0, "feedback"),
    ]
    assert newest(url) == {"a": (1, "feedback", 1), "b": (0, "feedback", 1)}


def version_scenario(url: str) -> None:
    """version: a different later label is a new version and readers take it; a late retry of the
    first label does not override the correction.
    """
    log_predictions(url, {"a": 1.0})
    assert write(url, [label("a", 1)], "version").inserted == 1
    corrected = write(url, [label("a", 0, source="import:fix.csv")], "version")
    assert (corrected.inserted, corrected.refused) == (1, ())
    assert newest(url) == {"a": (0, "import:fix.csv", 2)}
    retry = write(url, [label("a", 1)], "version")
    assert (retry.inserted, retry.unchanged) == (0, 1)
    assert newest(url) == {"a": (0, "import:fix.csv", 2)}
    back = write(url, [label("a", 1, source="import:fix2.csv")], "version")
    assert back.inserted == 1
    assert newest(url) == {"a": (1, "import:fix2.csv", 3)}


def matching_scenario(url: str) -> None:
    """Ids with a logged prediction are matched; unknown ids are stored all the same and join once
    their prediction is logged.
    """
    log_predictions(url, {"a": 1.0})
    outcome = write(url, [label("a", 1), label("zz", 0), label("zz", 0)], "refuse")
    assert (outcome.rows, outcome.inserted, outcome.unchanged) == (3, 2, 1)
    assert (outcome.matched, outcome.unmatched) == (("a",), ("zz",))
    assert newest(url) == {"a": (1, "feedback", 1)}
    log_predictions(url, {"zz": 0.5})
    assert newest(url) == {"a": (1, "feedback", 1), "zz": (0, "feedback", 1)}


def retention_scenario(url: str) -> None:
    """Readers never see a prediction or a label past the retention; prune deletes labels observed
    or received before the cut-off, and counts them first on a dry run.
    """
    log_predictions(url, {"fresh": 1.0, "old_prediction": 95.0, "old_label": 1.0, "late": 1.0})
    write(url, [label("fresh", 1), label("old_prediction", 1)], "version")
    write(url, [label("old_label", 0, observed=NOW - 95 * DAY)], "version", now=NOW)
    # Received long ago (an import 100 days back), observed recently enough: still past retention.
    write(url, [label("late", 1, observed=NOW - 10 * DAY)], "version", now=NOW - 100 * DAY)
    assert set(newest(url)) == {"fresh", "old_prediction", "old_label", "late"}
    assert set(newest(url, retention_days=90)) == {"fresh"}

    dry = predlog.prune(url=url, retention_days=90, now=NOW, dry_run=True)
    assert (dry.predictions, dry.labels) == (1, 2)
    assert set(newest(url)) == {"fresh", "old_prediction", "old_label", "late"}
    done = predlog.prune(url=url, retention_days=90, now=NOW)
    assert (done.predictions, done.labels) == (1, 2)
    # The recorded retention clamps a reader that passes none.
    assert set(newest(url)) == {"fresh"}
    assert newest(url, now=NOW + 100 * DAY) == {}


def newest_within_retention_scenario(url: str) -> None:
    """A newer version observed before the cut-off is out of the retention: readers fall back to
    the newest version still inside it.
    """
    log_predictions(url, {"a": 1.0})
    write(url, [label("a", 1)], "version")
    write(url, [label("a", 0, source="import:old.csv", observed=NOW - 95 * DAY)], "version")
    assert newest(url) == {"a": (0, "import:old.csv", 2)}
    assert newest(url, retention_days=90) == {"a": (1, "feedback", 1)}
