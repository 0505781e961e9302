"""Where things are: the repository root (the one place that knows it) and the files in it.

python -c "from qaserve.paths import REPO_ROOT; print(REPO_ROOT)"
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # qaserve/ sits in the repository root
PROJECT_DATA = REPO_ROOT / "data.jsonl"  # the project's Q&A pairs (warm-up, calibration)
DEMO_MODEL_DIR = REPO_ROOT / "demo_model"  # shipped with the code
