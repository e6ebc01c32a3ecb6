"""`enhance train`: exact resume, SIGTERM checkpoints, logs, bad data, DDP with two CPU processes, and
a second stage from shipped weights."""

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enhance.cli import main
from enhance.exposure import exposure_curve
from enhance.metrics import psnr, ssim
from enhance.pairs import find_pairs
from enhance.train import (TrainConfig, TrainingData, exposure_split_l1, learning_rate, loss_label, patch_and_batch,
                           psnr_loss, ssim_loss, training_loss)

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
model = "saga-s"
patch_size = 32
batch_size = 2
patch_schedule = [[4, 24, 3]]
steps = 6
lr = 1e-3
warmup_steps = 2
ema_decay = 0.9
seed = 3
bf16 = false
channels_last = false
compile = false
val_every = 3
checkpoint_every = 3
log_every = 1
val_list = "{val_list}"
"""


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, Path]:
    """Eight LOL-style pairs (low = darkened high) and a two-stem validation list."""
    data = tmp_path / "data"
    (data / "low").mkdir(parents=True)
    (data / "high").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 9):
        high = (rng.random((40, 48, 3)) * 200 + 30).astype(np.uint8)
        Image.fromarray(high).save(data / "high" / f"{i}.png")
        Image.fromarray((high * 0.15).astype(np.uint8)).save(data / "low" / f"{i}.png")
    val_list = tmp_path / "val.txt"
    val_list.write_text("# validation\n7\n8\n")
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG.format(val_list=val_list))
    return data, config


def train(config: Path, data: Path, out: Path, *extra) -> int:
    return main(["train", "--config", str(config), "--data", str(data), "--out", str(out), *map(str, extra)])


def final_weights(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)["model"]


def test_resume_gives_identical_weights(dataset, tmp_path):
    data, config = dataset
    assert train(config, data, tmp_path / "straight") == 0
    assert train(config, data, tmp_path / "resumed", "--max-steps", 3) == 0
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 3
    assert train(config, data, tmp_path / "resumed", "--resume") == 0
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_resume_drops_log_rows_past_the_checkpoint(dataset, tmp_path):
    """A run killed after its checkpoint logged steps that the resumed run trains again: log them once."""
    data, config = dataset
    out = tmp_path / "run"
    assert train(config, data, out, "--max-steps", 3) == 0
    with open(out / "log.jsonl", "a") as log:  # what a SIGKILL at step 4 leaves behind
        log.write(json.dumps({"kind": "train", "step": 4, "loss": 9.0, "lr": 0.0, "steps_per_s": 1.0,
                              "wall_seconds": 1.0}) + "\n")
    assert train(config, data, out, "--resume") == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert all(r.get("loss") != 9.0 for r in rows)


def test_run_folder_has_log_curves_and_best_weights(dataset, tmp_path):
    data, config = dataset
    out = tmp_path / "run"
    assert train(config, data, out) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    kinds = {row["kind"] for row in rows}
    assert kinds == {"baseline", "train", "val"}
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert all({"loss", "lr", "steps_per_s"} <= r.keys() for r in train_rows)
    assert all({"psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean"} <= r.keys() for r in rows if r["kind"] == "val")
    assert (out / "curves.png").stat().st_size > 0
    card = json.loads((out / "best.json").read_text())
    assert len(card["sha256"]) == 64 and (out / "best.safetensors").is_file()


def test_bad_data_is_named_before_training(dataset, tmp_path):
    data, config = dataset
    (data / "low" / "3.png").write_bytes(b"not a png")
    with pytest.raises(SystemExit, match="3.png"):
        train(config, data, tmp_path / "run")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(data / "low" / "3.png")
    with pytest.raises(SystemExit, match="10x10"):
        train(config, data, tmp_path / "run")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="empty"):
        train(config, empty, tmp_path / "run")


def test_an_earlier_run_is_not_overwritten_without_resume(dataset, tmp_path, capsys):
    data, config = dataset
    run = tmp_path / "run"
    assert train(config, data, run, "--max-steps", 2) == 0
    log = (run / "log.jsonl").read_bytes()
    with pytest.raises(SystemExit, match="holds an earlier run .*pass --resume"):
        train(config, data, run)
    assert (run / "log.jsonl").read_bytes() == log
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("mine")
    with pytest.raises(SystemExit, match="--out takes a run folder"):
        train(config, data, not_a_folder)
    assert not_a_folder.read_text() == "mine"
    capsys.readouterr()
    assert train(config, data, tmp_path / "fresh", "--resume", "--max-steps", 1) == 0  # nothing to resume yet
    assert "starting at step 0" in capsys.readouterr().err


def test_learning_rate_warms_up_then_decays_to_min():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-5)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 100) == pytest.approx(1e-5)
    assert learning_rate(cfg, 30) > learning_rate(cfg, 60)


def test_patch_schedule_switches_patch_and_batch_at_its_steps():
    cfg = TrainConfig(patch_size=128, batch_size=8, patch_schedule=[[100, 256, 2], [50, 192, 4]])
    assert [patch_and_batch(cfg, step) for step in (0, 49, 50, 99, 100, 10_000)] == [
        (128, 8), (128, 8), (192, 4), (192, 4), (256, 2), (256, 2)]


def test_unknown_config_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "saga-s"\nlearning_rate = 0.1\n')
    with pytest.raises(SystemExit, match="learning_rate"):
        TrainConfig.from_file(bad)


@pytest.mark.parametrize("text, message", [
    ('model = "saga-s\n', "not valid TOML"),
    ('steps = "ten"\n', "steps must be int, got 'ten'"),
    ("steps = 10.5\n", "steps must be int, got 10.5"),
    ("bf16 = 1\n", "bf16 must be bool, got 1"),
    ('model = "saga-xl"\n', "unknown model 'saga-xl'"),
    ('attention = "none"\n', "unknown attention 'none'"),
])
def test_malformed_config_is_a_one_line_error(tmp_path, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(SystemExit, match=message) as raised:
        TrainConfig.from_file(bad)
    assert str(bad) in str(raised.value) and "\n" not in str(raised.value)


def test_every_committed_config_loads():
    configs = sorted((ROOT / "configs").rglob("*.toml"))
    assert len(configs) > 10
    for config in configs:
        TrainConfig.from_file(config)  # the type checks above must not reject a recipe that ran


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(SystemExit, match="nowhere.toml: cannot read the config"):
        TrainConfig.from_file(tmp_path / "nowhere.toml")


def test_an_int_is_accepted_where_a_float_is_meant(tmp_path):
    config = tmp_path / "ok.toml"
    config.write_text("lr = 1\n")
    assert TrainConfig.from_file(config).lr == 1


def test_unknown_loss_is_an_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "saga-s"\nloss = "l3"\n')
    with pytest.raises(SystemExit, match="unknown loss 'l3'"):
        TrainConfig.from_file(bad)


@pytest.mark.parametrize("weight", ["ssim_weight", "exposure_weight"])
def test_negative_loss_weight_is_an_error(tmp_path, weight):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'model = "saga-s"\n{weight} = -0.5\n')
    with pytest.raises(SystemExit, match=f"{weight} must be 0 or more"):
        TrainConfig.from_file(bad)


@pytest.mark.parametrize("stops", [-1, 3.5])
def test_input_exposure_jitter_out_of_range_is_an_error(tmp_path, stops):
    bad = tmp_path / "bad.toml"
    bad.write_text(f"input_exposure_jitter = {stops}\n")
    with pytest.raises(SystemExit, match="input_exposure_jitter must be between 0 and 3 stops"):
        TrainConfig.from_file(bad)


def test_input_exposure_jitter_shifts_inputs_and_leaves_targets(tmp_path):
    for side, level in (("low", 40), ("high", 160)):  # flat photos: every crop holds the same values
        (tmp_path / side).mkdir()
        Image.fromarray(np.full((40, 48, 3), level, np.uint8)).save(tmp_path / side / "1.png")
    training = TrainingData(find_pairs(tmp_path).pairs, str(tmp_path))
    low, high = training.batch(32, 32, torch.Generator().manual_seed(0), exposure_jitter=3.0)
    assert torch.equal(high, torch.full_like(high, 160 / 255))  # targets untouched
    levels = (low[:, 0, 0, 0] * 255).round().to(torch.uint8).numpy()
    assert levels.min() < 25 and levels.max() > 60  # some inputs darker, some brighter than 40
    curves = {int(exposure_curve(stops, np.uint8)[40]) for stops in np.linspace(-3, 3, 601)}
    assert set(levels.tolist()) <= curves  # each input is the 8-bit photo through one exposure curve
    unshifted, _ = training.batch(4, 32, torch.Generator().manual_seed(0))
    assert torch.equal(unshifted, torch.full_like(unshifted, 40 / 255))


def test_psnr_loss_is_minus_the_mean_per_image_psnr():
    rng = np.random.default_rng(1)
    target = rng.random((2, 3, 16, 16))
    output = np.clip(target + rng.normal(0, [[[[0.02]]], [[[0.1]]]], target.shape), 0, 1)
    per_image = [psnr(o.transpose(1, 2, 0), t.transpose(1, 2, 0), data_range=1.0) for o, t in zip(output, target)]
    loss = psnr_loss(torch.from_numpy(output), torch.from_numpy(target))
    assert loss.item() == pytest.approx(-np.mean(per_image), abs=1e-4)


def test_psnr_loss_trains_a_run_and_plots_its_curve(dataset, tmp_path):
    data, config = dataset
    config.write_text(config.read_text() + 'loss = "psnr"\n')
    out = tmp_path / "run"
    assert train(config, data, out) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 6 and all(loss < 0 for loss in losses)  # minus a PSNR in dB
    assert (out / "curves.png").stat().st_size > 0


def test_exposure_split_l1_separates_a_pure_gain_from_structure():
    rng = np.random.default_rng(4)
    target = torch.from_numpy(rng.random((2, 3, 16, 16)) * 0.5).float()
    too_bright = (target * 1.2).requires_grad_()
    loss = exposure_split_l1(too_bright, target)
    # Only the mean-level term is left: 0.2 x the target's mean level, averaged over the batch.
    assert loss.item() == pytest.approx(0.2 * target.mean().item(), rel=1e-5)
    # Where the levels already agree it is plain L1.
    noisy = target + 0.05 * torch.from_numpy(rng.standard_normal(target.shape)).float()
    noisy = noisy - noisy.mean(dim=(1, 2, 3), keepdim=True) + target.mean(dim=(1, 2, 3), keepdim=True)
    assert exposure_split_l1(noisy, target).item() == pytest.approx(torch.nn.functional.l1_loss(noisy, target).item(),
                                                                     rel=1e-5)
    loss.backward()
    assert too_bright.grad.sum() > 0  # too bright: the gradient lowers it


def test_curve_label_names_the_loss_and_its_ssim_term():
    assert loss_label("l1", 0.0) == "L1 loss"
    assert loss_label("l1", 1.0) == "L1 loss + 1 x (1 - SSIM)"
    assert loss_label("psnr", 0.5) == "PSNR loss (-dB) + 0.5 x (1 - SSIM)"
    assert loss_label("l1-exposure-split", 1.0) == "exposure-split L1 + 1 x (1 - SSIM)"
    assert loss_label("l1-exposure-split", 0.5, 4.0) == "exposure-split L1 + 0.5 x (1 - SSIM) + 4 x exposure L1"


def test_ssim_loss_is_one_minus_the_evaluation_ssim():
    """The differentiable SSIM the loss uses is the metric the benchmark reports (per channel, averaged)."""
    rng = np.random.default_rng(2)
    target = (rng.random((40, 52, 3)) * 255).astype(np.uint8)
    output = np.clip(target + rng.integers(-40, 41, target.shape), 0, 255).astype(np.uint8)
    as_tensor = lambda img: torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    loss = ssim_loss(as_tensor(output), as_tensor(target))
    assert 1 - loss.item() == pytest.approx(ssim(output, target), abs=1e-5)
    assert ssim_loss(as_tensor(target), as_tensor(target)).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_weight_adds_the_ssim_term_and_has_a_gradient():
    rng = np.random.default_rng(3)
    target = torch.from_numpy(rng.random((2, 3, 24, 24))).float()
    output = (target + 0.1 * torch.from_numpy(rng.standard_normal((2, 3, 24, 24))).float()).requires_grad_()
    plain = training_loss(TrainConfig(), output, target)
    weighted = training_loss(TrainConfig(ssim_weight=0.5), output, target)
    assert weighted.item() == pytest.approx(plain.item() + 0.5 * ssim_loss(output, target).item(), rel=1e-6)
    weighted.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0


def test_exposure_weight_adds_the_mean_level_error_on_top_of_the_loss():
    rng = np.random.default_rng(4)
    target = torch.from_numpy(rng.random((2, 3, 16, 16))).float()
    too_bright = (target * 1.25).requires_grad_()
    split = TrainConfig(loss="l1-exposure-split")
    plain = training_loss(split, too_bright, target)
    weighted = training_loss(dataclasses.replace(split, exposure_weight=4.0), too_bright, target)
    # A pure gain leaves only the mean-level term, now counted 1 + 4 times.
    assert weighted.item() == pytest.approx(5 * plain.item(), rel=1e-5)
    assert plain.item() == pytest.approx(0.25 * target.mean().item(), rel=1e-5)
    weighted.backward()
    assert too_bright.grad.sum() > 0  # too bright: the gradient lowers it


@pytest.mark.slow
def test_distributed_data_parallel_with_two_cpu_processes(dataset, tmp_path):
    data, config = dataset
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "cli.py"), "train", "--config", str(config), "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 6 and len(ckpt["rng"]) == 2  # both ranks' RNG states are kept


def endless_config(config: Path, tmp_path: Path) -> Path:
    """The tiny config with a schedule that only a signal ends; it checkpoints every 5 steps."""
    long_run = tmp_path / "long.toml"
    long_run.write_text(config.read_text().replace("steps = 6", "steps = 100000")
                        .replace("checkpoint_every = 3", "checkpoint_every = 5").replace("log_every = 1", "log_every = 1000")
                        .replace("val_every = 3", "val_every = 100000"))
    return long_run


def worker_pids(agent_pid: int) -> list[int]:
    """The training processes a torchrun agent started (Linux /proc)."""
    pids = []
    for children in Path(f"/proc/{agent_pid}/task").glob("*/children"):
        for pid in children.read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.exists() and b"cli.py" in cmdline.read_bytes():
                pids.append(int(pid))
    return sorted(pids)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the workers through Linux /proc")
def test_sigterm_to_one_ddp_rank_stops_both_ranks_at_the_same_step(dataset, tmp_path):
    """A scheduler may signal one worker only: the ranks agree to stop at the same step, and neither
    is left waiting in a collective the other never joins."""
    data, config = dataset
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "cli.py"), "train", "--config", str(endless_config(config, tmp_path)), "--data", str(data),
               "--out", str(out)]
    stderr = tmp_path / "stderr.txt"
    workers = []
    with open(stderr, "w") as err, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT) as agent:
        try:
            deadline = time.time() + 240
            while not (out / "checkpoint.pt").exists() or len(workers) < 2:
                assert agent.poll() is None and time.time() < deadline, "training did not reach step 5"
                workers = worker_pids(agent.pid)
                time.sleep(0.2)
            os.kill(workers[1], signal.SIGTERM)
            # Both workers exit 130 (a stopped run), which torchrun reports as a failure: not 0.
            assert agent.wait(timeout=120) != 0
            assert stderr.read_text().count("stopped at step") == 1, stderr.read_text()[-3000:]  # rank 0 says it
        finally:
            if agent.poll() is None:  # a failure or a hang: leave no worker behind (after a clean exit
                for pid in workers:   # their pids may already belong to other processes)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                agent.kill()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert ckpt["step"] >= 5 and len(ckpt["rng"]) == 2
    assert [r for r in rows if r["kind"] == "train"][-1]["step"] == ckpt["step"]


def test_sigterm_checkpoints_logs_the_last_steps_and_resumes(dataset, tmp_path):
    data, config = dataset
    long_run = endless_config(config, tmp_path)
    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "cli.py"), "train", "--config", str(long_run), "--data", str(data),
               "--out", str(out)]
    stderr = tmp_path / "stderr.txt"  # a file, not a pipe: the progress bar could fill a pipe and block
    with open(stderr, "w") as err, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT) as process:
        try:
            deadline = time.time() + 240
            while not (out / "checkpoint.pt").exists():  # step 5 is done: training is under way
                assert process.poll() is None and time.time() < deadline, "training did not reach step 5"
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            # 130, not 0: `enhance train ... && ship` must not ship a stopped run
            assert process.wait(timeout=120) == 130, stderr.read_text()[-3000:]
        finally:
            process.kill()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    last_line = stderr.read_text().strip().splitlines()[-1]
    assert last_line == f"stopped at step {ckpt['step']} of 100000; the checkpoint is {out / 'checkpoint.pt'}: " \
                        f"continue with --resume --out {out}"
    assert ckpt["step"] >= 5
    assert [r for r in rows if r["kind"] == "train"][-1]["step"] == ckpt["step"]  # no step left out of the log
    assert train(long_run, data, out, "--resume", "--max-steps", ckpt["step"] + 2) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == ckpt["step"] + 2


def test_signal_during_a_checkpoint_still_logs_and_checkpoints_the_last_steps(dataset, tmp_path, monkeypatch):
    """SIGTERM landing inside the step-3 checkpoint, after that step's log check: the steps since
    the last train row are logged, and the checkpoint is written again with their wall time."""
    import enhance.train

    data, config = dataset
    quiet_log = tmp_path / "quiet.toml"
    quiet_log.write_text(config.read_text().replace("log_every = 1", "log_every = 1000"))
    real_save, saves = enhance.train.atomic_torch_save, []

    def save_then_signal(obj, path):
        real_save(obj, path)
        saves.append(obj["step"])
        if len(saves) == 1:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(enhance.train, "atomic_torch_save", save_then_signal)
    previous_handler = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        train(quiet_log, data, out)
    assert stopped.value.code == 130  # stopped by the signal at step 3 of 6
    assert saves == [3, 3]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    last_train = [r for r in rows if r["kind"] == "train"][-1]
    assert last_train["step"] == ckpt["step"] == 3
    assert last_train["wall_seconds"] == round(ckpt["wall_seconds"], 1) > 0
    assert signal.getsignal(signal.SIGTERM) is previous_handler  # train() hands the signal back


def test_second_stage_starts_from_shipped_weights_and_its_card_counts_both(dataset, tmp_path):
    from enhance.modelcard import main as ship
    from enhance.weights import load_model

    data, config = dataset
    weights = tmp_path / "weights"
    assert train(config, data, tmp_path / "stage1") == 0
    assert ship([str(tmp_path / "stage1"), "--name", "tiny", "--hardware", "test CPU", "--out", str(weights)]) == 0
    first = json.loads((weights / "tiny.json").read_text())
    shipped = load_model(weights / "tiny.safetensors").state_dict()

    stage2 = tmp_path / "stage2.toml"
    stage2.write_text(config.read_text().replace("steps = 6", "steps = 3")
                      + f'init_weights = "{weights / "tiny.safetensors"}"\n')
    assert train(stage2, data, tmp_path / "stage2", "--max-steps", 0) == 0  # no step taken: the weights are the init
    started = torch.load(tmp_path / "stage2" / "checkpoint.pt", weights_only=True)["model"]
    for key, value in shipped.items():
        assert torch.equal(started[key], value), key

    assert train(stage2, data, tmp_path / "stage2", "--resume") == 0
    assert ship([str(tmp_path / "stage2"), "--name", "tiny", "--hardware", "test CPU", "--out", str(weights),
                 "--overwrite"]) == 0  # stage 2 replaces the weights it started from
    second = json.loads((weights / "tiny.json").read_text())
    best1, best2 = (json.loads((tmp_path / run / "best.json").read_text())["step"] for run in ("stage1", "stage2"))
    assert first["steps_trained"] == best1 and first["steps_run"] == 6
    assert second["steps_trained"] == best1 + best2  # stage 2 went on from stage 1's best step, not its last
    assert second["steps_run"] == 6 + 3
    assert [(s["steps"], s["shipped_step"]) for s in second["stages"]] == [(6, best1), (3, best2)]
    assert second["stages"][0]["training_config"] == first["training_config"]
    assert second["stages"][1]["training_config"]["init_weights"].endswith("tiny.safetensors")


def test_shipping_a_folder_that_is_not_a_finished_run_is_a_one_line_error(tmp_path):
    from enhance.modelcard import main as ship

    with pytest.raises(SystemExit, match="not a finished training run folder .*config.json"):
        ship([str(tmp_path), "--name", "tiny", "--hardware", "test CPU", "--out", str(tmp_path / "w")])
    assert not (tmp_path / "w").exists()


def test_last_ships_the_end_of_the_schedule_with_its_own_validation(dataset, tmp_path):
    from enhance.modelcard import main as ship
    from enhance.weights import load_model

    data, config = dataset
    assert train(config, data, tmp_path / "run") == 0
    weights = tmp_path / "weights"
    assert ship([str(tmp_path / "run"), "--name", "tiny", "--hardware", "test CPU", "--out", str(weights), "--last"]) == 0
    card = json.loads((weights / "tiny.json").read_text())
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    shipped = load_model(weights / "tiny.safetensors").state_dict()
    for key, value in ckpt["ema"].items():
        assert torch.equal(shipped[key], value.float()), key
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    last_val = [r for r in rows if r["kind"] == "val"][-1]
    assert card["stages"][-1]["shipped_step"] == last_val["step"] == ckpt["step"] == 6
    assert card["validation"]["psnr"] == last_val["psnr"]

    assert train(config, data, tmp_path / "stopped", "--max-steps", 2) == 0  # validates at step 3, stops at 2
    with pytest.raises(SystemExit, match="no validation at the final checkpoint's step 2"):
        ship([str(tmp_path / "stopped"), "--name", "tiny", "--hardware", "test CPU", "--out", str(weights), "--last"])


def test_model_card_records_the_committed_validation_list_relative_to_the_repository(tmp_path):
    from enhance.modelcard import portable_config
    from enhance.train import DEFAULT_VAL_LIST

    assert portable_config({"val_list": str(DEFAULT_VAL_LIST), "seed": 7}) == {"val_list": "datasets/lol_v1_val.txt", "seed": 7}
    elsewhere = {"val_list": str(tmp_path / "my_val.txt")}  # the user's own split stays as they gave it
    assert portable_config(elsewhere) == elsewhere


def variant(config: Path, name: str, replace: dict[str, str] = {}, add: str = "") -> Path:
    """A copy of the tiny config beside it with some lines replaced ("steps = 6": "steps = 3") and others added."""
    text = config.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    changed = config.with_name(name)
    changed.write_text(text + add)
    return changed


def test_a_root_holding_both_splits_trains_on_the_training_split_and_says_so(dataset, tmp_path, capsys):
    """LOL-v1's root holds eval15/ (the benchmark's test split) and our485/: training must read our485/."""
    data, config = dataset
    root = tmp_path / "LOLdataset"
    root.mkdir()
    data.rename(root / "our485")
    for side in ("low", "high"):  # a test split whose only pair is not in the validation list
        (root / "eval15" / side).mkdir(parents=True)
        (root / "our485" / side / "1.png").rename(root / "eval15" / side / "1.png")
    capsys.readouterr()
    assert train(config, root, tmp_path / "run", "--max-steps", 1) == 0
    assert ("dataset layout: LOL-v1 (our485; training split chosen, eval15/ also present) "
            "(5 training pairs, 2 validation pairs") in capsys.readouterr().err
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    (root / "eval15").rename(only_test / "eval15")
    with pytest.raises(SystemExit, match="holds only the test split eval15/"):
        train(config, only_test, tmp_path / "run2")


def lol_v2_pairs(folder: Path, numbers) -> None:
    """LOL-v2 names: Low/low00001.png and Normal/normal00001.png."""
    rng = np.random.default_rng(1)
    for side in ("Low", "Normal"):
        (folder / side).mkdir(parents=True)
    for i in numbers:
        high = (rng.random((40, 48, 3)) * 200 + 30).astype(np.uint8)
        Image.fromarray(high).save(folder / "Normal" / f"normal{i:05d}.png")
        Image.fromarray((high * 0.15).astype(np.uint8)).save(folder / "Low" / f"low{i:05d}.png")


def test_validation_stems_are_matched_as_eval_matches_them(dataset, tmp_path, capsys):
    """The list may name LOL-v2 files by their own names ("low00007") or by pair ("00008"), as with
    `enhance eval --list`; a list saved with a byte-order mark keeps its first stem."""
    _, config = dataset
    data = tmp_path / "v2"
    lol_v2_pairs(data, range(1, 9))
    val_list = tmp_path / "val.txt"
    val_list.write_bytes("\ufefflow00007\r\n00008\r\n".encode())
    capsys.readouterr()
    assert train(config, data, tmp_path / "run", "--max-steps", 3) == 0
    assert "(6 training pairs, 2 validation pairs" in capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "val"] == [3]
    assert (tmp_path / "run" / "best.safetensors").is_file()


def test_validation_stems_not_in_the_data_are_refused_before_training(dataset, tmp_path):
    data, config = dataset
    val_list = tmp_path / "val.txt"
    val_list.write_text("7\n8\n17\n54\n")  # 17 and 54: another dataset's validation stems
    with pytest.raises(SystemExit, match=r"val.txt: 2 of the 4 validation stems are not pairs in .*: 17, 54") as err:
        train(config, data, tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "log.jsonl").exists()
    val_list.write_bytes("7\nnuit\xe9\n".encode("latin-1"))
    with pytest.raises(SystemExit, match="val.txt: not a UTF-8 text file"):
        train(config, data, tmp_path / "run")
    val_list.write_text("# nothing yet\n")
    with pytest.raises(SystemExit, match="val.txt: the validation list holds no stems"):
        train(config, data, tmp_path / "run")


def test_resume_with_another_config_is_refused(dataset, tmp_path):
    data, config = dataset
    out = tmp_path / "run"
    assert train(config, data, out, "--max-steps", 3) == 0
    before = (out / "checkpoint.pt").read_bytes()
    other_lr = variant(config, "lr.toml", {"lr = 1e-3": "lr = 2e-3"})
    with pytest.raises(SystemExit, match=r"checkpoint.pt: the run was trained with another config \(lr 0.001 -> 0.002\)"):
        train(other_lr, data, out, "--resume")
    other_model = variant(config, "large.toml", {'model = "saga-s"': 'model = "saga-l"'})
    with pytest.raises(SystemExit, match="model 'saga-s' -> 'saga-l'") as err:  # was a long RuntimeError
        train(other_model, data, out, "--resume")
    assert "\n" not in str(err.value)
    assert (out / "checkpoint.pt").read_bytes() == before
    chattier = variant(config, "chatty.toml", {"checkpoint_every = 3": "checkpoint_every = 1"})
    assert train(chattier, data, out, "--resume") == 0  # how often it checkpoints changes no weight


def test_resume_on_other_data_is_refused_but_moved_data_is_not(dataset, tmp_path):
    data, config = dataset
    out = tmp_path / "run"
    assert train(config, data, out, "--max-steps", 3) == 0
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)  # the same files elsewhere: resumes
    assert train(config, moved, out, "--resume", "--max-steps", 4) == 0
    (moved / "low" / "3.png").unlink()
    (moved / "high" / "3.png").unlink()  # one training pair fewer: another run
    with pytest.raises(SystemExit, match=r"checkpoint.pt: the run trained on other pairs"):
        train(config, moved, out, "--resume")


def test_resume_into_a_folder_with_an_earlier_run_but_no_checkpoint_is_refused(dataset, tmp_path):
    data, config = dataset
    out = tmp_path / "run"
    assert train(config, data, out) == 0
    (out / "checkpoint.pt").unlink()
    best = (out / "best.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="holds an earlier run's files .*best.safetensors.* but no checkpoint.pt"):
        train(config, data, out, "--resume")
    assert (out / "best.safetensors").read_bytes() == best


def test_a_nan_loss_stops_training_naming_the_step_and_saves_nothing_of_it(dataset, tmp_path, monkeypatch):
    import enhance.train

    data, config = dataset
    real_loss, calls = enhance.train.training_loss, []

    def nan_from_step_5(cfg, output, target):
        calls.append(1)
        loss = real_loss(cfg, output, target)
        return loss * float("nan") if len(calls) >= 5 else loss

    monkeypatch.setattr(enhance.train, "training_loss", nan_from_step_5)
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"training stopped at step 5: the loss is nan .*last checkpoint: step 3") as err:
        train(config, data, out)
    assert "\n" not in str(err.value)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert json.loads((out / "best.json").read_text())["step"] == 3
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 4 and all(math.isfinite(r.get("loss", 0)) for r in rows)


def test_a_validation_psnr_that_is_not_finite_never_becomes_best(dataset, tmp_path, monkeypatch):
    import enhance.train

    data, config = dataset
    monkeypatch.setattr(enhance.train, "validate", lambda *args: {"psnr": float("inf"), "ssim": 1.0,
                                                                  "psnr_gt_mean": float("inf"), "ssim_gt_mean": 1.0})
    assert train(config, data, tmp_path / "run") == 0
    assert not (tmp_path / "run" / "best.safetensors").exists()


def test_a_patch_larger_than_a_training_image_is_refused_before_training(dataset, tmp_path):
    data, config = dataset  # 48x40 images
    big = variant(config, "big.toml", {"patch_schedule = [[4, 24, 3]]": "patch_schedule = [[4, 44, 3]]"})
    with pytest.raises(SystemExit, match=r"big.toml: patch_schedule entry \[4, 44, 3\] asks for 44-px patches in "
                                         r"batches of 3, but the training image .*1.png is 48x40"):
        train(big, data, tmp_path / "run")
    assert not (tmp_path / "run" / "log.jsonl").exists()
    whole = variant(config, "whole.toml", {"patch_size = 32": "patch_size = 600", "batch_size = 2": "batch_size = 1",
                                           "patch_schedule = [[4, 24, 3]]": "patch_schedule = []"})
    assert train(whole, data, tmp_path / "whole", "--max-steps", 1) == 0  # batch 1: whole photos, as the configs do


@pytest.mark.parametrize("line, message", [
    ("log_every = 0", "log_every must be 1 or more, got 0"),
    ("val_every = 0", "val_every must be 1 or more, got 0"),
    ("checkpoint_every = 0", "checkpoint_every must be 1 or more, got 0"),
    ("batch_size = 0", "batch_size must be 1 or more, got 0"),
    ("patch_size = -4", "patch_size must be 1 or more, got -4"),
    ("steps = 0", "steps must be 1 or more, got 0"),
    ("warmup_steps = -1", "warmup_steps must be 0 or more, got -1"),
    ("threads = -1", "threads must be 0 .* or more, got -1"),
    ("lr = 0", "lr must be more than 0, got 0"),
    ("lr = nan", "lr must be a finite number, got nan"),
    ("min_lr = 1.0", r"min_lr must be between 0 and lr \(0.001\), got 1.0"),
    ("ema_decay = 1.0", r"ema_decay must be at least 0 and less than 1, got 1.0"),
    ("ema_decay = -0.1", r"ema_decay must be at least 0 and less than 1, got -0.1"),
    ("grad_clip = 0", "grad_clip must be more than 0, got 0"),
    ("patch_schedule = [[100, 256]]", r"entry must be \[from_step, patch, batch\] \(three whole numbers\), got \[100, 256\]"),
    ("patch_schedule = [100, 256, 2]", r"entry must be .*, got 100"),
    ("patch_schedule = [[100, 0, 2]]", r"with from_step 0 or more and patch and batch 1 or more, got \[100, 0, 2\]"),
    ("patch_schedule = [[100, 64, 2], [100, 32, 4]]", "two entries from step 100"),
])
def test_out_of_range_config_values_are_one_line_errors(tmp_path, line, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(line + "\n")
    with pytest.raises(SystemExit, match=message) as raised:
        TrainConfig.from_file(bad)
    assert str(raised.value).startswith(f"{bad}: ") and "\n" not in str(raised.value)


def test_init_weights_missing_or_of_another_network_are_one_line_errors(dataset, tmp_path):
    from enhance.models import create_model
    from enhance.weights import save_weights

    data, config = dataset
    missing = variant(config, "missing.toml", add=f'init_weights = "{tmp_path / "nowhere.safetensors"}"\n')
    with pytest.raises(SystemExit, match=r"missing.toml: init_weights: .*nowhere.safetensors: no such weights file"):
        train(missing, data, tmp_path / "a")
    for other in (create_model("saga-l"), create_model("saga-s", attention="linear")):  # another size; another attention
        weights = tmp_path / "other.safetensors"
        save_weights(other, weights, name="other")
        mismatched = variant(config, "other.toml", add=f'init_weights = "{weights}"\n')
        with pytest.raises(SystemExit, match=r"other.toml: init_weights .*other.safetensors is another network") as err:
            train(mismatched, data, tmp_path / "b")
        assert "\n" not in str(err.value)


def test_resume_drops_a_half_written_last_log_line(dataset, tmp_path):
    """What a SIGKILL in the middle of writing a log row leaves behind."""
    data, config = dataset
    out = tmp_path / "run"
    assert train(config, data, out, "--max-steps", 3) == 0
    with open(out / "log.jsonl", "a") as log:
        log.write('{"kind": "train", "step": 4, "lo')
    assert train(config, data, out, "--resume") == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_checkpoint_is_a_one_line_error(dataset, tmp_path, damage):
    data, config = dataset
    out = tmp_path / "run"
    assert train(config, data, out, "--max-steps", 3) == 0
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:2000] if damage == "truncated" else b"not a checkpoint at all")
    with pytest.raises(SystemExit, match="checkpoint.pt: not a readable training checkpoint") as err:
        train(config, data, out, "--resume")
    assert str(ckpt) in str(err.value) and "\n" not in str(err.value)
