"""The web app: upload a dark photo, compare before/after, download the full-resolution result.

    python app.py [--host 127.0.0.1] [--port 7860] [--model saga-s] [--device auto] [--allow-untrained]
    enhance serve ...                      (the same options)

The inference endpoint is `/enhance`. Its first input is the photo file; the others are the
controls, each with a default, so a client may give the photo alone:

    from gradio_client import Client, handle_file
    (before, after), result_file, info = Client("http://127.0.0.1:7860/").predict(
        handle_file("photo.jpg"), api_name="/enhance")
    # all inputs: photo, model="saga-s", tile="auto", strength=1.0, exposure=0.0 (stops)

Decisions
---------
* The photo is received as a file path (gr.File), not as gr.Image pixels: gr.Image re-encodes
  uploads to 8 bits, so 16-bit and float depth would be lost. The file is read with `read_image`, which
  also keeps alpha, ICC and EXIF and applies the EXIF orientation.
* The download is written with `write_image` in the input's format and bit depth
  (`output_extension(path, "same")`: HEIC/AVIF become PNG, and a JPEG named .jfif or .jpe comes
  back as .jpg). The before/after slider shows PNG previews (never lossy WebP), at most
  PREVIEW_SIDE px on the long side.
* The strength and exposure sliders hand their values on unchecked (`unchecked_slider`): the
  handler checks them, so an API client sending "0.5", null or 7 gets the app's own one-line
  message instead of Gradio's generic error.
* Models are loaded once per name (the start model eagerly, others on first use) and shared by
  all requests. Tiled inference briefly installs hooks on a model's attention layers
  (enhance/tiling.py), so each model runs one photo at a time behind its own lock; the queue's
  concurrency limit of 1 already ensures that for queued requests, and the lock also covers
  example caching, which Gradio runs outside the queue.
* Files: each request writes its result in a scratch folder under the app's work dir, hands
  it to Gradio's cache (which serves the download and deletes it after DELETE_CACHE[1]
  seconds), and removes the scratch folder before returning, whatever happened. The example
  photos are static paths, served from where they lie: copies in the cache would be deleted
  with everything else after an hour. After each request the empty temporary files that
  gr.File leaves in the cache, and the empty folders Gradio's clean-up leaves, are removed.
* The last photo and the network's output for it are kept, one of each for the whole server
  (about 2 x 36 MB for a 12-MP JPEG). Pressing Enhance again with the same photo (the same
  bytes, even uploaded again), model and tile, after moving the strength or exposure slider,
  applies just those two to the kept output: well under a second instead of another network
  pass.
* What the download's format cannot hold (transparency in a JPEG, for a PNG named .jpg) is
  said in the result text, as `enhance run` prints it.
* Without trained weights the app refuses to start, unless --allow-untrained is given (for
  tests and demos): then it prints a warning and shows a banner on the page.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import cv2
import gradio as gr
import numpy as np
import torch

from .exposure import EXPOSURE_RANGE, check_stops, linear_to_srgb
from .imageio import (SUPPORTED_EXTENSIONS, ImageIOWarning, ImageReadError, ImageWriteError, Photo, convert_pixels,
                      output_extension, read_image, write_image)
from .inference import DEVICES, MIN_TILE, resolve_device
from .models import DEFAULT_MODEL, MODELS, get_entry, list_models
from .pipeline import ANY_EXPOSURE_MODEL, blend, enhance_photo, expose_photo, input_level_note
from .weights import UntrainedModelError, WeightsError, load_model, sha256_of

MAX_FILE_SIZE = "200mb"      # uploads above this are refused by Gradio before they reach us
MAX_PIXELS = 100_000_000     # larger photos are refused from the header (read_image's bomb guard)
PREVIEW_SIDE = 2048          # long side of the browser previews; the download keeps full size
QUEUE_SIZE = 32              # requests waiting beyond this are turned away with "queue full"
DELETE_CACHE = (600, 3600)   # every 10 min, delete Gradio's cached files older than 1 hour
TILE_CHOICES = [("auto (256 px on a CPU; fits free memory on a GPU)", "auto"), ("whole image", "0"),
                ("256 px", "256"), ("512 px", "512"), ("1024 px", "1024")]

# gr.File has no clipboard source, so a pasted image is handed to its file input as if it
# had been picked: the upload then runs exactly as for the file picker.
PASTE_JS = """
() => {
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])]
      .filter((file) => file.type.startsWith("image/"));
    const input = document.querySelector("#photo-input input[type=file]");
    if (!files.length || !input) return;
    event.preventDefault();
    const transfer = new DataTransfer();
    transfer.items.add(files[0]);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
}
"""

CSS = """
#untrained-banner { background: #fde68a; color: #78350f; border: 2px solid #d97706;
                    border-radius: 8px; padding: 4px 12px; }
"""


# --------------------------------------------------------------------------- models

class ModelCache:
    """The app's models by name, each loaded once (on first use) and shared by all requests.

    Only the registered models and those added with `add` can be loaded: the name comes from
    the client, and `load_model` would also accept a path to any file on the server.
    """

    def __init__(self, device="cpu", allow_untrained: bool = False):
        self.device = device
        self.allow_untrained = allow_untrained
        self.names = list_models()  # what the dropdown offers
        self.untrained: set[str] = set()  # names running on random weights
        self._models: dict[str, torch.nn.Module] = {}
        self._run_locks: dict[str, threading.Lock] = {}
        self._load_lock = threading.Lock()  # two first requests for a model load it once

    def add(self, name: str, model: torch.nn.Module, untrained: bool = False) -> None:
        if name not in self.names:
            self.names.append(name)
        self._models[name] = model.eval()
        self._run_locks[name] = threading.Lock()
        if untrained:
            self.untrained.add(name)

    def get(self, name: str) -> torch.nn.Module:
        """The model called `name`, loading it on first use. Raises WeightsError
        (UntrainedModelError when it has no weights and untrained models are not allowed)."""
        if name not in self.names:
            raise WeightsError(f"unknown model {name!r}; choose one of {', '.join(self.names)}")
        with self._load_lock:
            if name not in self._models:
                try:
                    model, untrained = load_model(name, self.device), False
                except UntrainedModelError:
                    if not self.allow_untrained:
                        raise
                    with warnings.catch_warnings():  # the banner and the result text say it instead
                        warnings.simplefilter("ignore")
                        model, untrained = load_model(name, self.device, allow_untrained=True), True
                self.add(name, model, untrained)
            return self._models[name]

    @contextmanager
    def use(self, name: str):
        """The model, held for one photo (see the module docstring for why)."""
        model = self.get(name)
        with self._run_locks[name]:
            yield model


# --------------------------------------------------------------------------- the request

class EnhanceHandler:
    """What /enhance does: photo file + controls -> (before/after previews, result file, info text).

    `publish(path) -> path` moves a finished result where it outlives the request (in the app:
    Gradio's cache); the request's scratch folder under `scratch_dir` is removed afterwards.
    Every problem a user can cause ends as gr.Error with a one-line message.
    """

    def __init__(self, models: ModelCache, scratch_dir, publish: Callable[[str], str], max_pixels: int = MAX_PIXELS):
        self.models = models
        self.scratch_dir = Path(scratch_dir)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        self.publish = publish
        self.max_pixels = max_pixels
        self._last: Optional[_NetworkResult] = None  # see the module docstring
        self._last_lock = threading.Lock()

    def __call__(self, photo_path: Optional[str], model_name: str = DEFAULT_MODEL, tile: str = "auto",
                 strength: float = 1.0, exposure: float = 0.0, progress: Optional[gr.Progress] = None):
        if not photo_path:
            raise gr.Error("Upload a photo first.", print_exception=False)
        if progress is None:  # not `progress or ...`: Gradio's gr.Progress has len() 0, so it is falsy
            progress = lambda *args, **kwargs: None  # noqa: E731
        name = Path(photo_path).name  # the uploaded file's own name (Gradio keeps it)
        tile_size = parse_tile(tile)
        strength = parse_number(strength, "strength")
        if not 0.0 <= strength <= 1.0:
            raise gr.Error(f"strength must be between 0 and 1, got {strength}", print_exception=False)
        exposure = parse_number(exposure, "exposure")  # outside the try: gr.Error is a ValueError too
        try:
            exposure = check_stops(exposure)
        except ValueError as err:
            raise gr.Error(str(err), print_exception=False) from None
        started = time.perf_counter()
        if not os.path.exists(photo_path):
            # Gradio's cache deletes uploads after DELETE_CACHE[1] s; a page left open that long
            # still names the old file.
            raise gr.Error(f"{name}: this upload is no longer on the server (uploads are kept for "
                           f"{DELETE_CACHE[1] // 60} minutes); upload the photo again", print_exception=False)
        try:
            key = (sha256_of(photo_path), model_name, tile_size)  # the same bytes uploaded again: the same photo
        except OSError:
            key = None  # let read_image say what is wrong with the file
        with self._last_lock:
            last = self._last if self._last is not None and key is not None and self._last.key == key else None
        reused = last is not None
        if not reused:
            last = self._run_network(photo_path, name, model_name, tile_size, progress, key)
        photo, result = last.photo, expose_photo(last.enhanced, exposure)
        result = blend(photo, result, strength)

        progress(1.0, desc="Saving the result")
        out_name = Path(name).stem + "_enhanced" + output_extension(name, "same")
        with tempfile.TemporaryDirectory(dir=self.scratch_dir) as scratch:
            target = Path(scratch) / out_name
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ImageIOWarning)
                    written = write_image(target, result)
            except ImageWriteError as err:
                raise gr.Error(f"{out_name}: {err.reason}") from None
            # What the format could not hold (alpha in a JPEG), said with the download's name,
            # not the server's scratch path.
            write_notes = [str(w.message).replace(str(target), out_name) for w in caught
                           if issubclass(w.category, ImageIOWarning)]
            download = self.publish(str(written))
        elapsed = time.perf_counter() - started

        info = describe(photo, out_name, model_name, tile_label(tile_size), strength, exposure, elapsed,
                        untrained=model_name in self.models.untrained, reused=reused, write_notes=tuple(write_notes))
        return (preview(photo), preview(result)), download, info

    def _run_network(self, photo_path: str, name: str, model_name: str, tile_size, progress, key) -> "_NetworkResult":
        """Read the photo and run the network on it (exposure 0, strength 1), and keep both."""
        progress(0.0, desc="Reading the photo")
        try:
            photo = read_image(photo_path, max_pixels=self.max_pixels)
        except ImageReadError as err:
            # err.reason, not str(err): the full path is the server's temporary upload path
            raise gr.Error(f"{name}: {err.reason}", print_exception=False) from None

        def on_tile(done: int, total: int) -> None:
            # Steps, not tiles: the tiled pass calls this after every layer on every tile.
            progress((done, total), desc="Enhancing", unit="steps")

        with self._last_lock:
            self._last = None  # free the old photo before the new one's network pass
        try:
            with self.models.use(model_name) as model:
                progress(0.0, desc=f"Enhancing with {model_name}")
                enhanced = enhance_photo(model, photo, tile=tile_size, on_tile=on_tile)
        except WeightsError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except (MemoryError, torch.OutOfMemoryError):
            raise gr.Error(f"{name}: not enough memory for a {photo.megapixels:.1f} MP photo; "
                           "try a smaller tile size", print_exception=False) from None
        except OSError as err:  # e.g. a full disk under the feature maps a big photo spills to files
            raise gr.Error(f"{name}: {err.strerror or err}", print_exception=False) from None
        except Exception as err:  # noqa: BLE001 - said on the page, as enhance run says it; the log keeps the traceback
            first_line = str(err).splitlines()[0] if str(err) else ""
            raise gr.Error(f"{name}: {type(err).__name__}: {first_line}") from err
        last = _NetworkResult(key, photo, enhanced)
        with self._last_lock:
            self._last = last
        return last


@dataclasses.dataclass(frozen=True)
class _NetworkResult:
    """A photo as read and the network's output for it, kept for the next request."""

    key: Optional[tuple]  # (sha256 of the photo file, model name, tile), None if unknown
    photo: Photo
    enhanced: Photo  # exposure 0, strength 1


def unchecked_slider(*args, **kwargs) -> gr.Slider:
    """gr.Slider(*args, **kwargs) whose value reaches the handler as sent, to be checked there.

    gr.Slider.preprocess compares the value with the bounds before the app sees it: a string
    or null sent through the API fails there with a TypeError, which a client receives as
    Gradio's generic "the upstream Gradio app has raised an exception" (and the server log
    gets a traceback). The handler parses the value (a numeric string such as "0.5" is
    accepted) and checks the range, with messages that name the control. The page's own
    sliders send numbers within the bounds, so the browser sees no difference.

    Set on the instance rather than in a subclass: Gradio writes a type stub (webapp.pyi)
    next to any module that defines a component class.
    """
    slider = gr.Slider(*args, **kwargs)
    slider.preprocess = lambda payload: payload
    return slider


def model_help(names: list[str]) -> str:
    """The model dropdown's help line: each registered model's description from the registry."""
    return "; ".join(f"{name}: {get_entry(name).description}" for name in names if name in MODELS)


def parse_tile(tile) -> int | str:
    """"auto", or a tile side in pixels (0 = whole image), from the dropdown's text."""
    text = str(tile).strip().lower()
    if text == "auto":
        return "auto"
    try:
        # A typed "300 px" is what the dropdown's own choices ("512 px") look like.
        side = int(text.removesuffix("px"))
    except ValueError:
        side = -1
    if side != 0 and side < MIN_TILE:
        raise gr.Error(f"tile size must be 'auto', 0 (whole image) or at least {MIN_TILE} px; got {tile!r}",
                       print_exception=False)
    return side


def parse_number(value, name: str) -> float:
    """A slider's value as a float; an API call may send null or a string in its place."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}", print_exception=False) from None


def tile_label(tile_size) -> str:
    """The parsed tile choice as the result text names it."""
    return {"auto": "auto", 0: "whole image"}.get(tile_size, f"{tile_size} px")


def preview(photo: Photo) -> np.ndarray:
    """An 8-bit RGB(A) copy at most PREVIEW_SIDE px long, for the browser."""
    pixels = photo.pixels if photo.alpha is None else np.dstack([photo.pixels, photo.alpha])
    pixels = convert_pixels(pixels, np.uint8)
    height, width = pixels.shape[:2]
    scale = PREVIEW_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels)


def describe(photo: Photo, out_name: str, model_name: str, tile, strength: float, exposure: float,
             elapsed: float, untrained: bool, reused: bool = False, write_notes: tuple[str, ...] = ()) -> str:
    """The Markdown shown under the result."""
    height, width = photo.pixels.shape[:2]
    depth = f"{photo.bit_depth}-bit" + (" float" if photo.bit_depth == 32 else "")
    kind = f"{depth} {photo.format}" + (" with alpha" if photo.alpha is not None else "")
    how = "strength and exposure applied to the last result" if reused else "enhanced"
    lines = [f"**{photo.megapixels:.2f} MP** ({width} × {height}, {kind}) {how} in **{elapsed:.1f} s** "
             f"with `{model_name}` · tile {tile} · strength {strength:.2f} · exposure {exposure:+.2f} stops",
             f"Download: `{out_name}` (full resolution, {depth})"]
    if untrained:
        lines.append(f"⚠️ `{model_name}` has no trained weights: this result comes from random weights.")
    if strength == 0 and exposure != 0:
        lines.append("Note: strength 0 gives back the original photo, so the exposure setting has no effect.")
    if level := input_level_note(photo):  # remedies the user is not using yet
        remedies = [f"an exposure of {level.stops:+g}"] * (exposure == 0)
        remedies += ["a lower strength"] * (level.stops < 0 and strength == 1)
        if model_name != ANY_EXPOSURE_MODEL:
            remedies.append(f"the model `{ANY_EXPOSURE_MODEL}`")
        lines.append(f"Note: {level.with_advice(remedies)}.")
    lines += [f"Note: {note}" for note in [*photo.notes, *write_notes]]
    return "\n\n".join(lines)


# --------------------------------------------------------------------------- examples

def example_photos(folder) -> list[Path]:
    """Three small dark scenes made here with NumPy (no dataset images), written once to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    makers = {"dim-room.png": _dim_room, "night-street-16bit.png": _night_street,
              "evening-shapes.jpg": _evening_shapes}
    paths = []
    for file_name, make in makers.items():
        path = folder / file_name
        if not path.exists():
            pixels = make(np.random.default_rng(len(paths)))
            bits = 16 if pixels.dtype == np.uint16 else 8
            write_image(path, Photo(pixels, None, False, bits, "PNG", None, None), overwrite=True)
        paths.append(path)
    return paths


def _darken(linear: np.ndarray, rng, exposure: float, noise: float, dtype=np.uint8) -> np.ndarray:
    """A scene in linear light (H x W x 3, 0..1) as an under-exposed, noisy sRGB photo."""
    dark = linear * exposure + rng.normal(0.0, noise, linear.shape)
    encoded = linear_to_srgb(np.clip(dark, 0.0, 1.0))
    top = np.iinfo(dtype).max
    return np.rint(encoded * top).astype(dtype)


def _grid(height: int, width: int):
    return np.mgrid[0:height, 0:width].astype(np.float32) / np.float32(max(height, width))


def _dim_room(rng) -> np.ndarray:
    """A warm wall, a window, a table and a lamp glow."""
    y, x = _grid(384, 512)
    scene = np.dstack([0.55 + 0.3 * x, 0.45 + 0.2 * x, 0.35 + 0.1 * y])          # wall gradient
    scene[60:200, 300:460] = [0.5, 0.65, 0.9]                                      # window
    scene[260:] = [0.35, 0.25, 0.2]                                                # floor
    scene[230:260, 60:260] = [0.6, 0.35, 0.2]                                      # table top
    glow = np.exp(-((x - 0.25) ** 2 + (y - 0.3) ** 2) / 0.01)[..., None]           # lamp
    scene = scene * (0.6 + glow) + glow * np.array([1.0, 0.8, 0.5])
    return _darken(np.clip(scene, 0, 1), rng, exposure=0.03, noise=0.003)


def _night_street(rng) -> np.ndarray:
    """A dusk sky over buildings with lit windows and street lights, as a 16-bit photo."""
    y, x = _grid(384, 512)
    scene = np.dstack([0.1 + 0.2 * y, 0.15 + 0.25 * y, 0.45 + 0.2 * y])            # sky
    for left, top, width in ((20, 120, 110), (150, 80, 90), (260, 150, 120), (400, 100, 100)):
        scene[top:, left:left + width] = [0.25, 0.22, 0.2]                          # buildings
        for row in range(top + 15, 330, 35):
            for col in range(left + 10, left + width - 15, 25):
                if rng.random() < 0.5:
                    scene[row:row + 14, col:col + 10] = [1.0, 0.85, 0.5]           # lit windows
    scene[330:] = 0.2                                                              # road
    for cx in (0.15, 0.5, 0.85):                                                   # street lights
        scene += np.exp(-((x - cx) ** 2 + (y - 0.62) ** 2) / 0.002)[..., None] * np.array([1.0, 0.7, 0.3])
    return _darken(np.clip(scene, 0, 1), rng, exposure=0.03, noise=0.002, dtype=np.uint16)


def _evening_shapes(rng) -> np.ndarray:
    """Coloured discs and bars on a grey gradient, saved as a JPEG."""
    y, x = _grid(384, 512)
    scene = np.dstack([0.4 + 0.3 * x] * 3)
    for cx, cy, r, color in ((0.2, 0.3, 0.12, (0.9, 0.2, 0.2)), (0.5, 0.45, 0.15, (0.2, 0.8, 0.3)),
                             (0.8, 0.3, 0.1, (0.2, 0.4, 0.95))):
        scene[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = color
    for i, color in enumerate(((1, 1, 1), (0.9, 0.8, 0.1), (0.7, 0.3, 0.8))):
        scene[290 + 25 * i:305 + 25 * i, 60:460] = color
    return _darken(scene, rng, exposure=0.04, noise=0.004)


def default_examples_dir() -> Path:
    """Where the example photos are written once; "v1" changes when the scenes above change."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "saga-enhance" / "examples" / "v1"


# --------------------------------------------------------------------------- the page

def build_app(model: torch.nn.Module, model_name: str = DEFAULT_MODEL, *, untrained: bool = False,
              allow_untrained: bool = False, device=None, work_dir=None, examples_dir=None,
              max_pixels: int = MAX_PIXELS) -> gr.Blocks:
    """The Gradio app around `model`, already loaded (tests may pass any module with the
    network's interface). Other models in the dropdown load on first use, on `device`
    (default: the model's), untrained ones only with `allow_untrained`. `untrained` marks the
    start model as running on random weights: the page then shows a banner.
    `work_dir` (default: a temporary folder removed at exit) holds the per-request scratch
    folders (in work_dir/scratch) and Gradio's cached examples."""
    device = device or next(model.parameters()).device
    models = ModelCache(device, allow_untrained)
    models.add(model_name, model, untrained)
    if work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix="saga-enhance-app-"))
        atexit.register(shutil.rmtree, work_dir, ignore_errors=True)
    work_dir = Path(work_dir)
    # Cached example results must not outlive the weights that made them (Gradio's default
    # folder, .gradio/ in the current directory, is reused across runs and weight updates).
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(work_dir / "cached-examples")
    try:
        examples = example_photos(examples_dir or default_examples_dir())
    except (OSError, ImageWriteError):  # e.g. a read-only home folder
        examples = example_photos(work_dir / "examples")
    # Served from where they are, not copied into Gradio's cache, whose hourly clean-up would
    # delete the copies (Gradio 6.31 does not honour its own keep-in-cache mark for examples).
    gr.set_static_paths([str(path) for path in examples])

    with gr.Blocks(title="saga-enhance", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# saga-enhance\nLow-light photo enhancement. Drop a dark photo (or click to browse, "
                    "or paste an image), then press **Enhance**. The download keeps the photo's format, "
                    "bit depth, transparency and metadata.")
        if untrained:
            gr.Markdown(f"**⚠️ Untrained model:** `{model_name}` has no trained weights, so it runs on "
                        "random weights and its results are meaningless. This server was started with "
                        "`--allow-untrained` for testing.", elem_id="untrained-banner")
        with gr.Row():
            with gr.Column():
                photo = gr.File(label="Dark photo", file_types=list(SUPPORTED_EXTENSIONS), elem_id="photo-input")
                model_choice = gr.Dropdown(models.names, value=model_name, label="Model",
                                           info=model_help(models.names))
                tile = gr.Dropdown(TILE_CHOICES, value="auto", allow_custom_value=True, label="Tile size",
                                   info="Tiles bound the memory a big photo needs; "
                                        "the result is the same as in one piece.")
                strength = unchecked_slider(0.0, 1.0, value=1.0, step=0.05, label="Strength",
                                            info="1 = the model's output, 0 = the original photo.")
                exposure = unchecked_slider(*EXPOSURE_RANGE, value=0.0, step=0.1, label="Exposure (stops)",
                                            info="Brighter (+) or darker (-) than the model chose; "
                                                 "+1 is twice the light.")
                button = gr.Button("Enhance", variant="primary", elem_id="enhance-button")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", format="png", interactive=False,
                                        elem_id="result-slider")
                download = gr.File(label="Full-resolution result", interactive=False, elem_id="result-file")
                info = gr.Markdown(label="Details", elem_id="result-info")

        handler = EnhanceHandler(models, work_dir / "scratch", publish=download.move_resource_to_block_cache,
                                 max_pixels=max_pixels)

        def enhance(photo_path, model_name, tile, strength, exposure, progress=gr.Progress()):
            """Enhance a dark photo. Returns the before/after previews (PNG), the full-resolution
            result in the photo's own format and bit depth, and a line with size and time."""
            try:
                return handler(photo_path, model_name, tile, strength, exposure, progress)
            finally:
                remove_stray_temp_files(Path(photo.GRADIO_CACHE))

        controls = [photo, model_choice, tile, strength, exposure]
        button.click(enhance, controls, [slider, download, info], api_name="enhance")
        gr.Examples([[str(path), model_name, "auto", 1.0, 0.0] for path in examples],
                    inputs=controls, outputs=[slider, download, info], fn=enhance,
                    cache_examples=True, cache_mode="lazy", visible_columns=[0],
                    example_labels=["Dim room (PNG)", "Night street (16-bit PNG)", "Evening shapes (JPEG)"],
                    label="Examples: dark scenes made by the app itself")

    # One request at a time: a GPU is kept busy by one photo, and on a CPU PyTorch already
    # uses every core for one photo, so running two at once only doubles the memory.
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def remove_stray_temp_files(cache_dir: Path, min_age: float = 600.0) -> None:
    """Delete what Gradio 6.31 leaves behind in its cache folder, one or two entries per request.

    - Empty `tmp*` files: File.preprocess opens tempfile.NamedTemporaryFile(delete=False) there
      and never writes, tracks or deletes it. One untouched for `min_age` seconds holds nothing.
    - Empty folders: each upload or result lives in a folder named by its hash, and the hourly
      clean-up deletes the file but not the folder. One left empty for an hour longer than
      files are kept is not about to receive a file (a folder's time changes when one arrives).
    """
    now = time.time()
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if entry.stat().st_mtime < now - DELETE_CACHE[1] - 3600:
                    os.rmdir(entry.path)  # refused unless empty
            elif (entry.name.startswith("tmp") and entry.is_file(follow_symlinks=False)
                    and entry.stat().st_size == 0 and entry.stat().st_mtime < now - min_age):
                os.unlink(entry.path)
        except OSError:
            pass  # not empty, gone already, or not ours to delete


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, **options):
    """Start the server (blocking unless prevent_thread_lock=True); returns Gradio's launch() result."""
    return demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, js=PASTE_JS, css=CSS,
                       **options)


# --------------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 serves the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"registered model ({', '.join(list_models())}) or a .safetensors file")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs (default auto)")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="start even if the model has no trained weights (random weights: tests and demos only)")


def main(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"error: --port {args.port}: must be between 0 and 65535", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    untrained = False
    try:
        model = load_model(args.model, device)
    except UntrainedModelError as err:
        if not args.allow_untrained:
            print(f"error: {err}. (--allow-untrained starts the app anyway, with random weights, for testing)",
                  file=sys.stderr)
            return 2
        print(f"WARNING: {err}.\nWARNING: --allow-untrained: SERVING RANDOM WEIGHTS; results are meaningless.",
              file=sys.stderr)
        with warnings.catch_warnings():  # said just above
            warnings.simplefilter("ignore")
            model = load_model(args.model, device, allow_untrained=True)
        untrained = True
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    demo = build_app(model, args.model, untrained=untrained, allow_untrained=args.allow_untrained, device=device)
    # A service manager stops us with SIGTERM: handle it like Ctrl-C, so that Gradio shuts down
    # cleanly (deleting its cached files) and atexit removes the work dir.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        launch(demo, args.host, args.port)
    except OSError as err:  # e.g. the port is taken
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m enhance.webapp", description="Start the saga-enhance web app.")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
