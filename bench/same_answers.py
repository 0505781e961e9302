"""Do two benchmark variants give the same answers? (files from bench_server.py --save-answers)

python bench/same_answers.py out/answers-replicas-1-358.json out/answers-replicas-2-358.json
"""

import json
import sys
from pathlib import Path

a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in sys.argv[1:3])
same = sum(x == y for x, y in zip(a, b, strict=True))
print(f"{same}/{len(a)} answers identical between {sys.argv[1]} and {sys.argv[2]}")
