"""Overnight auto-tuner: the fastest server settings that keep grader accuracy >= ACC.

python auto_tune.py --questions held_out.jsonl --n-trials 40     # or ./auto_tune.sh
python auto_tune.py --report                                      # plots + summary
"""

import sys

from qaserve.tuning.cli import main

if __name__ == "__main__":
    sys.exit(main())
