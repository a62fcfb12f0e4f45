#!/usr/bin/env bash
# The README's main job: SGFT fine-tuning of push through the ROS 2 graph on the simulated "real" robot, from the
# shipped pretrained checkpoint. Writes runs/push_demo/{results.json,learning_curve.png,value_heatmap.png}.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="runs/push_demo"
rm -rf "$out"  # a fresh run: the learner would otherwise resume from the previous demo's store
mkdir -p "$out"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
python -m sgft_bringup.run_graph --task push --session --log-dir "$out/logs" \
  --set "sgft_learner.run_dir=$out/learner" \
  --set "sgft_policy.estop_state_file=$out/estop" \
  --set "sgft_policy.episode_state_file=$out/policy_episode.json" \
  --set "sgft_finetune_session.output_dir=$out" \
  --set "sgft_recorder.output_dir=$out/recordings" "$@"
grep -h "loop timing" "$out/logs/sgft_policy.log" | tail -n 1 || true
