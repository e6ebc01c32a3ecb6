"""Saving and loading network weights: safetensors only (no pickle), sha256-checked, strict keys.

A weights file carries its network configuration in the safetensors metadata, so a file given
by path rebuilds the right network without the registry.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors import SafetensorError, safe_open

from .models import DEFAULT_MODEL, MODELS, get_entry, list_models
from .network import SAGAUNet, UNetConfig

# Shipped weights live in the repository's weights/ folder; SAGA_ENHANCE_WEIGHTS points elsewhere.
REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout or install root that holds weights/ and datasets/
WEIGHTS_DIR = Path(os.environ.get("SAGA_ENHANCE_WEIGHTS", REPO_ROOT / "weights"))


class WeightsError(Exception):
    """A weights file that cannot be used; the message is one line naming the file."""


class UntrainedModelError(WeightsError):
    """The registry knows the model but no trained weights exist for it."""


def sha256_of(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """fp32 tensors and string metadata in the safetensors format, every key in sorted order.

    safetensors' own writer emits the metadata map in a random order, so the same weights saved
    twice got different sha256s; a fixed order makes a re-shipped model's recorded sha stable.
    Layout: header length (u64 little-endian), JSON header padded with spaces to 8 bytes, raw data.
    """
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for key in sorted(tensors):
        data = tensors[key].detach().float().contiguous().cpu().numpy().astype("<f4").tobytes()
        header[key] = {"dtype": "F32", "shape": list(tensors[key].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def save_weights(model: SAGAUNet, path: Union[str, Path], name: str = "") -> str:
    """Write fp32 weights and the network config atomically; return the file's sha256.

    Equal weights give byte-identical files (see safetensors_bytes).
    """
    path = Path(path)
    metadata = {"format": "saga-enhance", "model": name, "config": json.dumps(model.config.to_dict())}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(safetensors_bytes(model.state_dict(), metadata))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_of(path)


def _read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.is_dir():  # before the suffix check, which would blame pickle for a folder's name
        raise WeightsError(f"{path}: is a folder, not a weights file")
    if path.suffix.lower() != ".safetensors":
        raise WeightsError(f"{path}: only .safetensors weights are loaded (pickle-based .pt/.pth files can run code)")
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"{path}: not a readable safetensors file ({first_line})") from None
    return tensors, metadata


def _describe_keys(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _check_values(tensors: dict[str, torch.Tensor], source: Union[str, Path]) -> None:
    """Refuse tensors that are not usable weights: load_state_dict would cast integer or complex
    tensors to float without a word, and NaN or inf weights give black or blank photos."""
    for key in sorted(tensors):
        tensor = tensors[key]
        if not tensor.is_floating_point():
            raise WeightsError(f"{source}: tensor {key} is {str(tensor.dtype).removeprefix('torch.')}, "
                               "not floating point (quantised or not network weights)")
        if not torch.isfinite(tensor.float()).all():  # .float(): isfinite lacks fp8 kernels
            raise WeightsError(f"{source}: tensor {key} holds NaN or infinite values (broken weights)")


def _check_keys(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], source: Union[str, Path]) -> None:
    """Raise a one-line WeightsError listing the keys and shapes in which tensors differ from expected."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = [f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
                   for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe_keys(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes: {_describe_keys(wrong_shape)}")
    if problems:
        raise WeightsError(f"{source}: weights do not match the network; " + "; ".join(problems))


def load_state_strict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Union[str, Path]) -> None:
    """load_state_dict(strict=True) with a readable one-line error listing the differences."""
    _check_keys(model.state_dict(), tensors, source)
    model.load_state_dict(tensors, strict=True)


def load_model(name_or_path: Optional[Union[str, Path]] = None, device: Union[str, torch.device] = "cpu",
               *, allow_untrained: bool = False) -> SAGAUNet:
    """The default, named, or file-given model with its trained weights, in eval mode.

    A registered model without shipped weights raises UntrainedModelError, unless
    allow_untrained=True, which returns random weights with a loud warning (for tests and
    benchmarks of speed, never for photos).
    """
    name_or_path = str(name_or_path or DEFAULT_MODEL)
    if name_or_path in MODELS:
        entry = get_entry(name_or_path)
        path = WEIGHTS_DIR / entry.weights if entry.weights else None
        if path is None or entry.sha256 is None or not path.is_file():
            if path is not None and entry.sha256 is not None:  # trained, but the file is not here
                message = (f"{path}: the weights file of model {entry.name!r} is missing; restore it from the "
                           "repository (weights/) or pass a .safetensors file")
            else:
                message = (f"model {entry.name!r} has no trained weights yet; train it with `enhance train` "
                           "or pass a .safetensors file")
            if not allow_untrained:
                raise UntrainedModelError(message)
            warnings.warn(message + ": USING RANDOM WEIGHTS", stacklevel=2)
            return SAGAUNet(entry.config).to(device).eval()
        try:
            actual = sha256_of(path)
        except OSError as err:  # e.g. no read permission: one line, like every other weights problem
            raise WeightsError(f"{path}: cannot read the weights file of model {entry.name!r} "
                               f"({err.strerror})") from None
        if actual != entry.sha256:
            raise WeightsError(f"{path}: sha256 {actual[:12]}... does not match the registry's {entry.sha256[:12]}... "
                               "(corrupt or replaced file); restore it from the repository (weights/) "
                               "or pass a .safetensors file")
    else:
        path = Path(name_or_path)
        if not path.suffix and not path.exists():
            close = difflib.get_close_matches(name_or_path, list(MODELS), n=1)  # a typo of a model's name
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise WeightsError(f"{name_or_path}: neither a registered model ({', '.join(list_models())}) "
                               f"nor a weights file{hint}")
    tensors, metadata = _read_file(path)
    if "config" not in metadata:
        raise WeightsError(f"{path}: no network config in the file's metadata (not saved by saga-enhance?)")
    try:
        config = UNetConfig.from_dict(json.loads(metadata["config"]))
        # Each block holds several tensors, so a file cannot match more blocks than it has tensors;
        # checked before building, which for a million blocks would take hours.
        blocks = sum(config.encoder_blocks) + config.middle_blocks + sum(config.decoder_blocks)
        if blocks + len(config.widths) > len(tensors):
            raise ValueError(f"{blocks} blocks over {len(config.widths)} levels, "
                             f"but the file holds {len(tensors)} tensors")
        # The network's shapes come from the config on the meta device, which allocates nothing: a
        # config with huge widths is refused by the key and shape check below before it can ask for
        # gigabytes, as only a file of that size can match it.
        with torch.device("meta"):
            skeleton = SAGAUNet(config)
    # Not JSON (or nested too deep), unknown keys, values the config or the network refuses.
    except (ValueError, TypeError, RuntimeError, RecursionError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__  # torch appends a C++ stack
        raise WeightsError(f"{path}: the network config in the file's metadata is not valid ({first_line})") from None
    _check_keys(skeleton.state_dict(), tensors, path)
    _check_values(tensors, path)
    model = SAGAUNet(config)
    load_state_strict(model, tensors, path)
    return model.to(device).eval()
