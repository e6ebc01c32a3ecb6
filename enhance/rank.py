"""What the gates buy: the rank of the key-value state, and the gate-ablation training table.

    enhance bench --rank --images '../shared/datasets/LOL-v1-train/low' --stems datasets/lol_v1_val.txt \
        --weights-saga runs/ablation-saga/best.safetensors --weights-linear runs/ablation-linear/best.safetensors \
        --json docs/bench/rank.json --plot docs/bench/rank.png
    enhance bench --ablation runs/ablation-saga runs/ablation-linear --markdown docs/bench/ablation.md

Rank. The SAGA paper's argument is that plain linear attention adds every pixel to the state
S = sum_n k_n v_n^T with equal weight, which leaves S low-rank, and that the gates raise its rank.
We measure it on real photos: every SAGA layer's S (d x d per head) is captured through the
layer's `state_hook`, and its *effective rank* (Roy & Vetterli 2007) is
    erank(S) = exp(H(p)),  p_i = sigma_i / sum_j sigma_j,  H(p) = -sum_i p_i log p_i
which is d for a matrix with d equal singular values and 1 for a rank-one matrix, and, unlike the
numerical rank, changes smoothly with the spread of the singular values. It is averaged over
heads and images, per layer, for a trained saga and a trained linear (ungated) model. With
untrained weights the figure says little about the method, and the plot and JSON say so.

Ablation. configs/ablation-saga.toml and configs/ablation-linear.toml are the same short recipe
except for `attention`; `--ablation` puts the two runs' validation rows side by side.
"""

from __future__ import annotations

import glob
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Optional

import torch

from .attention import GlobalState, SAGAttention
from .bench import check_output, save_figure, write_text
from .imageio import ImageReadError, is_image_path, read_image
from .inference import to_tensor
from .models import create_model
from .pairs import PairError, natural_key, read_stem_list


def effective_rank(matrix: torch.Tensor) -> float:
    """exp of the entropy of the normalised singular values (Roy & Vetterli 2007); 0 for a zero matrix."""
    s = torch.linalg.svdvals(matrix.double())
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]  # 0 log 0 = 0
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def layer_ranks(model, image: torch.Tensor) -> list[tuple[str, float, int]]:
    """(layer name, effective rank averaged over heads, head width d) for each SAGA layer.

    Layers are listed in the order the forward pass reaches them (decoder layers after the
    middle), which is the depth order a rank curve is plotted in.
    """
    names = {id(m): name for name, m in model.named_modules() if isinstance(m, SAGAttention)}
    found = []

    def hook(layer: SAGAttention, k_gated: torch.Tensor, v_gated: torch.Tensor) -> GlobalState:
        state = layer.reduce(k_gated, v_gated)  # what the layer would compute without a hook
        S = state.S[0]  # (heads, d, d); batch of one
        found.append((names[id(layer)], statistics.mean(effective_rank(S[h]) for h in range(S.shape[0])),
                      S.shape[-1]))
        return state

    layers = model.saga_layers()
    for layer in layers:
        layer.state_hook = hook
    try:
        model.eval()(image)
    finally:
        for layer in layers:
            layer.state_hook = None
    return found


def mean_layer_ranks(model, images: list[torch.Tensor]) -> dict:
    """{"layers": names, "head_dim": d per layer, "rank": mean over images per layer}."""
    per_image = [layer_ranks(model, image) for image in images]
    first = per_image[0]
    return {"layers": [name for name, _, _ in first], "head_dim": [d for _, _, d in first],
            "rank": [statistics.mean(ranks[i][1] for ranks in per_image) for i in range(len(first))]}


def find_images(pattern: str, stems_file: Optional[Path] = None) -> list[Path]:
    """Image files in a folder or matching a glob, optionally only those whose stem is listed in stems_file."""
    path = Path(pattern)
    candidates = list(path.iterdir()) if path.is_dir() else [Path(p) for p in glob.glob(pattern)]
    files = [p for p in candidates if p.is_file() and is_image_path(p)]
    if stems_file is not None:
        try:
            wanted = set(read_stem_list(stems_file))
        except OSError as err:
            raise SystemExit(f"--stems {stems_file}: cannot read ({err.strerror or err})") from None
        except PairError as err:
            raise SystemExit(f"--stems {err}") from None
        files = [p for p in files if p.stem in wanted]
    return sorted(files, key=lambda p: natural_key(p.name))


def load_image(path: Path) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1]."""
    try:
        return to_tensor(read_image(path).pixels)
    except ImageReadError as err:  # its message is one line naming the file
        raise SystemExit(f"--images: {err}") from None


def _model_for(kind: str, weights: Optional[Path], model_name: str):
    """The trained model from a weights file, or (labelled) random weights when none is given."""
    if weights is None:
        torch.manual_seed(0)
        return create_model(model_name, attention=kind).eval(), "untrained (random weights)"
    from .weights import WeightsError, load_model

    try:
        model = load_model(weights)
    except WeightsError as err:  # its message is one line naming the file
        raise SystemExit(f"--weights-{kind}: {err}") from None
    if model.config.attention != kind:
        raise SystemExit(f"{weights}: a {model.config.attention!r} model, but it was given as the {kind} model")
    return model, f"trained: {weights}"


def compare_ranks(images: list[Path], weights_saga: Optional[Path], weights_linear: Optional[Path],
                  model_name: str = "saga-s") -> dict:
    tensors = [load_image(p) for p in images]
    result = {"images": [str(p) for p in images], "models": {}}
    for kind, weights in (("saga", weights_saga), ("linear", weights_linear)):
        model, label = _model_for(kind, weights, model_name)
        ranks = mean_layer_ranks(model, tensors)
        result["layers"], result["head_dim"] = ranks["layers"], ranks["head_dim"]
        result["models"][kind] = {"weights": label, "trained": weights is not None, "rank": ranks["rank"]}
    result["trained"] = all(m["trained"] for m in result["models"].values())
    return result


def rank_markdown(result: dict) -> str:
    saga, linear = result["models"]["saga"], result["models"]["linear"]
    lines = [f"Effective rank of each SAGA layer's key-value state S (max = head width d), mean over heads and "
             f"{len(result['images'])} images. saga: {saga['weights']}; linear: {linear['weights']}.",
             "", "| layer | d | saga | linear | saga - linear |", "|---|---:|---:|---:|---:|"]
    for name, d, a, b in zip(result["layers"], result["head_dim"], saga["rank"], linear["rank"]):
        lines.append(f"| {name} | {d} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
    a, b = statistics.mean(saga["rank"]), statistics.mean(linear["rank"])
    lines.append(f"| **mean** | | **{a:.2f}** | **{b:.2f}** | **{a - b:+.2f}** |")
    untrained = [kind for kind, m in result["models"].items() if not m["trained"]]
    if untrained:
        lines += ["", f"**Untrained weights ({', '.join(untrained)}): this does not test the paper's claim, "
                      "which is about trained models.**"]
    return "\n".join(lines)


def plot_ranks(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = range(len(result["layers"]))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for kind, colour in (("saga", "tab:blue"), ("linear", "tab:orange")):
        ax.plot(x, result["models"][kind]["rank"], marker="o", color=colour, label=f"{kind}")
    ax.plot(x, result["head_dim"], linestyle="--", color="grey", label="head width d (maximum)")
    ax.set_xticks(list(x), [name.replace(".attn", "") for name in result["layers"]], rotation=30, ha="right")
    ax.set(ylabel="effective rank of S", ylim=(0, max(result["head_dim"]) * 1.1),
           title="KV-state effective rank per layer" + ("" if result["trained"] else " — UNTRAINED weights"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- gate ablation

VAL_KEYS = ("psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean")


def read_val_rows(run: Path) -> dict[int, dict]:
    """step -> validation row, from a run folder (its log.jsonl) or a log.jsonl file."""
    log = run / "log.jsonl" if run.is_dir() else run
    if not log.is_file():
        raise SystemExit(f"{log}: no such training log (train with configs/ablation-*.toml first)")
    rows = {}
    for number, line in enumerate(log.read_text().splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SystemExit(f"{log}, line {number}: not a JSON row ({err.msg})") from None
            if isinstance(row, dict) and row.get("kind") == "val":
                rows[row["step"]] = row
    if not rows:
        raise SystemExit(f"{log}: no validation rows (the run stopped before its first validation, or had no "
                         "validation split)")
    return rows


def ablation_markdown(saga_run: Path, linear_run: Path) -> str:
    """Side-by-side validation scores of the saga and linear ablation runs, step by step, and the best."""
    saga, linear = read_val_rows(saga_run), read_val_rows(linear_run)

    def cell(rows, step, key, digits):
        value = rows.get(step, {}).get(key)  # a log of an older version may lack the GT-mean scores
        return "-" if value is None else f"{value:.{digits}f}"

    def delta(step, key, digits):
        a, b = saga.get(step, {}).get(key), linear.get(step, {}).get(key)
        return "-" if a is None or b is None else f"{a - b:+.{digits}f}"

    header = ["step"]
    for key in VAL_KEYS:
        header += [f"{key} saga", f"{key} linear", "Δ"]
    lines = [f"Gate ablation: {saga_run} (saga) vs {linear_run} (linear, no gates); validation scores of the "
             "EMA weights; Δ = saga - linear; the last row holds each column's best, whichever step it came "
             "from.", "", "| " + " | ".join(header) + " |",
             "|" + "---:|" * len(header)]
    for step in sorted(set(saga) | set(linear)):
        row = [str(step)]
        for key in VAL_KEYS:
            digits = 2 if key.startswith("psnr") else 4
            row += [cell(saga, step, key, digits), cell(linear, step, key, digits), delta(step, key, digits)]
        lines.append("| " + " | ".join(row) + " |")
    best = ["**best**"]
    for key in VAL_KEYS:
        digits = 2 if key.startswith("psnr") else 4
        # A NaN score (broken weights) is never the best, as in training; max() would return it when it came first.
        a = max((r[key] for r in saga.values() if math.isfinite(r.get(key, math.nan))), default=None)
        b = max((r[key] for r in linear.values() if math.isfinite(r.get(key, math.nan))), default=None)
        best += ["-" if a is None else f"{a:.{digits}f}", "-" if b is None else f"{b:.{digits}f}",
                 "-" if a is None or b is None else f"{a - b:+.{digits}f}"]
    lines.append("| " + " | ".join(best) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    group = parser.add_argument_group("expressiveness (enhance/rank.py)")
    group.add_argument("--rank", action="store_true", help="effective rank of each SAGA layer's KV state, saga vs linear")
    group.add_argument("--images", help="--rank: a folder of photos or a glob (quote it)")
    group.add_argument("--stems", type=Path, help="--rank: only the photos whose stem is listed (e.g. datasets/lol_v1_val.txt)")
    group.add_argument("--weights-saga", type=Path, help="--rank: trained saga weights (.safetensors)")
    group.add_argument("--weights-linear", type=Path, help="--rank: trained linear weights (.safetensors)")
    group.add_argument("--ablation", nargs=2, type=Path, metavar=("SAGA_RUN", "LINEAR_RUN"),
                       help="side-by-side validation table of two training runs (folders or log.jsonl files)")


def main(args) -> int:
    if args.ablation:
        for flag, given in (("--json", args.json), ("--plot", args.plot)):
            if given:
                raise SystemExit(f"{flag}: --ablation writes only a Markdown table (--markdown)")
        check_output(args.markdown, "--markdown")
        table = ablation_markdown(*args.ablation)
        print(table)
        if args.markdown:
            write_text(args.markdown, "--markdown", "# Gate ablation\n\n" + table + "\n")
        return 0
    for flag, path in (("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)):
        check_output(path, flag)
    if not args.images:
        raise SystemExit("--rank needs --images (a folder of photos or a glob)")
    images = find_images(args.images, args.stems)
    if not images:
        raise SystemExit(f"--images {args.images}: no images found" + (f" with a stem in {args.stems}" if args.stems else ""))
    missing = [flag for flag, value in (("--weights-saga", args.weights_saga), ("--weights-linear", args.weights_linear))
               if value is None]
    if missing:
        which = "that network runs" if len(missing) == 1 else "both networks run"
        print(f"warning: without {' and '.join(missing)}, {which} with random weights; "
              "the ranks say little about the method", file=sys.stderr)
    result = compare_ranks(images, args.weights_saga, args.weights_linear, args.model)
    report = rank_markdown(result)
    print(report)
    if args.json:
        write_text(args.json, "--json", json.dumps(result, indent=1) + "\n")
    if args.markdown:
        write_text(args.markdown, "--markdown", "# KV-state rank\n\n" + report + "\n")
    if args.plot:
        plot_ranks(result, args.plot)
    return 0
