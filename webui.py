"""The web console for a running qaserve server (Gradio, localhost only by default).

python webui.py --server-url http://127.0.0.1:8000 --host 127.0.0.1 --port 7860

Options also come from WEBUI_SERVER_URL, WEBUI_HOST and WEBUI_PORT (see --help); the logic
lives in qaserve/webui/app.py.
"""

import sys

from qaserve.webui.app import main

if __name__ == "__main__":
    sys.exit(main())
