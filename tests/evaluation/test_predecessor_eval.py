"""The predecessor's documented evaluation commands run here (issue 20): eval_local.py with its
--endpoint .../predict, --health URL, --sleep and the sample docx files in the working
directory; judge.sh with its variables.

    pytest tests/evaluation/test_predecessor_eval.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qaserve.evaluation.cli import base_url, main
from qaserve.settings import Settings
from tests.support.fake_grader import FakeServer
from tests.test_questions import write_docx

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


@pytest.fixture
def sample_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with basic.docx and plus.docx, where the predecessor kept them."""
    write_docx(tmp_path / "basic.docx", ["问题：什么是warp？", "答案：warp是32个线程。"])
    write_docx(tmp_path / "plus.docx", ["问题：什么是SM？", "答案：SM是流多处理器。"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_endpoint_with_predict_route_is_the_base_url() -> None:
    assert base_url("http://h:8000/predict") == "http://h:8000"
    assert base_url("http://h:8000/predict/") == "http://h:8000"
    assert base_url("http://h:8000/") == "http://h:8000"


def test_predecessor_eval_command(fake: FakeServer, sample_dir: Path) -> None:
    # judge.sh's command there, with the flags its README shows
    out = sample_dir / "eval_details.jsonl"
    argv = [
        "--endpoint", f"{fake.url}/predict", "--health", f"{fake.url}/", "--which", "all",
        "--batch", "--overwrite_jsonl", "--save_jsonl", str(out), "--sleep", "0",
        "--timeout", "300", "--max_n", "0",
    ]  # fmt: skip
    assert main(argv) == 0
    assert fake.posts == [
        ["什么是warp？", "什么是SM？"]
    ]  # one batch, to /predict (not /predict/predict)
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["set"] for r in records] == ["basic", "bonus"]


def test_sleep_between_sequential_requests(fake: FakeServer, sample_dir: Path) -> None:
    fake.status = "ok"
    argv = ["--endpoint", f"{fake.url}/predict", "--which", "basic", "--sleep", "0.2"]
    assert main(argv) == 0
    assert fake.posts == ["什么是warp？"]


def test_judge_sh_predecessor_variables(fake: FakeServer, sample_dir: Path) -> None:
    env = {
        **os.environ,
        "WHICH": "bonus",
        "ENDPOINT": f"{fake.url}/predict",
        "ARTIFACTS_DIR": str(sample_dir / "artifacts"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", str(REPO / "judge.sh"), "--overwrite_jsonl", "--batch"],
        cwd=sample_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert fake.posts == [["什么是SM？"]]
