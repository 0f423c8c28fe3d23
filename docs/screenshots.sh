#!/bin/sh
# Regenerates the screenshots in docs/ui.md (docs/images/ui-*.png): runs the browser tests of
# tests/test_ui.py (the `mixed` scenario through the real broker, PostgreSQL and `vitmon run`,
# then `vitmon ui` in headless Chromium), which copy each page's screenshot here.
# Needs Debian's chromium and chromium-driver (`make debian`). About 5 minutes.
set -e
cd "$(dirname "$0")/.."
VITMON_UI_SCREENSHOTS="$PWD/docs/images" exec .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_ui.py -k chromium "$@"
