"""The DVC remote a project pushes snapshots to: adopted from DVC_REMOTE_URL when none is
committed, refused in one line when missing or pointing nowhere, and a real push and pull
through a local folder remote.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.core import dvc_remote
from pipeline.core.runner import tool, tool_env

pytestmark = pytest.mark.unit


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(dvc_remote.ENV_URL, raising=False)
    root = tmp_path / "project"
    root.mkdir()
    for cmd in (["git", "init", "-q"], [tool("dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=root, env=tool_env(), check=True)
    return root


def test_no_remote_is_refused_with_how_to_add_one(project: Path) -> None:
    assert dvc_remote.default_remote(root=project) is None
    with pytest.raises(dvc_remote.RemoteError, match=r"dvc remote add -d storage <url>.*DVC_REMOTE_URL"):
        dvc_remote.require_remote(root=project)


def test_a_folder_remote_that_does_not_exist_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dvc_remote.ENV_URL, str(project.parent / "nowhere"))
    with pytest.raises(dvc_remote.RemoteError, match="does not exist"):
        dvc_remote.require_remote(root=project)


def test_the_env_remote_is_written_locally_and_a_push_pulls_back(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv(dvc_remote.ENV_URL, str(store))
    assert dvc_remote.require_remote(root=project) == dvc_remote.REMOTE_NAME
    # The runner's remote never becomes part of the commit.
    assert "storage" not in (project / ".dvc" / "config").read_text(encoding="utf-8")
    (project / "table.csv").write_text("id,y\n1,0\n", encoding="utf-8")
    subprocess.run([tool("dvc"), "add", "-q", "table.csv"], cwd=project, env=tool_env(), check=True)
    dvc_remote.push(["table.csv"], root=project)
    assert any(p.is_file() for p in store.rglob("*"))
    (project / "table.csv").unlink()
    subprocess.run(
        [tool("dvc"), "cache", "dir", str(tmp_path / "empty-cache")], cwd=project, env=tool_env(), check=True
    )
    dvc_remote.pull(["table.csv"], root=project)
    assert (project / "table.csv").read_text(encoding="utf-8") == "id,y\n1,0\n"


def test_a_remote_url_with_a_password_is_refused_and_never_written(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(dvc_remote.ENV_URL, "https://user:s3cret@storage.invalid/dvc")
    with pytest.raises(dvc_remote.RemoteError, match="carries a user:password") as caught:
        dvc_remote.require_remote(root=project)
    assert "s3cret" not in str(caught.value)
    written = "".join(p.read_text(encoding="utf-8") for p in (project / ".dvc").glob("config*"))
    assert "s3cret" not in written
