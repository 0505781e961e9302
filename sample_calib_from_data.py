"""Sample calibration questions from data.jsonl in the predecessor's format ({"text": ...} rows).

python sample_calib_from_data.py                         # data.jsonl -> calib_512.{jsonl,txt}
N=8192 MAX_LEN=2048 OUT_JSONL=calib_8192.jsonl OUT_TXT=calib_8192.txt \
    python sample_calib_from_data.py

All flags: python sample_calib_from_data.py --help (the logic lives in
qaserve/modeltools/quant/sample.py).
"""

import sys

from qaserve.modeltools.quant.sample import main

if __name__ == "__main__":
    sys.exit(main())
