"""The predecessor's model-tool commands run here (issue 20): merge_adapter.py with its flags and
variables (base by ModelScope id, adapter from a git repository), quantize_awq.py's flags,
AWQ_* variables and {"text": ...} calibration rows, and its calibration sampler.

    pytest tests/modeltools/test_predecessor_tools.py -q
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from qaserve.modeltools.quant.calibration import calibration_samples
from qaserve.modeltools.quant.cli import build_parser as quant_parser
from tests.modeltools.test_merge import adapter_dir  # noqa: F401  (a module fixture)
from tests.support.fake_hub import FakeHub
from tests.support.tools import run_tool


def git_repo(files: Path, dest: Path) -> str:
    """`files` committed to a new git repository; its file:// URL."""
    shutil.copytree(files, dest)
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t",
                                                 "commit", "-qm", "lora"]):  # fmt: skip
        subprocess.run(["git", *args], cwd=dest, check=True)
    return dest.as_uri()


def test_merge_predecessor_command(
    hub: FakeHub,
    adapter_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = git_repo(adapter_dir, tmp_path / "repos" / "tiny-lora")
    done = run_tool(
        "merge_adapter.py",
        "--base_model", "qa/tiny", "--adapter_repo_url", url, "--prompts", "1",
        cwd=tmp_path,
        endpoint=hub.url,
        MERGED_MODEL_DIR=str(tmp_path / "merged"),
        MODEL_CACHE_DIR=str(tmp_path / "model"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "merged" / "config.json").is_file()
    assert (tmp_path / "merge_work" / "tiny-lora" / "adapter_config.json").is_file()
    info = json.loads((tmp_path / "merged" / "merge_info.json").read_text())
    assert Path(info["base"]).is_relative_to(tmp_path / "model")  # downloaded from ModelScope


def test_merge_needs_inputs(tmp_path: Path) -> None:
    done = run_tool(
        "merge_adapter.py", "--output_dir", "x", cwd=tmp_path, endpoint="http://127.0.0.1:9"
    )
    assert done.returncode == 2 and "--base, --adapter required" in done.stderr


def test_quantize_predecessor_flags_and_variables() -> None:
    env = {"AWQ_MODEL_DIR": "m", "AWQ_OUTPUT_DIR": "o", "AWQ_CALIB_JSONL": "calib_8192.jsonl"}
    args = quant_parser(env).parse_args([])
    assert (args.model, args.out, args.data) == ("m", Path("o"), Path("calib_8192.jsonl"))
    args = quant_parser({}).parse_args(
        ["--model_dir", "a", "--output_dir", "b", "--no_trust_remote_code"]
    )
    assert (args.model, args.out) == ("a", Path("b"))


def test_sampler_then_text_rows_calibrate(qwen_tokenizer: Any, tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": f"简答：问题{i}？"},
                          {"role": "assistant", "content": "答"}]} for i in range(30)]  # fmt: skip
    rows += [{"instruction": "什么是warp？"}, {"instruction": "短"}]
    text = "junk" + "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    (tmp_path / "data.jsonl").write_text(text, encoding="utf-8")
    done = run_tool(
        "sample_calib_from_data.py", cwd=tmp_path, endpoint="http://127.0.0.1:9", N="8", MIN_LEN="3"
    )
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "calib_512.jsonl").read_text("utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    assert len(texts) == 8 and all(not t.startswith("简答") for t in texts)
    assert (tmp_path / "calib_512.txt").read_text("utf-8").splitlines() == texts
    samples = calibration_samples(
        qwen_tokenizer, tmp_path / "calib_512.jsonl", num_samples=4, max_seq_len=256
    )
    assert len(samples) == 4
    for sample in samples:  # the prompt only: system and user turns, then the generation prompt
        assert sample.text.count("<|im_end|>") == 2 and "<|im_start|>assistant\n" in sample.text
