#!/usr/bin/env bash
# The real-robot path end to end against the simulated robot (make demo-operator): the push graph in real-sim mode
# (wall clock, a site file, the reset server homing the arm, no sim time), a short session whose resets wait for the
# operator, and the scripted operator of sgft_bringup.console: it sets up each scene the reset server asks for,
# confirms it, labels two episodes and takes over for a few steps in one. Writes runs/push_operator/.
# The simulated robot is the calibrated one (proxy sim: a reset server's proportional homing cannot converge on a
# controller that scales every step by 2.5), and homing does not retract (the simulated push finger stays at its
# height); the simulated hand's "down" is a quarter turn from the policy's default orientation.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="runs/push_operator"
rm -rf "$out"
mkdir -p "$out"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-43}"
# A site file for the simulated lab: its camera's pose, the puck's colour, home, and two start scenes (where the
# simulator's evaluation seeds put the puck).
python - "$out/site.yaml" <<'PY'
import sys

import yaml

from sgft_bringup.graph import load_config
from sgft_core.seeds import EVAL_SEED
from sgft_sim import make_env

perception = load_config("push")["sgft_perception"]
env = make_env("push", "real")
scenes = []
for i in range(2):
    env.reset(seed=EVAL_SEED + i)
    scenes.append([round(float(v), 4) for v in env.object_position()[:2]])
env.close()
site = {"site": {"robot_profile": "sim", "robot_ip": "127.0.0.1",
                 "cameras": [{"name": "camera1", "serial": "0", "extrinsics": list(perception["extrinsics"])}],
                 "perception": {"hsv_min": perception["hsv_min"], "hsv_max": perception["hsv_max"],
                                "table_height": 0.0},
                 "home_joints": [0.0, 0.3, 0.0, -2.2, 0.0, 2.4708, 0.785],
                 "home_position": [0.30, 0.0, 0.02], "start_scenes": scenes}}
with open(sys.argv[1], "w", encoding="utf-8") as f:
    yaml.safe_dump(site, f)
PY
python -m sgft_bringup.console --scripted --scene-service /sgft/sim/reset_scene --site "$out/site.yaml" \
  --labels 2 --intervene-in 1 > "$out/operator.log" 2>&1 &
operator=$!
trap 'kill -INT $operator 2>/dev/null || true' EXIT
python -m sgft_bringup.run_graph --task push --mode real-sim --site "$out/site.yaml" --session --log-dir "$out/logs" \
  --set "sgft_learner.run_dir=$out/learner" \
  --set "sgft_learner.finetune.prefill_episodes=2" --set "sgft_learner.finetune.critic_warmup_updates=50" \
  --set "sgft_policy.estop_state_file=$out/estop" \
  --set "sgft_policy.episode_state_file=$out/policy_episode.json" \
  --set "sgft_finetune_session.output_dir=$out" --set "sgft_finetune_session.episodes=4" \
  --set "sgft_finetune_session.eval_every=2" --set "sgft_finetune_session.eval_episodes=2" \
  --set "sgft_reset_server.controller_wait_s=120.0" \
  --set "sgft_reset_server.ee_orientation_xyzw=[0.70710678,-0.70710678,0.0,0.0]" \
  --set "sgft_reset_server.retract_height_m=0.0" --set "sgft_sim_robot.proxy=sim" \
  --set "sgft_recorder.output_dir=$out/recordings" "$@"
kill -INT $operator 2>/dev/null || true
wait $operator 2>/dev/null || true
trap - EXIT
cat "$out/operator.log"
python - "$out" <<'PY'
import sys
from pathlib import Path

from rclpy.serialization import deserialize_message

from sgft_learner.transition_store import TransitionStore, read_labels
from sgft_msgs.msg import Transition

out = Path(sys.argv[1])
stored = [deserialize_message(p, Transition) for p in TransitionStore(out / "learner" / "transitions.log")]
labels = read_labels(TransitionStore(out / "learner" / "labels.log"))
bags = sorted((out / "recordings").glob("episode_*"))
print(f"demo-operator: {len(stored)} transitions stored, {sum(t.intervention for t in stored)} of them an "
      f"operator's intervention; {len(labels)} episodes labelled; {len(bags)} episode recordings")
ok = stored and any(t.intervention for t in stored) and len(labels) >= 2 and bags
sys.exit(0 if ok else 1)
PY
