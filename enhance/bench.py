"""`enhance bench`: speed and memory of each attention type in the same U-Net.

    enhance bench --attention saga,linear,channel,sra,softmax --sizes 256,512,1024 --mode infer,train \
        --json docs/bench/cpu.json --markdown docs/bench/cpu.md --plot docs/bench/cpu.png
    enhance bench --rank --images DIR_OR_GLOB --weights-saga A.safetensors --weights-linear B.safetensors
    enhance bench --ablation runs/ablation-saga runs/ablation-linear --markdown docs/bench/ablation.md

The network is always `create_model(--model, attention=kind)`: only the attention layers differ.
One *cell* is (attention, size, mode) on a batch of one square image; mode "infer" is a no_grad
forward in eval mode, mode "train" is one training step (forward, L1 loss, backward, AdamW step).
The cell's time is the median of its timed runs, after warm-up runs.

Every cell runs in a fresh subprocess (`python -m enhance.bench --_cell JSON`) because
  - peak memory on the CPU can only be read as the peak RSS of a whole process, and a process's
    peak never goes down: the only clean per-cell peak is a new process's;
  - a cell that runs out of memory or time must not take the benchmark down with it. The child
    runs under an address-space limit (--max-mem-gb, CPU only), so a hopeless allocation fails
    inside the child and is reported as status "oom"; the parent kills a child that runs past
    --timeout and reports "timeout". Larger sizes of the same attention and mode are then
    reported as "skipped" (they would fail too) instead of spending the time limit again.
A cell is also "skipped", with the reason in its note, when extrapolating from the previous size
(time by FLOPs, memory by pixels) says it would pass the time limit or the memory cap: softmax
attention at 2048 x 2048 would take hours on a CPU, and finding out costs the whole time limit.

The rank analysis and the gate-ablation table live in enhance/rank.py.
"""

from __future__ import annotations

import json
import math
import os
import platform
try:
    import resource  # peak memory and the address-space cap; Unix only
except ImportError:  # Windows: no peak memory figure, no cap
    resource = None
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .attention import ATTENTION_TYPES
from .models import DEFAULT_MODEL, create_model, list_models
from .weights import REPO_ROOT

MODES = ("infer", "train")
RESULT_MARK = "BENCH_CELL_RESULT "  # the child's last stdout line starts with this, then JSON
MIB = 2**20

# Targets from the SAGA paper (see ../shared/reference/SAGA.md) and the project's own budget.
TARGET_TIME_VS_LINEAR = 1.10  # saga / linear time: the gates may cost at most 10 %
TARGET_MEM_VS_LINEAR = 1.05  # saga / linear memory: the Hadamard decomposition adds ~nothing
TARGET_SRA_THROUGHPUT = 1.76  # saga / sra throughput at 1280 x 1280 (paper, against PVT-T)
TARGET_SRA_MEMORY = 2.69  # sra / saga peak memory at 1280 x 1280 (paper)
TARGET_TIME_VS_CHANNEL = 1.0  # saga / channel (Restormer-style) time
TARGET_EXPONENT = 1.10  # time or memory ~ pixels^e: linear attention is e = 1
SRA_SIZE = 1280


# --------------------------------------------------------------------------- FLOPs

def _sdpa_forward_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the CUDA attention kernels but not the CPU one that
# F.scaled_dot_product_attention dispatches to; without these, softmax attention counts as free.
_CPU_SDPA_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flops,
}


def count_flops(model_name: str, attention: str, size: int, mode: str) -> Optional[int]:
    """FLOPs of one forward (infer) or forward + backward (train) on a size x size image.

    Counted on fake tensors: shapes only, no memory and no arithmetic, so even softmax attention
    on 2048 x 2048 (a 4M x 4M attention matrix) is counted in a fraction of a second.
    FlopCounterMode counts matrix products and convolutions (2 FLOPs per multiply-add), not
    element-wise operations. None if counting fails.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FakeTensorMode():
            model = create_model(model_name, attention=attention).train(mode == "train")
            x = torch.empty(1, 3, size, size)
            with FlopCounterMode(display=False, custom_mapping=_CPU_SDPA_FLOPS) as counter:
                if mode == "train":
                    (model(x) - x).abs().mean().backward()
                else:
                    with torch.no_grad():
                        model(x)
        return int(counter.get_total_flops())
    except Exception:  # a counting failure must not cost the benchmark its timing
        return None


def count_params(model_name: str, attention: str) -> int:
    return sum(p.numel() for p in create_model(model_name, attention=attention).parameters())


# --------------------------------------------------------------------------- one cell (child side)

def _rss_peak_mb() -> float:
    """This process's peak resident set size so far, in MB.

    Linux: VmHWM of /proc/self/status. Not ru_maxrss: the kernel carries the RSS of the process
    that forked this one across exec into ru_maxrss, so a parent holding 450 MB made every
    child's peak read at least 450 MB. Elsewhere ru_maxrss is all there is (KiB on Linux and
    BSD, bytes on macOS). Windows has neither: nan.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    if resource is None:
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _reset_rss_peak() -> None:
    """Restart the peak RSS (VmHWM) from the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs).

    Importing torch has a transient peak above what the process then holds; without the reset a
    small cell's whole pass could fit under it and show no memory of its own. Where the reset is
    not available the baseline is the peak so far, and small cells read low.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_cell(spec: dict) -> dict:
    """Build the model, time the cell, measure its memory. Runs inside the child process.

    spec: attention, size, mode, device, precision, model, warmup, repeats, cell_seconds, threads.
    Returns the measured fields of the record (the parent adds params, FLOPs and status).
    """
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    train = spec["mode"] == "train"
    torch.manual_seed(0)
    model = create_model(spec["model"], attention=spec["attention"]).to(device).train(train)
    x = torch.rand(1, 3, spec["size"], spec["size"], device=device)
    target = torch.rand_like(x)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if train else None
    bf16 = spec["precision"] == "bf16"

    def step() -> None:
        if train:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
            loss = F.l1_loss(out.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()  # CUDA calls return before the work is done

    # Baseline: what the process holds before the first pass (interpreter, libraries, weights,
    # input). Peak minus baseline is the memory the pass itself needs: activations, and in a
    # training step also gradients and the optimizer's state.
    if device.type == "cuda":
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated(device) / MIB
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _reset_rss_peak()
        baseline = _rss_peak_mb()

    def timed_step() -> float:
        start = time.perf_counter()
        step()
        return time.perf_counter() - start

    times = []
    for _ in range(spec["warmup"]):
        seconds = timed_step()
        if seconds >= spec["cell_seconds"]:
            # Warm-up pays one-time costs (thread pool, allocator, lazy initialisation) worth
            # milliseconds; a run this long is a measurement, and another would double the cell.
            times.append(seconds)
            break
    # At least one timed run; then more until `repeats`, unless the runs already took
    # `cell_seconds` (a 60 s cell gains nothing from being timed three times).
    while not times or (len(times) < spec["repeats"] and sum(times) < spec["cell_seconds"]):
        times.append(timed_step())

    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else _rss_peak_mb()
    ms = statistics.median(times) * 1000
    return {
        "ms": round(ms, 3),
        "mpix_per_s": round(spec["size"] ** 2 / 1e6 / (ms / 1000), 4),
        "peak_mem_mb": round(peak, 1),
        "baseline_mem_mb": round(baseline, 1),
        "activation_mem_mb": round(peak - baseline, 1),
        "runs": len(times),
        "threads": torch.get_num_threads(),
        "device_name": _device_name(device),
        "torch": torch.__version__,
    }


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    # The CPU allocator under an address-space limit: "DefaultCPUAllocator: can't allocate memory".
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("allocate memory" in text or "out of memory" in text)


def _cell_main(spec_json: str) -> int:
    """Entry point of the child: measure one cell and print its result as the last stdout line."""
    spec = json.loads(spec_json)
    if spec["device"] == "cpu" and spec.get("max_mem_gb") and resource is not None:
        # An address-space (virtual memory) cap: a bit stricter than an RSS cap of the same size,
        # since libraries reserve address space they never touch. Not for CUDA, whose driver
        # reserves far more address space than the GPU has memory.
        limit = int(spec["max_mem_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        result = {"status": "ok", **run_cell(spec)}
    except Exception as err:  # noqa: BLE001 - any failure is reported, not raised
        if not _is_out_of_memory(err):
            raise
        result = {"status": "oom", "note": str(err).splitlines()[0][:200]}
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- one cell (parent side)

def measure_cell(spec: dict, timeout: float) -> dict:
    """Run one cell in a fresh subprocess; the measured fields, or a status saying why there are none."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "enhance.bench", "--_cell", json.dumps(spec)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "note": f"killed after the {timeout:g} s limit"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    if proc.returncode == -getattr(signal, "SIGKILL", 9):  # Windows has no SIGKILL (nor an OOM killer)
        # The kernel's OOM killer: the machine ran out of memory before the address-space cap did.
        return {"status": "oom", "note": "killed by SIGKILL (the kernel's out-of-memory killer?)"}
    last_error = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"status": "error", "note": last_error[:300]}


RECORD_KEYS = ("attention", "size", "mode", "device", "precision", "model", "ms", "mpix_per_s", "peak_mem_mb",
               "baseline_mem_mb", "activation_mem_mb", "params", "flops", "status", "note", "runs")


def run_benchmark(attentions: list[str], sizes: list[int], modes: list[str], *, device: str = "cpu",
                  precision: str = "fp32", model: str = DEFAULT_MODEL, warmup: int = 1, repeats: int = 3,
                  cell_seconds: float = 30.0, timeout: float = 300.0, max_mem_gb: float = 16.0, threads: int = 0,
                  measure: Callable[[dict, float], dict] = measure_cell,
                  progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
                  ) -> list[dict]:
    """Every (attention, mode, size) cell, smallest size first; one record per cell, failures included."""
    records = []
    total = len(attentions) * len(modes) * len(sizes)
    for attention in attentions:
        params = count_params(model, attention)
        for mode in modes:
            failed: Optional[dict] = None  # the first oom/timeout of this attention and mode
            previous: Optional[dict] = None  # the last cell that ran
            for size in sorted(sizes):
                record = {key: None for key in RECORD_KEYS}
                record.update(attention=attention, size=size, mode=mode, device=device, precision=precision,
                              model=model, params=params, flops=count_flops(model, attention, size, mode))
                seconds, megabytes = _predicted(previous, record)
                if failed is not None:
                    record.update(status="skipped", note=f"{failed['status']} at {failed['size']}")
                elif seconds is not None and seconds > timeout:
                    record.update(status="skipped", note=f"predicted {seconds:.0f} s per run from size "
                                                         f"{previous['size']}, over the {timeout:g} s limit")
                elif device == "cpu" and max_mem_gb and megabytes is not None and megabytes > max_mem_gb * 1024:
                    record.update(status="skipped", note=f"predicted {megabytes / 1024:.1f} GB from size "
                                                         f"{previous['size']}, over the {max_mem_gb:g} GB cap")
                else:
                    spec = dict(attention=attention, size=size, mode=mode, device=device, precision=precision,
                                model=model, warmup=warmup, repeats=repeats, cell_seconds=cell_seconds,
                                threads=threads, max_mem_gb=max_mem_gb)
                    record.update(measure(spec, timeout))
                records.append(record)
                progress(f"[{len(records)}/{total}] {describe(record)}")
                if record["status"] in ("oom", "timeout"):
                    failed = record
                elif record["status"] == "ok":
                    previous = record
    return records


def _predicted(previous: Optional[dict], record: dict) -> tuple[Optional[float], Optional[float]]:
    """(seconds per run, peak MB) at this size, extrapolated from the last size that ran.

    Time scales with FLOPs (softmax attention's grow with pixels squared), memory with pixels:
    every attention here, softmax included, keeps O(pixels) memory (SDPA never materialises the
    attention matrix). Used only to skip cells that would certainly fail, so rough is fine.
    """
    if previous is None:
        return None, None
    pixels = (record["size"] / previous["size"]) ** 2
    flops = record["flops"] / previous["flops"] if previous["flops"] and record["flops"] else pixels
    megabytes = previous["baseline_mem_mb"] + previous["activation_mem_mb"] * pixels
    return previous["ms"] / 1000 * flops, megabytes


def describe(record: dict) -> str:
    head = f"{record['attention']:8s} {record['mode']:5s} {record['size']:5d}px"
    if record["status"] != "ok":
        return f"{head}: {record['status']} ({record.get('note') or ''})"
    return (f"{head}: {record['ms']:9.1f} ms  {record['mpix_per_s']:7.3f} MP/s  peak {record['peak_mem_mb']:8.0f} MB"
            f"  (+{record['activation_mem_mb']:.0f} MB over baseline)")


# --------------------------------------------------------------------------- summary

def _ok(records: list[dict], attention: str, mode: str) -> dict[int, dict]:
    return {r["size"]: r for r in records if r["attention"] == attention and r["mode"] == mode and r["status"] == "ok"}


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def fit_exponent(pixels: list[float], values: list[float]) -> Optional[float]:
    """e in value ~ pixels^e: least squares on log-log. None with fewer than two usable points."""
    points = [(math.log(p), math.log(v)) for p, v in zip(pixels, values) if p > 0 and v > 0]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return (sum((x - mean_x) * (y - mean_y) for x, y in points)
            / sum((x - mean_x) ** 2 for x, _ in points))


def _ratio_over_sizes(records, mode, numerator, denominator, key) -> Optional[dict]:
    """Geometric mean (and range) over the sizes where both ran of numerator[key] / denominator[key]."""
    a, b = _ok(records, numerator, mode), _ok(records, denominator, mode)
    ratios = {s: a[s][key] / b[s][key] for s in sorted(set(a) & set(b))
              if a[s][key] is not None and b[s][key] is not None and a[s][key] > 0 and b[s][key] > 0}
    if not ratios:
        return None
    return {"value": _geomean(list(ratios.values())), "low": min(ratios.values()), "high": max(ratios.values()),
            "sizes": list(ratios)}


def summarize(records: list[dict]) -> list[dict]:
    """The issue's comparisons, per mode: value, target, and whether the target is met.

    Memory comparisons use activation memory (peak minus the baseline held before the first
    pass): on the CPU the baseline is mostly the Python process and its libraries, the same for
    every attention type, and would pull every ratio towards 1.
    Each item: {mode, name, value, target, met (True/False/None if not measured), detail}.
    """
    items = []
    for mode in [m for m in MODES if any(r["mode"] == m for r in records)]:
        def add(name, value, target, met, detail):
            items.append({"mode": mode, "name": name, "value": value, "target": target, "met": met, "detail": detail})

        for other, key, label, target in (("linear", "ms", "saga / linear time", TARGET_TIME_VS_LINEAR),
                                          ("linear", "activation_mem_mb", "saga / linear memory", TARGET_MEM_VS_LINEAR),
                                          ("channel", "ms", "saga / channel time", TARGET_TIME_VS_CHANNEL)):
            r = _ratio_over_sizes(records, mode, "saga", other, key)
            if r is None:
                add(label, None, f"<= {target:.2f}x", None, "not measured")
            else:
                add(label, r["value"], f"<= {target:.2f}x", r["value"] <= target,
                    f"geometric mean over sizes {', '.join(map(str, r['sizes']))} "
                    f"(range {r['low']:.2f}-{r['high']:.2f})")

        saga, sra = _ok(records, "saga", mode), _ok(records, "sra", mode)
        common = sorted(set(saga) & set(sra))
        size = SRA_SIZE if SRA_SIZE in common else (max(common) if common else None)
        where = "" if size == SRA_SIZE else f" (at {size}: {SRA_SIZE} not measured for both)"
        if size is None:
            add(f"saga / sra throughput at {SRA_SIZE}", None, f">= {TARGET_SRA_THROUGHPUT}x", None, "not measured")
            add(f"sra / saga memory at {SRA_SIZE}", None, f">= {TARGET_SRA_MEMORY}x", None, "not measured")
        else:
            speed = saga[size]["mpix_per_s"] / sra[size]["mpix_per_s"]
            add(f"saga / sra throughput at {SRA_SIZE}", speed, f">= {TARGET_SRA_THROUGHPUT}x",
                speed >= TARGET_SRA_THROUGHPUT if size == SRA_SIZE else None, f"{speed:.2f}x{where}")
            mem_saga, mem_sra = saga[size]["activation_mem_mb"], sra[size]["activation_mem_mb"]
            if mem_saga and mem_saga > 0 and mem_sra is not None:
                ratio = mem_sra / mem_saga
                add(f"sra / saga memory at {SRA_SIZE}", ratio, f">= {TARGET_SRA_MEMORY}x",
                    ratio >= TARGET_SRA_MEMORY if size == SRA_SIZE else None,
                    f"{mem_sra:.0f} MB vs {mem_saga:.0f} MB over baseline{where}")
            else:
                add(f"sra / saga memory at {SRA_SIZE}", None, f">= {TARGET_SRA_MEMORY}x", None, "no memory figure")

        # How time and memory grow with the pixel count, for every attention type; only saga's
        # has a target. Fixed per-call costs pull the exponent below 1 at small sizes.
        for attention in sorted({r["attention"] for r in records if r["mode"] == mode},
                                key=lambda a: ATTENTION_TYPES.index(a) if a in ATTENTION_TYPES else 99):
            cells = _ok(records, attention, mode)
            pixels = [s * s for s in cells]
            for key, what in (("ms", "time"), ("activation_mem_mb", "memory")):
                e = fit_exponent(pixels, [cells[s][key] or 0 for s in cells])
                target = f"<= {TARGET_EXPONENT:.2f}" if attention == "saga" else "-"
                met = (e <= TARGET_EXPONENT) if (attention == "saga" and e is not None) else None
                detail = (f"~ pixels^e over sizes {', '.join(map(str, cells))}" if e is not None
                          else "fewer than 2 sizes ran")
                if e is not None and e < 0:  # cost never falls as the image grows: noise, not a figure to judge
                    met = None
                    detail += "; negative, so noise decides it: rerun with larger sizes or more repeats"
                add(f"{attention} {what} exponent", e, target, met, detail)
    return items


def _verdict(item: dict) -> str:
    if item["met"] is None:
        return "not measured" if item["value"] is None else "-"
    return "met" if item["met"] else "not met"


def summary_markdown(items: list[dict]) -> str:
    lines = ["| mode | comparison | value | target | verdict | detail |", "|---|---|---:|---|---|---|"]
    for it in items:
        value = "-" if it["value"] is None else f"{it['value']:.2f}"
        lines.append(f"| {it['mode']} | {it['name']} | {value} | {it['target']} | {_verdict(it)} | {it['detail']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- outputs

def records_markdown(records: list[dict]) -> str:
    lines = ["| mode | attention | size | ms | MP/s | peak MB | over baseline MB | params | GFLOPs | status |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    for r in records:
        status = r["status"] if r["status"] == "ok" else f"**{r['status']}** {r.get('note') or ''}".strip()
        gflops = None if r.get("flops") is None else r["flops"] / 1e9
        lines.append(f"| {r['mode']} | {r['attention']} | {r['size']} | {num(r.get('ms'), '.1f')} "
                     f"| {num(r.get('mpix_per_s'), '.3f')} | {num(r.get('peak_mem_mb'), '.0f')} "
                     f"| {num(r.get('activation_mem_mb'), '.0f')} | {num(r.get('params'), ',')} "
                     f"| {num(gflops, ',.1f')} | {status} |")
    return "\n".join(lines)


def report_markdown(records: list[dict], command: str = "") -> str:
    """The whole report: how it was run, the table of cells, the summary against the targets."""
    first = next((r for r in records if r["status"] == "ok"), records[0] if records else {})
    if first and "device_name" not in first and (first["device"] == "cpu" or torch.cuda.is_available()):
        # No cell ran (all timed out, say): the cells would have run on this machine, with this torch.
        # (Threads stay "?": --threads set them in the cells, not here.)
        first = {**first, "device_name": _device_name(torch.device(first["device"])), "torch": torch.__version__}
    memory = ("peak RSS of a fresh process per cell" if first.get("device") == "cpu"
              else "torch.cuda.max_memory_allocated")
    parts = [
        "# Attention benchmark",
        "",
        f"Model `{first.get('model')}` (only the attention type differs), batch 1, square images; "
        f"device {first.get('device')} ({first.get('device_name', '?')}), {first.get('precision')}, "
        f"{first.get('threads', '?')} threads, torch {first.get('torch', '?')}.",
        "infer = one no_grad forward in eval mode; train = one step (forward, L1 loss, backward, AdamW). "
        "Time is the median of the timed runs after warm-up. Memory: " + memory +
        "; *over baseline* subtracts what the process held before the first pass (libraries, weights, input). "
        "MB = 2^20 bytes. GFLOPs count matrix products and convolutions only.",
    ]
    if command:
        parts += ["", f"Command: `{command}`"]
    parts += ["", records_markdown(records), "", "## Summary", "", summary_markdown(summarize(records)), ""]
    return "\n".join(parts)


class UsageError(SystemExit):
    """A one-line error of `enhance bench`: exit status 2 (argparse's, and `enhance run`'s), str() the message."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_output(path: Optional[Path], flag: str) -> None:
    """Fail now, before the run, if `path` cannot be written: a benchmark can take an hour.

    Folders that do not exist yet are made when writing; the nearest one that exists must take a
    new file (tried for real: permissions, read-only mounts and /proc all refuse differently).
    """
    if path is None:
        return
    if path.is_dir():
        raise SystemExit(f"{flag} {path}: is a folder; give a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SystemExit(f"{flag} {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise SystemExit(f"{flag} {path}: cannot write in {folder} ({err.strerror or err})") from None
    if flag == "--plot":
        from matplotlib.backend_bases import FigureCanvasBase

        kinds = FigureCanvasBase.get_supported_filetypes()
        if _plot_format(path) not in kinds:
            raise SystemExit(f"--plot {path}: matplotlib cannot write {path.suffix} files; use one of "
                             + ", ".join("." + kind for kind in sorted(kinds)))


def _plot_format(path: Path) -> str:
    return path.suffix[1:].lower() or "png"  # no suffix: PNG, as --plot's help says


def write_atomically(path: Path, flag: str, write: Callable[[Path], None]) -> None:
    """write(temporary path) beside `path`, then rename it to `path`.

    An interrupted or failed write leaves an earlier file of that name as it was, never half
    written. The temporary name keeps the suffix, from which matplotlib picks the format.
    """
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(temporary)
        os.replace(temporary, path)
    except OSError as err:
        raise SystemExit(f"{flag} {path}: cannot write ({err.strerror or err})") from None
    finally:
        if temporary.exists():  # (exists(), not unlink(missing_ok=True): the folder may not exist, or be a file)
            temporary.unlink()


def write_text(path: Path, flag: str, text: str) -> None:
    # UTF-8 whatever the locale: reports hold Δ and ±, which Windows' code pages cannot encode.
    write_atomically(path, flag, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json(records, path: Path, flag: str = "--json") -> None:
    write_text(path, flag, json.dumps(records, indent=1) + "\n")


def plot_records(records: list[dict], path: Path) -> None:
    """Time and memory against megapixels, log-log, one line per attention type, one row per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in MODES if any(r["mode"] == m for r in records)] or ["infer"]
    fig, axes = plt.subplots(len(modes), 2, figsize=(11, 4 * len(modes)), squeeze=False)
    attentions = sorted({r["attention"] for r in records},
                        key=lambda a: ATTENTION_TYPES.index(a) if a in ATTENTION_TYPES else 99)
    for row, mode in zip(axes, modes):
        for attention in attentions:
            cells = _ok(records, attention, mode)
            style = dict(marker="o", label=attention, linewidth=2.5 if attention == "saga" else 1.5)
            for ax, key in zip(row, ("ms", "activation_mem_mb")):
                # Log axes: only positive values (a tiny cell can read 0 MB over baseline).
                points = [(s * s / 1e6, cells[s][key]) for s in sorted(cells) if (cells[s][key] or 0) > 0]
                if points:
                    ax.plot([p for p, _ in points], [v for _, v in points], **style)
        row[0].set(xlabel="megapixels", ylabel="ms", title=f"{mode}: time")
        row[1].set(xlabel="megapixels", ylabel="MB over baseline", title=f"{mode}: peak memory over baseline")
        for ax in row:
            if ax.lines:  # matplotlib refuses a log axis with nothing positive on it
                ax.set(xscale="log", yscale="log")
                ax.legend()
            ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        write_atomically(path, "--plot", lambda temporary: fig.savefig(temporary, dpi=100, format=_plot_format(path)))
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- command line

def _csv(text: str) -> list[str]:
    """The comma-separated parts of text, each once, in their order (a cell named twice would be
    measured twice)."""
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def add_arguments(parser) -> None:
    speed = parser.add_argument_group("speed and memory (the default task)")
    # Every flag with a value says its default, as "(default X)"; argparse fills in %(default)s.
    speed.add_argument("--attention", default=",".join(ATTENTION_TYPES),
                       help="comma-separated attention types (default all: %(default)s)")
    speed.add_argument("--sizes", default="256,512,1024,1280,2048",
                       help="comma-separated square image sides in pixels (default %(default)s)")
    speed.add_argument("--mode", default="infer,train", help="infer, train, or both, comma-separated (default %(default)s)")
    speed.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the cells run (default %(default)s)")
    speed.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                       help="bf16: bfloat16 autocast (default %(default)s)")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list_models(),
                        help="registered model whose network is measured (default %(default)s)")
    speed.add_argument("--warmup", type=int, default=1, help="untimed runs per cell before timing (default 1)")
    speed.add_argument("--repeats", type=int, default=3, help="timed runs per cell; the median is reported (default 3)")
    speed.add_argument("--cell-seconds", type=float, default=30.0,
                       help="stop repeating once a cell's timed runs took this long (default 30)")
    speed.add_argument("--timeout", type=float, default=300.0, help="seconds before a cell is killed (default 300)")
    speed.add_argument("--max-mem-gb", type=float, default=16.0,
                       help="CPU: address-space cap of each cell's process, in GiB (default 16; 0: none; not on Windows)")
    speed.add_argument("--threads", type=int, default=0, help="torch threads per cell (default 0: PyTorch's choice)")
    out = parser.add_argument_group("outputs (an existing file is replaced)")
    out.add_argument("--json", type=Path, help="write the results as JSON (not with --ablation)")
    out.add_argument("--markdown", type=Path, help="write the Markdown report")
    out.add_argument("--plot", type=Path, help="write a PNG plot (not with --ablation or --photo)")
    from . import photobench, rank

    rank.add_arguments(parser)
    photobench.add_arguments(parser)


def main(args) -> int:
    try:
        return _main(args)
    except SystemExit as err:
        if not isinstance(err.code, str):
            raise
        # raise SystemExit("message") anywhere in bench, rank or photobench: Python would print it
        # and exit with status 1; a usage error of a command exits with 2, as argparse's do.
        print(f"enhance bench: {err.code}", file=sys.stderr)
        raise UsageError(err.code) from None


def _main(args) -> int:
    if args.photo:
        from . import photobench

        return photobench.main(args)
    if args.rank or args.ablation:
        from . import rank

        return rank.main(args)
    attentions, modes = _csv(args.attention), _csv(args.mode)
    for name, values, known in (("--attention", attentions, ATTENTION_TYPES), ("--mode", modes, MODES)):
        unknown = [v for v in values if v not in known]
        if unknown or not values:
            raise SystemExit(f"{name}: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    try:
        sizes = list(dict.fromkeys(int(s) for s in _csv(args.sizes)))  # "256,0256" is one size
    except ValueError:
        raise SystemExit(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) <= 0:
        raise SystemExit(f"--sizes {args.sizes}: each side must be a positive number of pixels")
    for flag, value, lowest in (("--warmup", args.warmup, 0), ("--repeats", args.repeats, 1),
                                ("--threads", args.threads, 0), ("--max-mem-gb", args.max_mem_gb, 0)):
        if not (math.isfinite(value) and value >= lowest):
            raise SystemExit(f"{flag} {value:g}: must be {lowest} or more")
    for flag, value in (("--cell-seconds", args.cell_seconds), ("--timeout", args.timeout)):
        if not 0 < value < math.inf:
            raise SystemExit(f"{flag} {value:g}: must be a positive number of seconds")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no CUDA GPU on this machine")
    for flag, path in (("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)):
        check_output(path, flag)

    records = run_benchmark(attentions, sizes, modes, device=args.device, precision=args.precision,
                            model=args.model, warmup=args.warmup, repeats=args.repeats,
                            cell_seconds=args.cell_seconds, timeout=args.timeout, max_mem_gb=args.max_mem_gb,
                            threads=args.threads)
    report = report_markdown(records, command="enhance bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"]
                                                                          else sys.argv[1:]))
    print(report)
    if args.json:
        write_json(records, args.json)
    if args.markdown:
        write_text(args.markdown, "--markdown", report)
    if args.plot:
        plot_records(records, args.plot)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--_cell"]:  # the per-cell child process (see measure_cell)
        sys.exit(_cell_main(sys.argv[2]))
    import argparse

    _parser = argparse.ArgumentParser(prog="python -m enhance.bench", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
