"""eval_local's command line and `evaluate()` against the fake server of test_client.py.

pytest tests/evaluation/test_run.py -q
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qaserve.evaluation import cli as evaluation
from qaserve.evaluation.cli import build_parser, load_sets, main, tokenizer_dir
from qaserve.evaluation.run import evaluate, write_jsonl
from qaserve.questions import QA
from qaserve.settings import Settings
from tests.support.fake_grader import FakeServer, free_port

FIELDS = {
    "index", "set", "question", "ref", "pred_raw", "rougeL_f1_raw", "rougeL_f1_cjk", "chars",
    "latency_s", "output_tokens_raw", "error",
}  # fmt: skip
SUMMARY = {
    "n", "mode", "accuracy_grader", "accuracy_cjk", "chars", "post_seconds", "chars_per_s",
    "tokens", "tokens_per_s", "errors", "empty", "endpoint", "started",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


def qa_file(tmp_path: Path, questions: list[str]) -> Path:
    path = tmp_path / "qs.jsonl"
    rows = [{"question": q, "answer": f"answer:{q} CUDA"} for q in questions]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


# --- flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["snake", "kebab"])
def test_predecessor_flags_in_both_spellings(style: str) -> None:
    def flag(name: str) -> str:
        return "--" + (name if style == "snake" else name.replace("_", "-"))

    argv = [
        "--which", "basic", flag("basic_docx"), "b.docx", flag("bonus_docx"), "p.docx",
        "--batch", "--endpoint", "http://h:1", "--health", flag("max_n"), "5",
        "--timeout", "9", flag("save_jsonl"), "o.jsonl", flag("overwrite_jsonl"),
        flag("model_dir_for_tokenizer"), "m", flag("strip_q_suffix"), flag("debug_first_n"), "2",
        flag("debug_random_n"), "3", flag("debug_random_seed"), "4",
    ]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert args.which == "basic" and args.basic_docx == Path("b.docx")
    assert args.bonus_docx == Path("p.docx") and args.batch and args.health
    assert args.endpoint == "http://h:1" and args.max_n == 5 and args.timeout == 9.0
    assert args.save_jsonl == Path("o.jsonl") and args.overwrite_jsonl
    assert args.model_dir_for_tokenizer == Path("m") and args.strip_q_suffix
    assert (args.debug_first_n, args.debug_random_n, args.debug_random_seed) == (2, 3, 4)


def test_defaults_and_new_flags() -> None:
    args = build_parser().parse_args([])
    assert args.which == "all" and args.mode == "auto" and not args.batch
    assert args.endpoint == "http://127.0.0.1:8000" and args.wait is None  # 60 s; --health: 0
    assert args.questions is None and args.report is None and args.compare is None
    args = build_parser().parse_args(
        ["--questions", "a.jsonl", "--questions", "b.csv", "--mode", "concurrent",
         "--concurrency", "3", "--dedupe", "--shuffle", "--seed", "7", "--report", "out",
         "--compare", "x.jsonl", "y.jsonl", "--wait", "0"]
    )  # fmt: skip
    assert args.questions == [Path("a.jsonl"), Path("b.csv")] and args.concurrency == 3
    assert args.dedupe and args.shuffle and args.seed == 7 and args.report == Path("out")
    assert args.compare == [Path("x.jsonl"), Path("y.jsonl")] and args.wait == 0.0


def test_bad_mode_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--mode", "parallel"])
    assert info.value.code == 2


def test_save_jsonl_refuses_to_overwrite(fake: FakeServer, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run.jsonl"
    out.write_text("keep me\n")
    questions = qa_file(tmp_path, ["a", "b"])
    argv = ["--endpoint", fake.url, "--questions", str(questions), "--save_jsonl", str(out)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "--overwrite-jsonl" in capsys.readouterr().err
    assert out.read_text() == "keep me\n" and fake.posts == []  # refused before asking
    assert main([*argv, "--overwrite_jsonl"]) == 0
    assert len(out.read_text().splitlines()) == 2


def test_write_jsonl_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.jsonl"
    write_jsonl([{"a": "中"}], path)
    with pytest.raises(FileExistsError):
        write_jsonl([{"a": 1}], path)
    assert json.loads(path.read_text("utf-8")) == {"a": "中"}


# --- question sets ------------------------------------------------------------------------------


def test_questions_replace_docx_sets_and_select(tmp_path: Path) -> None:
    path = qa_file(tmp_path, ["a", "b", "a", "c"])
    args = build_parser().parse_args(["--questions", str(path), "--dedupe", "--max_n", "2"])
    assert load_sets(args) == [QA("a", "answer:a CUDA", "qs"), QA("b", "answer:b CUDA", "qs")]


def test_missing_docx_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(evaluation, "ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="--basic-docx"):
        load_sets(build_parser().parse_args(["--which", "basic"]))
    with pytest.raises(FileNotFoundError, match="no question set"):
        load_sets(build_parser().parse_args([]))


def test_a_demo_model_server_is_scored_on_the_heldout_set(
    fake: FakeServer, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(evaluation, "ROOT", tmp_path)  # no docx sets anywhere
    with pytest.raises(SystemExit) as usage:  # an ordinary server: the missing sets are named
        main(["--endpoint", fake.url])
    assert usage.value.code == 2 and "no question set" in capsys.readouterr().err
    fake.info = {"ready": True, "demo_model": True, "model_dir": None}
    assert main(["--endpoint", fake.url]) == 0
    held = [json.loads(line) for line in evaluation.HELDOUT.read_text("utf-8").splitlines()]
    assert fake.posts == [[row["messages"][0]["content"] for row in held]]


def test_tokenizer_dir_from_flag_or_model_dir(tmp_path: Path, monkeypatch) -> None:
    parse = build_parser().parse_args
    assert tokenizer_dir(parse(["--model_dir_for_tokenizer", "m"])) == Path("m")
    assert tokenizer_dir(parse([])) is None
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    assert tokenizer_dir(parse([])) is None  # no tokenizer there: no counts, a warning
    (tmp_path / "tokenizer.json").write_text("{}")
    assert tokenizer_dir(parse([])) == tmp_path


# --- evaluate against the fake server --------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "sequential", "concurrent"])
def test_modes_give_the_same_records(fake: FakeServer, mode: str) -> None:
    qas = [QA(f"q{i}", f"answer:q{i}", "s") for i in range(6)]
    records, summary = evaluate(qas, endpoint=fake.url, mode=mode, concurrency=3)
    assert [r["pred_raw"] for r in records] == [f"answer:q{i}" for i in range(6)]
    assert all(set(r) == FIELDS for r in records)
    assert set(summary.as_dict()) >= SUMMARY and summary.mode == mode and summary.n == 6
    assert summary.accuracy_grader == pytest.approx(1.0)
    assert summary.errors == 0 and summary.chars == sum(len(f"answer:q{i}") for i in range(6))
    assert summary.posts == (1 if mode == "batch" else 6)
    assert summary.chars_per_s == pytest.approx(summary.chars / summary.post_seconds)
    assert (records[0]["latency_s"] is None) == (mode == "batch")


def test_auto_follows_the_health_status(fake: FakeServer) -> None:
    qas = [QA("a", "x"), QA("b", "y")]
    assert evaluate(qas, endpoint=fake.url)[1].mode == "batch"
    fake.status = "ok"
    assert evaluate(qas, endpoint=fake.url)[1].mode == "sequential"
    assert fake.posts == [["a", "b"], "a", "b"]


def test_errors_are_recorded_not_hidden(fake: FakeServer) -> None:
    qas = [QA("a", "answer:a"), QA("BOOM", "answer:BOOM"), QA("c", "answer:c")]
    records, summary = evaluate(qas, endpoint=fake.url, mode="sequential")
    assert records[1]["pred_raw"] is None and "engine exploded" in records[1]["error"]
    assert records[0]["error"] is None and records[2]["error"] is None
    assert summary.errors == 1 and summary.empty == 0
    assert summary.accuracy_grader == pytest.approx(2 / 3)  # the failed one counts as ""
    records, summary = evaluate(qas, endpoint=fake.url, mode="batch")
    assert summary.errors == 3 and all("HTTP 500" in r["error"] for r in records)
    assert summary.accuracy_grader == 0.0 and summary.posts == 1


def test_strip_q_suffix_changes_what_is_sent_not_the_record(fake: FakeServer) -> None:
    qas = [QA("什么是warp？请简要回答。", "warp")]
    records, _ = evaluate(qas, endpoint=fake.url, mode="batch", strip_q_suffix=True)
    assert fake.posts == [["什么是warp？"]]
    assert records[0]["question"] == "什么是warp？请简要回答。"


# --- main ---------------------------------------------------------------------------------------


def test_main_runs_reports_errors_and_exit_codes(fake: FakeServer, tmp_path: Path, capsys) -> None:
    questions = qa_file(tmp_path, ["a", "BOOM", "c"])
    out = tmp_path / "r.jsonl"
    argv = ["--endpoint", fake.url, "--questions", str(questions), "--mode", "sequential"]
    assert main([*argv, "--save-jsonl", str(out), "--debug-first-n", "2"]) == 1
    text = capsys.readouterr().out
    assert "1 of 3 questions FAILED" in text and "engine exploded" in text
    assert "accuracy_grader" in text
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["error"] is not None for r in rows] == [False, True, False]
    assert all(set(r) == FIELDS for r in rows)


def test_batch_mode_shows_progress_against_the_timeout(
    fake: FakeServer, tmp_path: Path, capsys
) -> None:
    questions = qa_file(tmp_path, ["a", "b", "c"])
    argv = ["--endpoint", fake.url, "--questions", str(questions), "--timeout", "90"]
    assert main(argv) == 0  # `GET /` says batch: one POST
    captured = capsys.readouterr()
    assert "1 POST of 3 questions, timeout 90 s" in captured.err
    assert "accuracy_grader" in captured.out


def test_runs_give_the_speed_spread(fake: FakeServer, tmp_path: Path, capsys) -> None:
    questions = qa_file(tmp_path, ["a", "b", "c"])
    out = tmp_path / "r.jsonl"
    argv = ["--endpoint", fake.url, "--questions", str(questions), "--save-jsonl", str(out)]
    assert main([*argv, "--runs", "3"]) == 0
    assert len(fake.posts) == 3  # batch mode: one POST per run
    saved = json.loads(out.with_suffix(".summary.json").read_text("utf-8"))
    assert saved["runs"] == 3
    assert saved["chars_per_s_min"] <= saved["chars_per_s_median"] <= saved["chars_per_s_max"]
    assert len(out.read_text("utf-8").splitlines()) == 3  # the first run's records
    assert "chars_per_s_median" in capsys.readouterr().out
    assert main([*argv, "--overwrite-jsonl"]) == 0  # one run: no repeat fields
    assert "runs" not in json.loads(out.with_suffix(".summary.json").read_text("utf-8"))
    with pytest.raises(SystemExit):
        main([*argv, "--overwrite-jsonl", "--runs", "0"])


def test_health_and_not_ready(fake: FakeServer, capsys) -> None:
    assert main(["--health", "--endpoint", fake.url]) == 0
    assert '"batch"' in capsys.readouterr().out
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["--health", "--endpoint", dead]) == 3
    fake.not_ready = 2  # --health probes once, unless told to wait
    assert main(["--health", "--endpoint", fake.url]) == 3
    assert main(["--health", "--endpoint", fake.url, "--wait", "10"]) == 0


def test_not_ready_server_is_exit_3(fake: FakeServer, tmp_path: Path, capsys) -> None:
    fake.not_ready = 1000
    questions = qa_file(tmp_path, ["a"])
    assert main(["--endpoint", fake.url, "--questions", str(questions), "--wait", "0.3"]) == 3
    assert "not ready" in capsys.readouterr().out and fake.posts == []


def test_usage_errors_exit_2(tmp_path: Path, capsys) -> None:
    questions = qa_file(tmp_path, ["a"])
    for argv, message in [
        (["--compare", "no-a.jsonl", "no-b.jsonl"], "no-a.jsonl"),
        (["--questions", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
        (["--questions", str(questions), "--model_dir_for_tokenizer", "nowhere"], "nowhere"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err
