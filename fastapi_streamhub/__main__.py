"""`python -m fastapi_streamhub`: the `streamhub` command line, if its extra is installed."""

import sys

try:
    from fastapi_streamhub.cli import main
except ImportError as exc:  # click or rich missing
    sys.exit(
        "streamhub: the command line needs the cli extra: "
        f"pip install 'fastapi-streamhub[cli]' ({exc})"
    )

main()
