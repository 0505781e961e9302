"""Upload a model folder to a ModelScope repo, creating the repo if needed.

python upload_model.py --repo-id me/my-qwen --model-dir model/merged --dry-run   # list only
MODELSCOPE_API_TOKEN=... python upload_model.py --repo-id me/my-qwen --model-dir model/merged

Refuses folders without config.json and weights unless --force. All flags: --help
(the logic lives in qaserve/modeltools/hub.py).
"""

import sys

from qaserve.modeltools.hub import upload_main

if __name__ == "__main__":
    sys.exit(upload_main())
