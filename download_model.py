"""Fetch the model to serve (ModelScope by default) and print its directory.

python download_model.py                                      # MODEL_ID into ./model
python download_model.py --model_name Qwen/Qwen2.5-0.5B-Instruct --revision master
python download_model.py --source hf --model_name Qwen/Qwen2.5-0.5B-Instruct
python download_model.py --draft_model_name Qwen/Qwen2.5-0.5B --draft_optional

Files already present: nothing is fetched and no network is needed. All flags: --help
(the logic lives in qaserve/modeltools/hub.py).
"""

import sys

from qaserve.modeltools.hub import download_main

if __name__ == "__main__":
    sys.exit(download_main())
