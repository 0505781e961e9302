"""Search-space files: names, types and ranges checked against the server's settings, choices,
conditions, the grid, and how values become a trial server's environment.

    pytest tests/tuning/test_space.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from qaserve.paths import REPO_ROOT
from qaserve.settings import Settings
from qaserve.tuning.space import (
    SpaceError,
    load_space,
    overrides_env,
    parse_space,
    trial_env,
)

REPO = REPO_ROOT


def test_default_space_names_real_settings_and_checks() -> None:
    space = load_space(REPO / "tune_space.json")
    names = [p.name for p in space.params]
    assert len(names) >= 12
    assert all(name.lower() in Settings.model_fields for name in names)
    for wanted in (
        "GPU_MEMORY_UTILIZATION",
        "MAX_NUM_SEQS",
        "MAX_NUM_BATCHED_TOKENS",
        "MAX_MODEL_LEN",
        "ASYNC_SCHEDULING",
        "VLLM_KV_CACHE_DTYPE",
        "ENABLE_PREFIX_CACHING",
        "ENGINE_REPLICAS",
        "DECODE_AT_END",
        "SHORT_MAX_NEW_TOKENS",
        "TRIM_ANSWERS",
        "REPETITION_PENALTY",
        "ENABLE_SPECULATIVE_DECODING",
    ):
        assert wanted in names


def test_field_or_variable_names_and_kinds() -> None:
    space = parse_space(
        {
            "params": {
                "max_num_seqs": [64, 128],
                "GPU_MEMORY_UTILIZATION": {"low": 0.5, "high": 0.9},
                "SHORT_MAX_NEW_TOKENS": {"low": 32, "high": 128, "step": 32},
            }
        }
    )
    kinds = {p.name: p.kind for p in space.params}
    assert kinds == {
        "MAX_NUM_SEQS": "categorical",
        "GPU_MEMORY_UTILIZATION": "float",
        "SHORT_MAX_NEW_TOKENS": "int",
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"NOT_A_SETTING": [1, 2]}, "not a server setting"),
        ({"ADMIN_TOKEN": ["a"]}, "cannot be tuned"),
        ({"PORT": [8000, 8001]}, "cannot be tuned"),
        ({"GPU_MEMORY_UTILIZATION": {"low": 0.5, "high": 1.2}}, "GPU_MEMORY_UTILIZATION=1.2"),
        ({"MAX_NUM_SEQS": [0, 8]}, "MAX_NUM_SEQS=0"),
        ({"ENGINE": ["vllm", "tensorrt"]}, "ENGINE='tensorrt'"),
        ({"MAX_NUM_SEQS": {"low": 8, "high": 4}}, "low < high"),
        ({"MAX_NUM_SEQS": {"low": 8, "high": 64, "step": 8, "log": True}}, "cannot be combined"),
        ({"MAX_NUM_SEQS": {"low": 8}}, "give `choices`"),
        ({"MAX_NUM_SEQS": []}, "non-empty"),
        (
            {
                "SPEC_NUM_TOKENS": {
                    "low": 2,
                    "high": 4,
                    "when": {"ENABLE_SPECULATIVE_DECODING": True},
                }
            },
            "not an earlier parameter",
        ),
    ],
)
def test_bad_spaces_name_the_parameter(params: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_space({"params": params})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="No such file"):
        load_space(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(SpaceError, match="bad.json"):
        load_space(bad)
    with pytest.raises(SpaceError, match="unknown keys"):
        parse_space({"params": {"MAX_NUM_SEQS": [1]}, "parms": {}})
    with pytest.raises(SpaceError, match="both fixed"):
        parse_space({"params": {"MAX_NUM_SEQS": [1, 2]}, "env": {"MAX_NUM_SEQS": 4}})


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("env:\n  WARMUP: false\nparams:\n  MAX_NUM_SEQS: [8, 16]\n", "utf-8")
    space = load_space(path)
    assert space.env == {"WARMUP": "0"}
    assert space.params[0].choices == (8, 16)


def test_conditions_and_suggest() -> None:
    space = parse_space(
        {
            "params": {
                "ENABLE_SPECULATIVE_DECODING": [False, True],
                "SPEC_NUM_TOKENS": {
                    "low": 2,
                    "high": 6,
                    "when": {"ENABLE_SPECULATIVE_DECODING": True},
                },
            }
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = []
    for _ in range(20):
        trial = study.ask()
        chosen = space.suggest(trial)
        study.tell(trial, 0.0)
        seen.append(chosen)
        assert ("SPEC_NUM_TOKENS" in chosen) == chosen["ENABLE_SPECULATIVE_DECODING"]
    assert {c["ENABLE_SPECULATIVE_DECODING"] for c in seen} == {False, True}


def test_grid_values() -> None:
    space = parse_space(
        {
            "params": {
                "MAX_NUM_SEQS": [8, 16],
                "GPU_MEMORY_UTILIZATION": {"low": 0.8, "high": 0.9, "step": 0.05},
                "SPEC_NUM_TOKENS": {"low": 2, "high": 4},
            }
        }
    )
    assert space.grid() == {
        "MAX_NUM_SEQS": [8, 16],
        "GPU_MEMORY_UTILIZATION": [0.8, 0.85, 0.9],
        "SPEC_NUM_TOKENS": [2, 3, 4],
    }
    with pytest.raises(SpaceError, match="needs a `step`"):
        parse_space({"params": {"TOP_P": {"low": 0.5, "high": 1.0}}}).grid()


def test_env_values_and_unset() -> None:
    env = overrides_env(
        {"ASYNC_SCHEDULING": None, "TRIM_ANSWERS": False, "TOP_P": 0.9, "STOP_STRINGS": ["###"]}
    )
    assert env == {
        "ASYNC_SCHEDULING": None,
        "TRIM_ANSWERS": "0",
        "TOP_P": "0.9",
        "STOP_STRINGS": '["###"]',
    }
    base = {"ASYNC_SCHEDULING": "1", "MODEL_DIR": "/m", "KEEP": "x"}
    merged = trial_env(base, {"MODEL_DIR": "/fixed", "WARMUP": "0"}, env)
    assert "ASYNC_SCHEDULING" not in merged  # null: the server's default
    assert merged["MODEL_DIR"] == "/fixed" and merged["WARMUP"] == "0" and merged["KEEP"] == "x"
    assert merged["TRIM_ANSWERS"] == "0"


def test_digest_tracks_content() -> None:
    a = parse_space({"params": {"MAX_NUM_SEQS": [8, 16]}})
    b = parse_space(json.loads(json.dumps({"params": {"max_num_seqs": [8, 16]}})))
    c = parse_space({"params": {"MAX_NUM_SEQS": [8, 32]}})
    assert a.digest() == b.digest() != c.digest()
