"""`enhance train`: resumable, distributed-ready training of a registered model on paired images.

    enhance train --config configs/saga-s-v2.toml --data ../shared/datasets/LOL-v1-train --out runs/saga-s-v2 [--resume]

One step = a batch of random patches (crop, flips, 90-degree rotations), an L1, exposure-split
L1 or PSNR loss (plus an optional SSIM term), AdamW with warm-up and cosine decay, gradient
clipping, an EMA of the weights, bf16 autocast with channels_last. Every `checkpoint_every`
steps, and on SIGTERM/Ctrl-C, the whole training state is written atomically; `--resume`
continues bit-exactly. Under `torchrun`, DistributedDataParallel runs one shard of the training
pairs per rank; rank 0 validates, logs and checkpoints.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser, before it joined the standard library as tomllib
    import tomli as tomllib

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .attention import ATTENTION_TYPES
from .exposure import EXPOSURE_RANGE, exposure_curve
from .imageio import ImageReadError, convert_pixels, read_image
from .metrics import psnr, psnr_gt_mean, quantize_8bit, ssim, ssim_gt_mean
from .models import create_model, list_models
from .pairs import PairError, find_pairs, image_size, natural_key, pair_key, read_stem_list
from .weights import REPO_ROOT, WeightsError, load_model, load_state_strict, save_weights

DEFAULT_VAL_LIST = REPO_ROOT / "datasets" / "lol_v1_val.txt"


@dataclass
class TrainConfig:
    model: str = "saga-s"
    attention: str = "saga"  # the gate ablation trains "linear" with an otherwise identical recipe
    patch_size: int = 128
    batch_size: int = 8
    # Progressive patches (Restormer's progressive learning): [[from_step, patch, batch], ...]
    # replaces patch_size/batch_size from each listed step on. Larger late patches show the
    # network more of each photo's context, closer to the whole photos it enhances.
    patch_schedule: list = field(default_factory=list)
    steps: int = 4000
    loss: str = "l1"  # or "psnr", "l1-exposure-split": see LOSSES
    ssim_weight: float = 0.0  # adds ssim_weight * (1 - SSIM) to the loss; 0 leaves it out
    exposure_weight: float = 0.0  # adds exposure_weight * exposure_l1 (on top of any in `loss`)
    # Users' dark photos are rarely exactly as dark as LOL's. With this > 0, each training input
    # (not its target) is made darker or brighter by a uniform draw of up to this many stops, as
    # `enhance.adjust_exposure` and scripts/input_darkness.py do it. 0 leaves the inputs as they are.
    input_exposure_jitter: float = 0.0
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False  # torch.compile the training forward: 1.75x faster steps on this CPU after ~1 min
    threads: int = 0  # 0: PyTorch's default
    init_weights: str = ""  # start from these .safetensors weights (a new schedule on top of earlier training)
    val_list: str = str(DEFAULT_VAL_LIST)
    val_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 25

    @classmethod
    def from_file(cls, path: Path) -> "TrainConfig":
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except OSError as err:
            raise SystemExit(f"{path}: cannot read the config ({err.strerror or err})") from None
        except tomllib.TOMLDecodeError as err:
            raise SystemExit(f"{path}: not valid TOML ({err})") from None
        defaults = {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(cls)}
        unknown = sorted(set(values) - set(defaults))
        if unknown:
            # A typo'd key would otherwise leave its default in force; say which key was probably meant.
            named = []
            for key in unknown:
                close = difflib.get_close_matches(key, list(defaults), n=1)
                named.append(f"{key} (did you mean {close[0]}?)" if close else key)
            raise SystemExit(f"{path}: unknown config keys: {', '.join(named)}")
        for key, value in values.items():
            expected = type(defaults[key])
            # TOML's 1 is an int where a float is meant; a bool is an int to Python but not here.
            fits = (isinstance(value, (int, float)) if expected is float else isinstance(value, expected))
            if not fits or (isinstance(value, bool) and expected is not bool):
                raise SystemExit(f"{path}: {key} must be {expected.__name__}, got {value!r}")
        if values.get("model", cls.model) not in list_models():
            raise SystemExit(f"{path}: unknown model {values['model']!r}; choose from {', '.join(list_models())}")
        if values.get("attention", cls.attention) not in ATTENTION_TYPES:
            raise SystemExit(f"{path}: unknown attention {values['attention']!r}; "
                             f"choose from {', '.join(ATTENTION_TYPES)}")
        if values.get("loss", "l1") not in LOSSES:
            raise SystemExit(f"{path}: unknown loss {values['loss']!r}; choose from {', '.join(LOSSES)}")
        for weight in ("ssim_weight", "exposure_weight"):
            if values.get(weight, 0.0) < 0:
                raise SystemExit(f"{path}: {weight} must be 0 or more, got {values[weight]}")
        if not 0 <= values.get("input_exposure_jitter", 0.0) <= EXPOSURE_RANGE[1]:
            raise SystemExit(f"{path}: input_exposure_jitter must be between 0 and {EXPOSURE_RANGE[1]:g} stops, "
                             f"got {values['input_exposure_jitter']}")
        cfg = cls(**values)
        cfg.check(path)
        return cfg

    def check(self, source) -> None:
        """Refuse values that would crash mid-run (a division by log_every = 0, an empty batch) or
        silently train nonsense (a negative learning rate), in one line that names `source`."""
        def refuse(message: str):
            raise SystemExit(f"{source}: {message}")

        for f in fields(self):  # TOML has nan and inf
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                refuse(f"{f.name} must be a finite number, got {value}")
        for key in ("steps", "patch_size", "batch_size", "log_every", "val_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                refuse(f"{key} must be 1 or more, got {getattr(self, key)}")
        if self.warmup_steps < 0:
            refuse(f"warmup_steps must be 0 or more, got {self.warmup_steps}")
        if self.threads < 0:
            refuse(f"threads must be 0 (PyTorch's default) or more, got {self.threads}")
        if self.lr <= 0:
            refuse(f"lr must be more than 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            refuse(f"min_lr must be between 0 and lr ({self.lr}), got {self.min_lr}")
        if self.weight_decay < 0:
            refuse(f"weight_decay must be 0 or more, got {self.weight_decay}")
        if self.grad_clip <= 0:  # 0 would scale every gradient to nothing: no training at all
            refuse(f"grad_clip must be more than 0, got {self.grad_clip}")
        if not 0 <= self.ema_decay < 1:  # 1 would keep the EMA at the initial weights forever
            refuse(f"ema_decay must be at least 0 and less than 1, got {self.ema_decay}")
        if not str(self.val_list).strip():  # Path("") is the current folder: the error would name no file
            refuse("val_list must name a file of validation stems (one per line); training needs a validation split")
        starts = set()
        for entry in self.patch_schedule:
            form = "each patch_schedule entry must be [from_step, patch, batch]"
            if not (isinstance(entry, list) and len(entry) == 3
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in entry)):
                refuse(f"{form} (three whole numbers), got {entry!r}")
            from_step, patch, batch = entry
            if from_step < 0 or patch < 1 or batch < 1:
                refuse(f"{form} with from_step 0 or more and patch and batch 1 or more, got {entry!r}")
            if from_step in starts:  # which of two stages starting together wins would be an accident of sorting
                refuse(f"patch_schedule has two entries from step {from_step}")
            starts.add(from_step)
        if self.ssim_weight:  # ssim_loss uses valid windows only: a smaller patch crashes the first step
            stages = [("patch_size", self.patch_size)]
            stages += [(f"patch_schedule entry {entry}", entry[1]) for entry in self.patch_schedule]
            for name, patch in stages:
                if patch < SSIM_WINDOW:
                    refuse(f"{name} asks for {patch}-px patches, smaller than the {SSIM_WINDOW}-px window of the SSIM "
                           f"term (ssim_weight {self.ssim_weight:g}); use patches of {SSIM_WINDOW} px or more, "
                           "or ssim_weight = 0")


def psnr_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the PSNR of each image (data range 1), averaged over the batch (HINet's PSNR loss).

    Validation scores the mean of per-image PSNRs, which this is (negated); L1 instead weighs
    every pixel of the batch alike and so drives each pixel towards its median, not its mean.
    """
    mse = (output - target).square().mean(dim=(1, 2, 3))
    return (10 * torch.log10(mse + 1e-8)).mean()


def exposure_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The L1 between each image's mean level and its target's: the exposure error alone."""
    return F.l1_loss(output.mean(dim=(1, 2, 3)), target.mean(dim=(1, 2, 3)))


def exposure_split_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on the output scaled to the target's mean level, plus the L1 between the two mean levels.

    Plain L1's gradient is the sign of each pixel's error. When a photo comes out 20% too bright
    (LOL's ground truths vary in exposure by about 0.27 stops, and a model trained on them still
    misses by about 0.2), nearly every sign is +, and the photo teaches the network about
    brightness and nothing else. Scaling the output to the target's mean level first (as GT-mean
    scoring does) leaves the signs to say where the structure and colour are wrong; the second
    term still learns the exposure, with the same pull plain L1 has when the error is a pure gain.
    """
    out_level = output.mean(dim=(1, 2, 3), keepdim=True)
    target_level = target.mean(dim=(1, 2, 3), keepdim=True)
    gain = (target_level / out_level.clamp_min(1e-4)).detach()
    return F.l1_loss(output * gain, target) + exposure_l1(output, target)


LOSSES = {"l1": F.l1_loss, "psnr": psnr_loss, "l1-exposure-split": exposure_split_l1}
LOSS_LABELS = {"l1": "L1 loss", "psnr": "PSNR loss (-dB)", "l1-exposure-split": "exposure-split L1"}  # curve axis


SSIM_WINDOW = 11  # taps of ssim_loss's Gaussian window, as the evaluation's SSIM


def _gaussian_taps(size: int = SSIM_WINDOW, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    taps = torch.exp(-coords.square() / (2 * sigma**2))
    return taps / taps.sum()


def ssim_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (data range 1), the evaluation's SSIM made differentiable: Gaussian window
    sigma 1.5, K1 0.01, K2 0.03, per channel, valid windows only, averaged over the batch.

    L1 scores each pixel alone; SSIM scores local contrast and structure, which is what the
    benchmark's SSIM column rewards and a per-pixel loss only reaches indirectly.
    """
    channels = output.shape[1]
    with torch.autocast(device_type=output.device.type, enabled=False):  # variances need fp32
        x, y = output.float(), target.float()
        # All five local moments in one separable blur (rows, then columns): half the time of
        # a 2-D 11x11 window on a whole 600x400 photo.
        moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)
        n, taps = moments.shape[1], _gaussian_taps().to(x.device)
        moments = F.conv2d(moments, taps.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)
        moments = F.conv2d(moments, taps.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)
        mu_x, mu_y, xx, yy, xy = moments.split(channels, dim=1)
        var_x, var_y, cov = xx - mu_x.square(), yy - mu_y.square(), xy - mu_x * mu_y
        c1, c2 = 0.01**2, 0.03**2
        luminance = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1)
        contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    return 1 - (luminance * contrast_structure).mean()


def training_loss(cfg: TrainConfig, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss = LOSSES[cfg.loss](output, target)
    if cfg.ssim_weight:
        loss = loss + cfg.ssim_weight * ssim_loss(output, target)
    if cfg.exposure_weight:
        loss = loss + cfg.exposure_weight * exposure_l1(output, target)
    return loss


class TrainingData:
    """All training pairs decoded once into uint8 tensors, 3 bytes a pixel (310 LOL pairs are ~450 MB; 50 pairs
    of 12 MP photos are 3.6 GB, see decoded_bytes). Decoded once rather than per batch: a 12 MP JPEG takes about
    0.15 s to decode, and every step draws up to batch_size photos."""

    def __init__(self, pairs, source: str):
        self.low, self.high, self.stems = [], [], []
        for pair in pairs:
            try:
                low, high = read_image(pair.low).pixels, read_image(pair.high).pixels
            except ImageReadError as err:
                raise SystemExit(f"bad training data: {err}")
            if low.shape != high.shape:
                raise SystemExit(f"bad training data: {pair.low} is {low.shape[1]}x{low.shape[0]} but "
                                 f"{pair.high} is {high.shape[1]}x{high.shape[0]}")
            # 16-bit and float pairs train in the same 8-bit range
            low, high = convert_pixels(low, np.uint8), convert_pixels(high, np.uint8)
            self.low.append(torch.from_numpy(low).permute(2, 0, 1).contiguous())
            self.high.append(torch.from_numpy(high).permute(2, 0, 1).contiguous())
            self.stems.append(pair.stem)
        if not self.low:
            raise SystemExit(f"bad training data: no image pairs in {source}")

    def batch(self, size: int, patch: int, gen: torch.Generator,
              exposure_jitter: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Random patches with the same crop, flips and rotation applied to input and target, and
        each input's exposure shifted by up to `exposure_jitter` stops (0: no draw is made, so
        configs without it keep their random sequence)."""
        lows, highs = [], []
        for _ in range(size):
            i = int(torch.randint(len(self.low), (1,), generator=gen))
            low, high = self.low[i], self.high[i]
            h, w = low.shape[-2:]
            ph, pw = min(patch, h), min(patch, w)
            top = int(torch.randint(h - ph + 1, (1,), generator=gen))
            left = int(torch.randint(w - pw + 1, (1,), generator=gen))
            low, high = low[:, top:top + ph, left:left + pw], high[:, top:top + ph, left:left + pw]
            flip, rot = torch.randint(2, (1,), generator=gen).item(), torch.randint(4, (1,), generator=gen).item()
            if flip:
                low, high = low.flip(-1), high.flip(-1)
            low, high = torch.rot90(low, rot, (-2, -1)), torch.rot90(high, rot, (-2, -1))
            if exposure_jitter:
                stops = (torch.rand((), generator=gen).item() * 2 - 1) * exposure_jitter
                low = torch.from_numpy(exposure_curve(stops, np.uint8))[low.long()]
            lows.append(low)
            highs.append(high)
        return torch.stack(lows).float() / 255, torch.stack(highs).float() / 255


def patch_and_batch(cfg: TrainConfig, step: int) -> tuple[int, int]:
    """The (patch size, batch size) in force at `step`."""
    patch, batch = cfg.patch_size, cfg.batch_size
    for from_step, stage_patch, stage_batch in sorted(cfg.patch_schedule):
        if step >= from_step:
            patch, batch = stage_patch, stage_batch
    return patch, batch


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def validate(model, data: TrainingData, cfg: TrainConfig, device: torch.device) -> dict:
    """PSNR/SSIM (plain and GT-mean) on whole validation images, by the evaluation protocol."""
    model.eval()
    scores = {"psnr": [], "ssim": [], "psnr_gt_mean": [], "ssim_gt_mean": []}
    for low, high in zip(data.low, data.high):
        x = (low.float() / 255).unsqueeze(0).to(device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            out = model(x)[0].float().permute(1, 2, 0).cpu().numpy()
        target = high.permute(1, 2, 0).numpy()
        out8 = quantize_8bit(out)
        scores["psnr"].append(psnr(out8, target))
        scores["ssim"].append(ssim(out8, target))
        scores["psnr_gt_mean"].append(psnr_gt_mean(out8 / 255.0, target / 255.0))
        scores["ssim_gt_mean"].append(ssim_gt_mean(out8 / 255.0, target / 255.0))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def input_baseline(data: TrainingData) -> dict:
    """The validation input's own PSNR/SSIM against the target: what doing nothing scores."""
    pairs = [(low.permute(1, 2, 0).numpy(), high.permute(1, 2, 0).numpy()) for low, high in zip(data.low, data.high)]
    return {"psnr": float(np.mean([psnr(a, b) for a, b in pairs])),
            "ssim": float(np.mean([ssim(a, b) for a, b in pairs]))}


def atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state(gen: torch.Generator) -> dict:
    """Every RNG the loop may touch, as tensors and plain values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "batch": gen.get_state(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "python": random.getstate()}


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["batch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def loss_label(loss_name: str, ssim_weight: float, exposure_weight: float = 0.0) -> str:
    """What the training-loss curve plots, SSIM and exposure terms included.

    >>> loss_label("psnr", 0.5)
    'PSNR loss (-dB) + 0.5 x (1 - SSIM)'
    """
    label = LOSS_LABELS[loss_name]
    if ssim_weight:
        label += f" + {ssim_weight:g} x (1 - SSIM)"
    if exposure_weight:
        label += f" + {exposure_weight:g} x exposure L1"
    return label


def plot_curves(log_path: Path, png_path: Path, loss_name: str = "l1", ssim_weight: float = 0.0,
                exposure_weight: float = 0.0) -> None:
    """Training loss and validation PSNR and SSIM against step, as a PNG beside the log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["kind"] == "train"]
    val = [r for r in rows if r["kind"] == "val"]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4))
    ax1.plot([r["step"] for r in train], [r["loss"] for r in train])
    # The PSNR loss is minus the training patches' PSNR in dB, mostly negative: a linear axis.
    ax1.set(xlabel="step", ylabel=loss_label(loss_name, ssim_weight, exposure_weight),
            yscale="linear" if loss_name == "psnr" else "log", title="training loss")
    ax2.plot([r["step"] for r in val], [r["psnr"] for r in val], marker="o")
    ax2.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR (EMA weights)")
    ax3.plot([r["step"] for r in val], [r["ssim"] for r in val], marker="o")
    ax3.set(xlabel="step", ylabel="SSIM", title="validation SSIM (EMA weights)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


class StopRequested:
    """Turns SIGTERM and Ctrl-C into a flag, so the loop can checkpoint and stop cleanly."""

    def __init__(self):
        self.requested = False
        self._previous = {sig: signal.signal(sig, self._set) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _set(self, signum, frame):
        self.requested = True

    def restore(self) -> None:
        """Give the signals back to their earlier handlers."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def drop_log_rows_after(log_path: Path, step: int) -> None:
    """Remove the rows of steps that a resume will train again.

    A run killed without a last checkpoint (power cut, SIGKILL) has logged steps past its checkpoint;
    kept, they would appear twice in the log and the curves once the resumed run reaches them.
    """
    if not log_path.exists():
        return
    text = log_path.read_text()
    # Every kept row ends in a newline: one cut off before its newline would run into the next row.
    kept = "".join(line + "\n" for line in read_log_rows(log_path) if json.loads(line)["step"] <= step)
    if kept != text:
        temporary = log_path.with_name(log_path.name + ".tmp")
        temporary.write_text(kept)
        temporary.replace(log_path)


RUN_FILES = ("checkpoint.pt", "log.jsonl", "best.safetensors")  # what a run writes into its folder


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse an --out that is a file, one holding an earlier run that --resume was not asked to continue,
    and --resume into a folder whose earlier run left files but no checkpoint (it cannot be continued, and
    starting again at step 0 would overwrite its log and best weights)."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"{out}: --out takes a run folder, and this is a file")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not resume:
        raise SystemExit(f"{out}: holds an earlier run ({', '.join(held)}); pass --resume to continue it, "
                         "or choose another --out")
    if resume and not (out / "checkpoint.pt").exists():
        earlier = [name for name in RUN_FILES + ("best.json", "config.json") if (out / name).exists()]
        if earlier:
            raise SystemExit(f"{out}: holds an earlier run's files ({', '.join(earlier)}) but no checkpoint.pt "
                             "to resume from; choose another --out, or remove them to start again")


def select_pairs(cfg: TrainConfig, data_dir: Path) -> tuple[str, list, list]:
    """(layout, training pairs, validation pairs) of `data_dir`, split by the config's val_list.

    The training split of a folder holding both (LOL-v1's our485/, LOL-v2's and Retinexformer's Train/)
    is used. Validation stems are matched as `enhance eval --list` matches them (pairs.pair_key: case and
    low/high/normal prefixes before a number ignored), and every one of them must be found: a validation list that
    silently matches nothing leaves a run with no validation and no best.safetensors. A pair whose images
    differ in size or cannot be read is refused here, from the headers, before any image is decoded.
    """
    try:
        val_stems = read_stem_list(cfg.val_list)
    except OSError as err:
        raise SystemExit(f"{cfg.val_list}: cannot read the validation list ({err.strerror or err})") from None
    except PairError as err:  # not UTF-8; the message names the file
        raise SystemExit(str(err)) from None
    if not val_stems:  # no validation: no best.safetensors, and nothing modelcard could ship
        raise SystemExit(f"{cfg.val_list}: the validation list holds no stems")
    try:
        everything = find_pairs(data_dir, split="train")
    except PairError as err:
        raise SystemExit(f"bad training data: {err}") from None
    if everything.missing_high or everything.missing_low:
        # By their folder too: "5.png" alone does not say whether the low-light image or its ground truth is missing.
        unpaired = [str(p.relative_to(data_dir)) for p in everything.missing_high + everything.missing_low]
        more = f" (+{len(unpaired) - 10} more)" if len(unpaired) > 10 else ""
        raise SystemExit(f"bad training data: images without a partner in {data_dir}: {', '.join(unpaired[:10])}{more}")
    if everything.size_mismatches:
        # Read from the image headers by find_pairs, before any image is decoded: every such pair is named now,
        # rather than the first one after minutes of decoding.
        bad = everything.size_mismatches
        more = f" (+{len(bad) - 10} more)" if len(bad) > 10 else ""
        raise SystemExit(f"bad training data: {len(bad)} pair(s) in {data_dir} whose images differ in size or cannot "
                         f"be read: {'; '.join(bad[:10])}{more}")
    wanted = {pair_key(stem): stem for stem in val_stems}
    found = {pair_key(pair.stem) for pair in everything.pairs}
    missing = sorted((stem for key, stem in wanted.items() if key not in found), key=natural_key)
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        # A config without val_list gets LOL-v1's split, which no other dataset has: say where the file came from.
        whose = " (the default val_list, LOL-v1's validation split)" if cfg.val_list == str(DEFAULT_VAL_LIST) else ""
        raise SystemExit(f"{cfg.val_list}{whose}: {len(missing)} of the {len(wanted)} validation stems are not pairs "
                         f"in {data_dir} ({everything.layout}): {shown}; set val_list in the config to a file of "
                         "this dataset's stems, one per line")
    val_pairs = [pair for pair in everything.pairs if pair_key(pair.stem) in wanted]
    train_pairs = [pair for pair in everything.pairs if pair_key(pair.stem) not in wanted]
    if not train_pairs:
        raise SystemExit(f"{cfg.val_list}: every pair in {data_dir} is a validation stem; none is left to train on")
    return everything.layout, train_pairs, val_pairs


def decoded_bytes(pairs, read_size=image_size) -> int:
    """The memory TrainingData takes for `pairs`, from the image headers: two 8-bit RGB images a pair,
    3 bytes a pixel each (a 12 MP pair is 72 MB)."""
    total = 0
    for pair in pairs:
        width, height = read_size(pair.low)  # both images have this size: select_pairs refused any other
        total += 2 * 3 * width * height
    return total


def check_patch_sizes(cfg: TrainConfig, pairs, source, read_size=image_size) -> None:
    """Refuse a patch larger than the smallest training image's shorter side in a batch of more than one.

    A crop is min(patch, side) on each side, and rotated a quarter turn at random: a patch larger than a
    side gives crops of different shapes that cannot be stacked into one batch. With batch 1 it is how
    whole photos are trained (the configs' patch_size = 600), so that stays allowed.
    """
    stages = [("patch_size", cfg.patch_size, cfg.batch_size)]
    stages += [(f"patch_schedule entry {entry}", entry[1], entry[2]) for entry in cfg.patch_schedule]
    if all(batch == 1 for _, _, batch in stages):
        return
    smallest = None  # (shorter side, path, width, height); header reads only, the pixels come later
    for pair in pairs:
        try:
            width, height = read_size(pair.low)  # upright, as read_image gives it
        except OSError:
            continue  # TrainingData names an unreadable image, and train() checks its decoded size
        if smallest is None or min(width, height) < smallest[0]:
            smallest = (min(width, height), pair.low, width, height)
    if smallest is None:
        return
    side, path, width, height = smallest
    for name, patch, batch in stages:
        if batch > 1 and patch > side:
            raise SystemExit(f"{source}: {name} asks for {patch}-px patches in batches of {batch}, but the training "
                             f"image {path} is {width}x{height}; batched patches must fit in {side} px "
                             "(or use batch size 1 to train whole photos)")


def load_init_weights(model, cfg: TrainConfig, source) -> None:
    """Start `model` from cfg.init_weights, refusing weights of another network in one line."""
    try:
        init = load_model(cfg.init_weights)
    except WeightsError as err:
        raise SystemExit(f"{source}: init_weights: {err}") from None
    if init.config != model.config:  # same tensor shapes can still be another attention type
        differs = [f"{f.name} {getattr(init.config, f.name)!r} (config: {getattr(model.config, f.name)!r})"
                   for f in fields(model.config) if getattr(init.config, f.name) != getattr(model.config, f.name)]
        raise SystemExit(f"{source}: init_weights {cfg.init_weights} is another network than model {cfg.model!r} "
                         f"with attention {cfg.attention!r}: {', '.join(differs)}")
    try:
        load_state_strict(model, init.state_dict(), cfg.init_weights)
    except WeightsError as err:
        raise SystemExit(f"{source}: init_weights: {err}") from None


CHECKPOINT_KEYS = ("model", "ema", "optimizer", "step", "best_psnr", "wall_seconds", "rng")

# Config keys a --resume may change: they only decide how often a log row or a checkpoint is written,
# never the weights (a resume is bit-exact from any checkpoint), the validation steps or which weights
# become best. Everything else, threads and compile included (they change the floating-point sums),
# would make the resumed run another run than the one its checkpoint and config.json describe.
RESUMABLE_KEYS = ("log_every", "checkpoint_every")


def load_checkpoint(path: Path, device) -> dict:
    """The checkpoint's dict, or a one-line SystemExit naming the file if it is damaged or not one."""
    try:
        # weights_only=True: the restricted unpickler that cannot run code.
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a damaged file
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SystemExit(f"{path}: not a readable training checkpoint ({reason}); it may have been cut short "
                         "or replaced: train into another --out") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise SystemExit(f"{path}: not a training checkpoint of enhance train (no {', '.join(missing)})")
    return ckpt


def config_differences(saved: dict, cfg: TrainConfig) -> list[str]:
    """'key saved -> now' for each config key, other than RESUMABLE_KEYS, that differs from the saved run's."""
    defaults = asdict(TrainConfig())
    differences = []
    for key, value in asdict(cfg).items():
        # A key added to TrainConfig after the run was started: its default keeps the old behaviour.
        before = saved.get(key, defaults[key])
        if key not in RESUMABLE_KEYS and before != value:
            differences.append(f"{key} {before!r} -> {value!r}")
    return differences


def data_fingerprint(train_pairs, val_pairs) -> str:
    """A digest of which pairs a run trains and validates on, by stem and file size: the same
    files moved to another folder (or machine) keep it, other or changed files do not."""
    digest = hashlib.sha256()
    for role, pairs in (("train", train_pairs), ("val", val_pairs)):
        for pair in sorted(pairs, key=lambda pair: natural_key(pair.stem)):
            sizes = [path.stat().st_size for path in (pair.low, pair.high)]
            digest.update(f"{role} {pair.stem} {sizes[0]} {sizes[1]}\n".encode())
    return digest.hexdigest()


def read_log_rows(log_path: Path) -> list[str]:
    """The log's rows as lines, without a half-written last line (what a SIGKILL mid-write leaves)."""
    lines = log_path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row["step"]
        except (ValueError, TypeError, KeyError):
            if number == len(lines):
                continue  # the row being written when the run was killed: its steps are trained again
            raise SystemExit(f"{log_path}: line {number} is not a log row ({line[:60]!r}); "
                             "the log is damaged") from None
        rows.append(line)
    return rows


def missing_compiler() -> Optional[str]:
    """Why torch.compile cannot build its kernels here, or None. It compiles C++ (MSVC's cl on
    Windows; g++ or clang++ elsewhere, e.g. Xcode's command-line tools on a Mac) and would fail
    with a long traceback at the first step, after the data had loaded."""
    if sys.platform == "win32":
        return None if shutil.which("cl") else "MSVC's C++ compiler (cl) is not on the PATH"
    if os.environ.get("CXX") or any(shutil.which(name) for name in ("g++", "clang++", "c++")):
        return None
    return "no C++ compiler (g++, clang++ or $CXX) was found"


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def train(cfg: TrainConfig, data_dir: Path, out: Path, resume: bool = False, max_steps: Optional[int] = None,
          quiet: bool = False, config_path: Optional[Path] = None) -> Path:
    """Train, checkpointing into `out`; returns the path of the best EMA weights (rank 0).

    max_steps stops early (still checkpointing) without changing the schedule, which is how the
    resume test runs N steps, stops, and continues. Stopped by SIGTERM or Ctrl-C, it checkpoints and
    raises SystemExit(130), so that `enhance train ... && ship` does not ship an unfinished run.
    config_path only names the config in error messages.

    A run that fails before it writes anything (bad data, a val_list that does not fit it) removes
    the run folder, and the parents, that it made: an empty folder would look like a run.
    """
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # what out.mkdir will make
    try:
        return _train(cfg, data_dir, out, resume, max_steps, quiet, config_path)
    except BaseException:
        # Under torchrun another process may still be about to write into the folder: leave it.
        if not under_torchrun():
            try:
                for folder in made:
                    folder.rmdir()  # refuses a folder that holds anything
            except OSError:
                pass  # a folder holding files, or not there (never made), stays as it is
        raise


def _train(cfg: TrainConfig, data_dir: Path, out: Path, resume: bool, max_steps: Optional[int],
           quiet: bool, config_path: Optional[Path]) -> Path:
    source = config_path or "config"
    cfg.check(source)  # from_file checked it already; a TrainConfig built in code has not been
    # Before the process group forms: no rank can have written into `out` yet.
    check_run_folder(out, resume)
    distributed = under_torchrun()
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    ckpt = None
    if resume and ckpt_path.exists():  # checked before the data is read: a refusal should not take minutes
        ckpt = load_checkpoint(ckpt_path, device)
        saved = ckpt.get("config")
        if saved is None and (out / "config.json").exists():  # checkpoints have always held it; just in case
            saved = json.loads((out / "config.json").read_text())
        differences = config_differences(saved, cfg) if isinstance(saved, dict) else []
        if differences:
            raise SystemExit(f"{ckpt_path}: the run was trained with another config ({'; '.join(differences)}); "
                             f"--resume takes the run's own config (only {' and '.join(RESUMABLE_KEYS)} may change), "
                             "or train into another --out")
        if isinstance(ckpt["rng"], list) and len(ckpt["rng"]) != world:
            raise SystemExit(f"{ckpt_path}: written by {len(ckpt['rng'])} training process(es), resumed with {world}; "
                             "each holds its own shard and random state: resume with the same number")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"{out}: cannot create the run folder ({err.strerror or err})") from None
    layout, train_pairs, val_pairs = select_pairs(cfg, data_dir)
    fingerprint = data_fingerprint(train_pairs, val_pairs)
    if ckpt is not None and ckpt.get("data_fingerprint", fingerprint) != fingerprint:
        raise SystemExit(f"{ckpt_path}: the run trained on other pairs ({ckpt.get('data')}) than {data_dir} holds; "
                         "--resume takes the run's own data (the same files, wherever they lie now)")
    check_patch_sizes(cfg, train_pairs, source)
    if len(train_pairs) < world:  # a process without a pair of its own has nothing to draw a batch from
        raise SystemExit(f"{data_dir}: {len(train_pairs)} training pair(s) for {world} training processes, each of "
                         f"which trains on its own share of the pairs; run at most {len(train_pairs)} of them")
    if rank == 0 and not quiet:  # as `enhance eval` says which split it reads
        # Every pair is held decoded for the whole run: say how much memory that takes before it is taken.
        held = decoded_bytes(train_pairs + val_pairs)
        held_text = f"{held / 1e9:.1f} GB" if held >= 1e9 else f"{held / 1e6:.0f} MB"
        print(f"dataset layout: {layout} ({len(train_pairs)} training pairs, {len(val_pairs)} validation pairs "
              f"from {cfg.val_list}; {held_text} of memory to hold them decoded)", file=sys.stderr)
    shard = train_pairs[rank::world]  # each rank its own
    data = TrainingData(shard, str(data_dir))
    # The check above trusted the headers (and skips one it cannot read): check the decoded sizes too, as a crop
    # larger than a side cannot be stacked into a batch. (width, height), as image_size.
    decoded_sizes = {pair.low: (low.shape[2], low.shape[1]) for pair, low in zip(shard, data.low)}
    check_patch_sizes(cfg, shard, source, read_size=decoded_sizes.__getitem__)
    val_data = TrainingData(val_pairs, str(data_dir)) if rank == 0 and val_pairs else None

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = create_model(cfg.model, attention=cfg.attention).to(device)
    if cfg.init_weights:
        load_init_weights(model, cfg, source)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed + rank)
    step, best_psnr, wall_seconds = 0, -1.0, 0.0
    checkpointed_step = None  # the step the checkpoint on disk holds, the same on every rank

    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
            ema.load_state_dict(ckpt["ema"])
            optimizer.load_state_dict(ckpt["optimizer"])
            set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) else ckpt["rng"], gen)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:  # a damaged or foreign state
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise SystemExit(f"{ckpt_path}: does not fit model {cfg.model!r} ({reason})") from None
        step, best_psnr, wall_seconds = ckpt["step"], ckpt["best_psnr"], ckpt["wall_seconds"]
        checkpointed_step = step
        del ckpt  # the optimiser and models hold copies now
        if rank == 0:
            drop_log_rows_after(log_path, step)
            if not quiet:
                print(f"resumed from {ckpt_path} at step {step}", file=sys.stderr)
    elif rank == 0:
        if resume and not quiet:
            print(f"no {ckpt_path} yet: starting at step 0", file=sys.stderr)
        log_path.write_text("")
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    if cfg.compile and (missing := missing_compiler()):
        if rank == 0 and not quiet:
            print(f"{source}: compile = true, but {missing}: training runs without torch.compile (slower steps)",
                  file=sys.stderr)
    elif cfg.compile:
        net = torch.compile(net, dynamic=False)  # one static graph per patch stage, no dynamic-shape code
    stopper = StopRequested()

    def checkpoint() -> None:
        nonlocal checkpointed_step
        checkpointed_step = step
        rngs = [None] * world
        if distributed:
            dist.all_gather_object(rngs, rng_state(gen))
        else:
            rngs = [rng_state(gen)]
        if rank == 0:
            atomic_torch_save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                               "step": step, "best_psnr": best_psnr, "wall_seconds": wall_seconds,
                               "rng": rngs, "config": asdict(cfg),
                               "data": str(data_dir), "data_fingerprint": fingerprint}, ckpt_path)

    def stop_agreed() -> bool:
        """Whether to stop before the next step. Under DDP the ranks agree on it: a signal that reaches
        only some of them must not leave the others waiting in the next step's gradient all-reduce."""
        if not distributed:
            return stopper.requested
        flag = torch.tensor([float(stopper.requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() > 0

    def nonfinite_agreed(loss_value: float, grad_norm: torch.Tensor) -> bool:
        """Whether this step's loss or gradient is NaN or infinite on any rank. A NaN reaches every rank
        through DDP's gradient all-reduce, but an infinite loss can have finite gradients: the ranks
        agree explicitly, so that none stops while another waits for it in the next step."""
        bad = not (math.isfinite(loss_value) and math.isfinite(float(grad_norm)))
        if not distributed:
            return bad
        flag = torch.tensor([float(bad)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() > 0

    def log(row: dict) -> None:
        if rank == 0:
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    if rank == 0 and val_data is not None and step == 0:
        log({"kind": "baseline", "step": 0, **input_baseline(val_data)})

    last = min(cfg.steps, max_steps if max_steps is not None else cfg.steps)
    progress = None
    if rank == 0 and not quiet:
        from tqdm import tqdm

        progress = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.model}", unit="step")
    tic, window_loss, window_steps = time.time(), 0.0, 0

    def end_log_window() -> None:
        """One train row for the steps since the last one; their time goes into wall_seconds."""
        nonlocal tic, window_loss, window_steps, wall_seconds
        elapsed = time.time() - tic
        wall_seconds += elapsed
        log({"kind": "train", "step": step, "loss": window_loss / window_steps, "lr": learning_rate(cfg, step - 1),
             "steps_per_s": window_steps / max(elapsed, 1e-9), "wall_seconds": round(wall_seconds, 1)})
        tic, window_loss, window_steps = time.time(), 0.0, 0

    stopped_by_signal = False
    try:
        while step < last:
            if stop_agreed():
                stopped_by_signal = True
                break
            net.train()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step)
            patch, batch = patch_and_batch(cfg, step)
            low, high = data.batch(batch, patch, gen, cfg.input_exposure_jitter)
            low, high = low.to(device), high.to(device)
            if cfg.channels_last:
                low = low.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = training_loss(cfg, net(low).float(), high)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            loss_value = loss.item()
            # Checked before the optimiser step: a NaN would spread into every weight and the EMA, train on
            # as NaN, and could even be saved as the best weights. Nothing of this step is written.
            if nonfinite_agreed(loss_value, grad_norm):
                if progress:
                    progress.close()
                last_ckpt = f"step {checkpointed_step} in {ckpt_path}" if checkpointed_step is not None else "none"
                raise SystemExit(f"training stopped at step {step + 1}: the loss is {loss_value:g} and the gradient "
                                 f"norm {float(grad_norm):g}; nothing of that step was saved (last checkpoint: "
                                 f"{last_ckpt}); try a lower lr or grad_clip")
            optimizer.step()
            with torch.no_grad():
                # Short runs: let the EMA warm up instead of averaging in the random start.
                decay = min(cfg.ema_decay, (1 + step) / (10 + step))
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p, 1 - decay)
            step += 1
            window_loss, window_steps = window_loss + loss_value, window_steps + 1
            if progress:
                progress.update(1)
                progress.set_postfix(loss=f"{loss_value:.4f}")
            if step % cfg.log_every == 0 or step == last:
                end_log_window()
            if val_data is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                scores = validate(ema, val_data, cfg, device)
                log({"kind": "val", "step": step, **scores})
                if progress:
                    progress.write(f"step {step}: val PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f}")
                # A NaN or infinite PSNR (broken weights, or an output equal to the target) is never "best".
                if math.isfinite(scores["psnr"]) and scores["psnr"] > best_psnr:
                    best_psnr = scores["psnr"]
                    sha = save_weights(ema, out / "best.safetensors", name=cfg.model)
                    card = {"model": cfg.model, "step": step, "sha256": sha, **scores}
                    (out / "best.json").write_text(json.dumps(card, indent=2))
                plot_curves(log_path, out / "curves.png", cfg.loss, cfg.ssim_weight, cfg.exposure_weight)
            if step % cfg.checkpoint_every == 0:
                checkpoint()
        # A signal can land anywhere in a step, even in the checkpoint at its end: log the steps since
        # the last train row, and checkpoint again so that the checkpoint's wall time counts them.
        stopped_between_logs = window_steps > 0
        if stopped_between_logs:
            end_log_window()
        if stopped_between_logs or checkpointed_step != step:
            checkpoint()  # stopped by a signal, max_steps, or the end: keep everything
    finally:
        stopper.restore()  # even when the loop raises: a calling program gets its Ctrl-C back
    if progress:
        progress.close()
    if distributed:
        dist.barrier()  # no rank tears the group down while another is still in a collective
        dist.destroy_process_group()
    if stopped_by_signal:
        # 130, as a shell reports Ctrl-C: a stopped run is not a finished one.
        if rank == 0:
            print(f"stopped at step {step} of {cfg.steps}; the checkpoint is {ckpt_path}: "
                  f"continue with --resume --out {out}", file=sys.stderr)
        raise SystemExit(130)
    if rank == 0 and not quiet:
        print(end_of_run_message(out, step, cfg.steps, max_steps), file=sys.stderr)
    return out / "best.safetensors"


def end_of_run_message(out: Path, step: int, steps: int, max_steps: Optional[int]) -> str:
    """The last line of a run that was not stopped by a signal: where it stopped, what it saved, how to go on."""
    if step < steps:  # --max-steps ended it before the schedule did
        return (f"stopped at step {step} of {steps} (--max-steps {max_steps}); checkpoint saved: "
                f"{out / 'checkpoint.pt'}; continue with --resume --out {out}")
    best_card = out / "best.json"
    if best_card.exists():
        best = json.loads(best_card.read_text())
        best_text = (f"best weights: {out / 'best.safetensors'} (step {best['step']}, "
                     f"validation PSNR {best['psnr']:.2f} dB)")
    else:  # every validation gave a NaN or infinite PSNR
        best_text = "no best weights (no validation gave a finite PSNR)"
    return f"finished all {steps} steps; {best_text}; log: {out / 'log.jsonl'}; curves: {out / 'curves.png'}"


def add_arguments(parser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="TOML training config (see configs/)")
    parser.add_argument("--data", type=Path, required=True, help="folder of paired images (e.g. LOL-v1 train)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log, curves, best weights")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--max-steps", type=int, default=None, help="stop (and checkpoint) after this step")


def main(args) -> int:
    if args.max_steps is not None and args.max_steps < 0:  # 0 writes the starting weights, as a checkpoint
        raise SystemExit(f"--max-steps {args.max_steps}: must be 0 or more")
    cfg = TrainConfig.from_file(args.config)
    train(cfg, args.data, args.out, resume=args.resume, max_steps=args.max_steps, config_path=args.config)
    return 0
