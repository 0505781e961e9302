"""Quantize a model for vLLM with llm-compressor: AWQ W4A16 (default), FP8 or INT8 W8A8.

python quantize_awq.py --model model/merged --out model/merged-awq --data data.jsonl
python quantize_awq.py --model model/merged --out model/merged-fp8 --scheme fp8
python quantize_awq.py --model model/merged --write-calibration calib.jsonl   # samples only

Run it from .venv: the quantization itself runs in .venv-quant (bash scripts/setup_quant.sh),
then the result is checked in vLLM. All flags: python quantize_awq.py --help (the logic lives
in qaserve/modeltools/quant/: compress.py, calibration.py and verify.py).
"""

import sys

from qaserve.logs import configure_logging
from qaserve.modeltools.quant.cli import main

if __name__ == "__main__":
    configure_logging("INFO")
    sys.exit(main())
