#!/usr/bin/env bash
# Instructions per proxied request (host or browser profile), counted by callgrind: the same
# figure whatever else the machine is doing, so it compares hot-path changes on a busy box.
# Two runs differ only in the request count; their difference, divided, is one request.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-host}
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    .venv/bin/python bench/inprocess.py --requests "$1" --profile "$profile" 2>&1 \
    | awk '/Collected :/ {print $4}'
}
small=$(count ${SMALL:-2000})
large=$(count ${LARGE:-12000})
echo "$profile: $(( (large - small) / (${LARGE:-12000} - ${SMALL:-2000}) )) instructions per request"
