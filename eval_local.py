"""Score a running server like the grader: accuracy (mean grader RougeL) and speed (chars/s).

python eval_local.py --which basic                      # the server on http://127.0.0.1:8000
python eval_local.py --questions my.jsonl --mode concurrent --report artifacts/run1
python eval_local.py --compare artifacts/a.jsonl artifacts/b.jsonl

All flags: python eval_local.py --help (the logic lives in qaserve/evaluation/).
"""

import sys

from qaserve.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
