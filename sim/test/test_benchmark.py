"""The benchmark CLI end to end on a tiny sweep (small random networks, a few short runs), its metrics and resume."""

import json
import os

import pytest
import torch

from sgft_core.checkpoint import save_checkpoint
from sgft_core.networks import NetworkConfig, build_networks
from sgft_core.tasks import get_task
from sgft_sim import benchmark

os.environ.setdefault("MUJOCO_GL", "osmesa")


def test_per_method_overrides():
    overrides = {"batch_size": 16, "rlpd.utd": 5, "sgft.batch_size": 32}
    assert benchmark.method_overrides(overrides, "sgft") == {"batch_size": 32}
    assert benchmark.method_overrides(overrides, "rlpd") == {"batch_size": 16, "utd": 5}
    with pytest.raises(SystemExit, match="unknown method"):
        benchmark.parse_overrides(["td3.utd=5"])
    assert benchmark.parse_overrides(["rlpd.utd=5", "horizon=null"]) == {"rlpd.utd": 5, "horizon": None}
    assert benchmark.parse_overrides(["horizon=none", "lr=3e-4"]) == {"horizon": "none", "lr": 3e-4}
    benchmark.check_overrides({"horizon": "none", "rlpd.utd": 5}, ["sgft", "rlpd"])
    with pytest.raises(SystemExit, match="rlpd.*utd: expected int"):
        benchmark.check_overrides({"rlpd.utd": 2.5}, ["sgft", "rlpd"])
    with pytest.raises(SystemExit, match="unknown FinetuneConfig field.*horizn"):
        benchmark.check_overrides({"horizn": 1}, ["sgft"])
    assert benchmark.parse_overrides(["latency_model=command_delay"], proxy=True) == {
        "latency_model": "command_delay"}
    with pytest.raises(SystemExit, match="no field 'latency'"):
        benchmark.parse_overrides(["latency=command_delay"], proxy=True)


def test_run_metrics_by_hand():
    metrics = benchmark.run_metrics([0, 10, 20, 30], [0.3, 0.1, 0.8, 0.9], budget=30)
    assert metrics == {"zero_shot_success": 0.3, "final_success": 0.9, "episodes_to_80": 20, "reached_80": True,
                       "lowest_success": 0.1, "dip_below_zero_shot": pytest.approx(0.2)}
    never = benchmark.run_metrics([0, 10, 20], [0.5, 0.6, 0.7], budget=20)
    assert never["episodes_to_80"] == 20 and not never["reached_80"] and never["lowest_success"] == 0.6


@pytest.fixture()
def checkpoint_dir(tmp_path):
    spec = get_task("push")
    config = NetworkConfig(hidden_dim=32)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ckpt" / "push.safetensors", build_networks(spec.obs_dim, spec.action_dim, config),
                    "push", config)
    return tmp_path / "ckpt"


def test_tiny_sweep_writes_everything_and_resumes(checkpoint_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    argv = ["--tasks", "push", "--proxies", "real", "--methods", "sgft", "zero_shot", "--seeds", "0",
            "--episodes", "2", "--eval-every", "1", "--eval-episodes", "1", "--checkpoint-dir", str(checkpoint_dir),
            "--out", str(out), "--no-progress", "--set", "prefill_episodes=1", "batch_size=16",
            "critic_warmup_updates=0", "zero_shot.prefill_episodes=0"]
    assert benchmark.main(argv) == 0
    table = capsys.readouterr().out
    assert "sgft" in table and "zero_shot" in table and "episodes→80%" in table
    for name in ("runs.csv", "summary.csv", "summary.json", "curves.png"):
        assert (out / name).stat().st_size > 0
    sgft = json.loads((out / "runs" / "push_real_sgft_seed0.json").read_text())
    assert sgft["episodes"] == [0, 1, 2] and len(sgft["success"]) == 3
    # Episode 1 is the prefill episode; episode 2 trains at UTD 2 on its 40 steps.
    assert sgft["transitions"] == 80 and sgft["updates"] == 80
    assert sgft["config"]["batch_size"] == 16 and sgft["config"]["horizon"] == 1
    zero_shot = json.loads((out / "runs" / "push_real_zero_shot_seed0.json").read_text())
    assert zero_shot["updates"] == 0 and len(set(zero_shot["success"])) == 1

    # Resume: finished runs are read back, not rerun.
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(benchmark, "run_one", must_not_run)
    assert benchmark.main(argv) == 0
    assert "2 already finished" in capsys.readouterr().err

    # Other settings in the same --out are refused rather than mixed.
    with pytest.raises(SystemExit):
        benchmark.main([a if a != "2" else "3" for a in argv])
    with pytest.raises(SystemExit):
        benchmark.main(argv + ["--proxy-set", "latency_model=command_delay"])
    # A result written before Settings had proxy_overrides reads as run with none.
    path = out / "runs" / "push_real_sgft_seed0.json"
    old = json.loads(path.read_text())
    del old["settings"]["proxy_overrides"]
    path.write_text(json.dumps(old))
    assert benchmark.main(argv) == 0


def test_scripted_operator_interventions_are_demonstrations(checkpoint_dir, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["--tasks", "push", "--proxies", "real", "--methods", "sgft", "--seeds", "0", "--episodes", "2",
            "--eval-every", "2", "--eval-episodes", "1", "--checkpoint-dir", str(checkpoint_dir), "--out", str(out),
            "--no-progress", "--intervene-episodes", "1", "--set", "prefill_episodes=1", "batch_size=16",
            "critic_warmup_updates=0", "demo_fraction=0.25"]
    assert benchmark.main(argv) == 0
    result = json.loads((out / "runs" / "push_real_sgft_seed0.json").read_text())
    # the operator's episode (the first, 40 steps) is stored as usual and kept as demonstrations
    assert result["transitions"] == 80 and result["demonstrations"] == 40 and result["updates"] == 80
    assert result["settings"]["intervene_episodes"] == 1 and result["config"]["demo_fraction"] == 0.25
    with pytest.raises(SystemExit):
        benchmark.main(argv[:-1] + ["--intervene-episodes", "2"])  # other settings in the same --out
    with pytest.raises(SystemExit):
        benchmark.main([a if a != "push" else "hammer" for a in argv])  # no scripted operator for hammer


def test_scripted_push_operator_succeeds_on_the_real_proxy():
    from sgft_sim import make_env

    operator = benchmark.scripted_operator("push")
    env = make_env("push", "real", seed=0, latency_model="command_delay")
    successes = 0
    for episode in range(10):
        obs, info = env.reset(seed=1000 + episode)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(operator(obs))
            done = terminated or truncated
        successes += bool(info["success"])
    env.close()
    assert successes >= 7, successes
    with pytest.raises(ValueError, match="only push"):
        benchmark.scripted_operator("hammer")


def test_default_checkpoint_dir_holds_the_shipped_checkpoints():
    # Whether sgft_sim runs from the source tree or from colcon's install space (where the source layout's
    # relative path points nowhere), the CLIs' default finds the shipped checkpoints.
    for task in ("push", "hammer", "insert"):
        assert (benchmark.DEFAULT_CHECKPOINT_DIR / f"{task}.safetensors").is_file()
