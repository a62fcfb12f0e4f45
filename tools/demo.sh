#!/usr/bin/env bash
# The README's main job. Runs what exists of the pipeline end to end (see README "Main job").
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
echo "demo: DDS round trip of every sgft_msgs interface between two processes"
python -m pytest sgft_msgs/test/test_dds_roundtrip.py -q -p no:cacheprovider
