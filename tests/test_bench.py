"""enhance bench: one real cell in a subprocess, the skip rules, outputs, summary, effective rank, ablation table.

Everything here is small: the real benchmark is a command (`enhance bench`), not a timed test.
"""

import json
import math

import pytest
import torch

from enhance import bench, rank
from enhance.cli import build_parser
from enhance.models import create_model

TINY_SPEC = dict(attention="saga", size=32, mode="infer", device="cpu", precision="fp32", model="saga-s",
                 warmup=0, repeats=1, cell_seconds=1.0, threads=1, max_mem_gb=16)


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "0"], "each side must be a positive"),
    (["--photo", "0"], "each size must be above 0"),
    (["--photo", "x"], "expected comma-separated megapixels"),
])
def test_bad_sizes_are_one_line_errors(argv, message):
    with pytest.raises(SystemExit, match=message):
        bench.main(build_parser("bench").parse_args(["bench", *argv]))


def test_a_tiny_cell_runs_in_a_subprocess_and_returns_every_key():
    records = bench.run_benchmark(["saga"], [32], ["infer"], warmup=0, repeats=1, threads=1, timeout=120,
                                  progress=lambda line: None)
    (record,) = records
    assert record["status"] == "ok", record
    for key in ("attention", "size", "mode", "device", "ms", "mpix_per_s", "peak_mem_mb", "params", "flops", "status"):
        assert record[key] is not None, key
    assert record["attention"] == "saga" and record["size"] == 32 and record["mode"] == "infer"
    assert record["ms"] > 0 and record["peak_mem_mb"] >= record["baseline_mem_mb"] > 0
    assert math.isclose(record["mpix_per_s"], 32 * 32 / 1e6 / (record["ms"] / 1000), rel_tol=1e-2)
    assert record["params"] == sum(p.numel() for p in create_model("saga-s").parameters())


def test_a_training_step_cell_measures_in_process():
    result = bench.run_cell(dict(TINY_SPEC, mode="train", repeats=2, warmup=1))
    assert result["ms"] > 0 and result["runs"] == 2 and result["activation_mem_mb"] >= 0


def test_a_cell_past_its_time_limit_is_reported_as_timeout():
    result = bench.measure_cell(TINY_SPEC, timeout=0.05)  # importing torch alone takes longer
    assert result["status"] == "timeout"


def test_running_out_of_memory_in_the_child_is_reported_as_oom(monkeypatch, capsys):
    def no_memory(spec):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99999999999 bytes")

    monkeypatch.setattr(bench, "run_cell", no_memory)
    bench._cell_main(json.dumps(dict(TINY_SPEC, max_mem_gb=0)))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(bench.RESULT_MARK)
    assert json.loads(line[len(bench.RESULT_MARK):])["status"] == "oom"


def test_larger_sizes_are_skipped_after_a_failure_or_a_hopeless_prediction(monkeypatch):
    monkeypatch.setattr(bench, "count_flops", lambda model, attention, size, mode: size ** 4)  # quadratic
    calls = []

    def fake_measure(spec, timeout):
        calls.append((spec["attention"], spec["size"]))
        if spec["attention"] == "linear" and spec["size"] == 128:
            return {"status": "oom", "note": "fake"}
        return {"status": "ok", "ms": 1000.0 * (spec["size"] / 64) ** 4, "mpix_per_s": 1.0, "peak_mem_mb": 500.0,
                "baseline_mem_mb": 400.0, "activation_mem_mb": 100.0}

    records = bench.run_benchmark(["saga", "linear"], [256, 64, 128], ["infer"], timeout=100,
                                  measure=fake_measure, progress=lambda line: None)
    assert [(r["attention"], r["size"], r["status"]) for r in records] == [
        ("saga", 64, "ok"), ("saga", 128, "ok"), ("saga", 256, "skipped"),  # predicted 256 s > 100 s
        ("linear", 64, "ok"), ("linear", 128, "oom"), ("linear", 256, "skipped")]
    assert calls == [("saga", 64), ("saga", 128), ("linear", 64), ("linear", 128)]
    assert "limit" in records[2]["note"] and "oom at 128" in records[5]["note"]


def test_flops_include_softmax_attention_on_the_cpu():
    # Without the CPU attention kernel's formula, softmax attention would count as free.
    saga = bench.count_flops("saga-s", "saga", 256, "infer")
    softmax = bench.count_flops("saga-s", "softmax", 256, "infer")
    assert softmax > 10 * saga > 0
    assert bench.count_flops("saga-s", "saga", 256, "train") > 2 * saga


def synthetic_records():
    """Time and memory exactly proportional to pixels; saga 5 % slower than linear, 2x faster than sra."""
    records = []
    per_mp = {"saga": 1.05, "linear": 1.0, "channel": 1.2, "sra": 2.0, "softmax": None}
    for attention, seconds_per_mp in per_mp.items():
        for size in (256, 512, 1280):
            mp = size * size / 1e6
            record = {key: None for key in bench.RECORD_KEYS}
            record.update(attention=attention, size=size, mode="infer", device="cpu", precision="fp32",
                          model="saga-s", params=1000, flops=int(1e9 * mp), status="ok")
            if seconds_per_mp is None:
                record.update(status="timeout", note="killed after the 300 s limit")
            else:
                ms = 1000 * seconds_per_mp * mp
                memory = 100 * mp * (3.0 if attention == "sra" else 1.0)
                record.update(ms=ms, mpix_per_s=mp / (ms / 1000), baseline_mem_mb=300.0,
                              activation_mem_mb=memory, peak_mem_mb=300.0 + memory)
            records.append(record)
    return records


def test_summary_ratios_and_exponents_from_synthetic_records():
    items = {item["name"]: item for item in bench.summarize(synthetic_records())}
    assert items["saga / linear time"]["value"] == pytest.approx(1.05) and items["saga / linear time"]["met"]
    assert items["saga / linear memory"]["value"] == pytest.approx(1.0) and items["saga / linear memory"]["met"]
    assert items["saga / channel time"]["value"] == pytest.approx(1.05 / 1.2) and items["saga / channel time"]["met"]
    assert items["saga / sra throughput at 1280"]["value"] == pytest.approx(2.0 / 1.05)
    assert items["saga / sra throughput at 1280"]["met"] is True
    assert items["sra / saga memory at 1280"]["value"] == pytest.approx(3.0) and items["sra / saga memory at 1280"]["met"]
    assert items["saga time exponent"]["value"] == pytest.approx(1.0) and items["saga time exponent"]["met"]
    assert items["saga memory exponent"]["value"] == pytest.approx(1.0)
    assert items["softmax time exponent"]["value"] is None  # nothing ran


def test_a_negative_exponent_is_not_judged():
    """Time falling as the image grows is a noisy first cell, not a scaling law that meets a target."""
    records = [dict(r, ms=r["ms"] * (40 if r["size"] == 256 else 1)) if r["attention"] == "saga" and r["ms"] else r
               for r in synthetic_records()]
    exponent = {item["name"]: item for item in bench.summarize(records)}["saga time exponent"]
    assert exponent["value"] < 0 and exponent["met"] is None and "noise decides it" in exponent["detail"]


def test_summary_says_not_met_when_a_target_is_missed():
    records = [dict(r, ms=r["ms"] * 1.5) if r["attention"] == "saga" and r["ms"] else r for r in synthetic_records()]
    items = {item["name"]: item for item in bench.summarize(records)}
    assert items["saga / linear time"]["met"] is False
    assert "not met" in bench.summary_markdown(bench.summarize(records))


def test_fit_exponent():
    pixels = [1e5, 4e5, 1.6e6]
    assert bench.fit_exponent(pixels, [2 * p for p in pixels]) == pytest.approx(1.0)
    assert bench.fit_exponent(pixels, [p * p for p in pixels]) == pytest.approx(2.0)
    assert bench.fit_exponent([1e5], [1.0]) is None


def test_json_markdown_and_plot_are_written(tmp_path):
    records = synthetic_records()
    bench.write_json(records, tmp_path / "bench.json")
    assert json.loads((tmp_path / "bench.json").read_text()) == records
    report = bench.report_markdown(records)
    assert "| infer | saga | 1280 |" in report and "**timeout**" in report and "## Summary" in report
    bench.plot_records(records, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_effective_rank_of_known_matrices():
    assert rank.effective_rank(torch.eye(16)) == pytest.approx(16.0)
    assert rank.effective_rank(torch.outer(torch.arange(1.0, 9.0), torch.ones(8))) == pytest.approx(1.0)
    assert rank.effective_rank(torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0]))) == pytest.approx(2.0)
    assert rank.effective_rank(torch.zeros(4, 4)) == 0.0


def test_layer_ranks_capture_every_saga_layer_and_leave_no_hook():
    torch.manual_seed(0)
    model = create_model("saga-s")
    ranks = rank.layer_ranks(model, torch.rand(1, 3, 64, 48))
    assert len(ranks) == len(model.saga_layers())
    assert all(1.0 <= r <= d + 1e-6 for _, r, d in ranks)
    assert ranks[0][0] == "encoders.0.0.attn" and ranks[-1][0] == "decoders.0.0.attn"  # forward order
    assert all(layer.state_hook is None for layer in model.saga_layers())


def test_ablation_table_from_two_logs(tmp_path):
    for name, psnr in (("saga", 20.0), ("linear", 19.5)):
        run = tmp_path / name
        run.mkdir()
        rows = [{"kind": "baseline", "step": 0, "psnr": 7.0, "ssim": 0.2},
                {"kind": "train", "step": 250, "loss": 0.1},
                {"kind": "val", "step": 250, "psnr": psnr, "ssim": 0.7, "psnr_gt_mean": psnr + 4, "ssim_gt_mean": 0.75},
                {"kind": "val", "step": 500, "psnr": psnr + 1, "ssim": 0.8, "psnr_gt_mean": psnr + 5,
                 "ssim_gt_mean": 0.85}]
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = rank.ablation_markdown(tmp_path / "saga", tmp_path / "linear")
    assert "| 250 | 20.00 | 19.50 | +0.50 |" in table
    assert "| 500 | 21.00 | 20.50 | +0.50 |" in table
    assert "| **best** | 21.00 | 20.50 | +0.50 |" in table


def test_the_bench_subcommand_is_registered():
    args = build_parser("bench").parse_args(["bench", "--attention", "saga,linear", "--sizes", "64", "--mode", "infer"])
    assert args.command == "bench" and args.attention == "saga,linear" and not args.rank
