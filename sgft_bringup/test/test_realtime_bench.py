"""The real-rate bench end to end for a few seconds at a small resolution: its JSON line's keys and sane values (not
the issue's targets, which need a quiet machine and the full duration)."""

import json
import subprocess
import sys

from sgft_bringup.realtime_bench import dropped_ticks

KEYS = {"resolution", "tick_jitter_p99_ms", "obs_to_command_p99_ms", "detection_age_p99_ms", "cpu_cores",
        "dropped_ticks", "load_average", "cloud_render_every"}
NODES = {"sgft_sim_robot", "sgft_perception", "sgft_policy", "sgft_learner"}


def test_dropped_ticks_are_the_episodes_ticks_without_a_command():
    period = 200_000_000
    # STARTED 50 ms into tick 10, ended at tick 15: ticks 11..14 expected; 13 has no command, one before the start
    # and one of the ending tick do not count
    episodes = [(10 * period + 50_000_000, 15 * period + 3_000_000)]
    commands = [10 * period + 1_000_000, 11 * period + 4_000_000, 12 * period + 9_000_000, 14 * period + 2_000_000,
                15 * period + 1_000_000]
    assert dropped_ticks(episodes, commands) == (1, 4)


def test_bench_prints_one_sane_json_line_per_resolution(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sgft_bringup.realtime_bench", "--resolutions", "212x120",
                           "--duration", "3", "--render-every", "6", "--log-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=420)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*/*.log"))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert KEYS <= set(result), sorted(KEYS - set(result))
    assert result["resolution"] == "212x120" and result["cloud_render_every"] == 6
    for key in ("tick_jitter_p99_ms", "obs_to_command_p99_ms", "detection_age_p99_ms"):
        assert 0.0 <= result[key] < 5000.0, (key, result[key])
    assert NODES <= set(result["cpu_cores"]), result["cpu_cores"]
    assert all(0.0 <= cores <= 4.0 for cores in result["cpu_cores"].values()), result["cpu_cores"]
    assert result["cpu_cores"]["sgft_policy"] > 0.0 and result["cpu_cores"]["sgft_sim_robot"] > 0.0
    # one 40-step episode at least: about 39 ticks expected, most of them commanded
    assert result["episodes"] >= 1 and result["control_ticks"] >= 30, result
    assert 0 <= result["dropped_ticks"] <= result["control_ticks"] // 2, result
    assert len(result["load_average"]) == 3
    assert proc.stdout.strip().splitlines()[-1].startswith("targets: "), proc.stdout
