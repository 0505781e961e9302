"""Merge a LoRA/PEFT adapter into its base model, write a complete model directory, verify it.

python merge_adapter.py --base model/Qwen2.5-0.5B-Instruct --adapter runs/lora --out model/merged
python merge_adapter.py --base Qwen/Qwen2.5-0.5B-Instruct --adapter runs/lora --out model/merged \
    --dtype bfloat16 --overwrite

All flags: python merge_adapter.py --help (the logic lives in qaserve/modeltools/merge.py).
"""

import sys

from qaserve.logs import configure_logging
from qaserve.modeltools.merge import main

if __name__ == "__main__":
    configure_logging("INFO")
    sys.exit(main())
