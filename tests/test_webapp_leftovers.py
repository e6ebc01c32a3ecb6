"""The web app: JPEGs named .jfif/.jpe, slider values sent as text through the API, strength 0.

Helpers and the served app come from tests/test_app.py; see its docstring for the stand-in network.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import tifffile
import torch

from enhance import webapp
from enhance.imageio import read_image
from enhance.models import create_model
from test_app import (SquareRootNet, dark_pixels, gradio_client, make_handler, save_photo,  # noqa: F401 (fixtures)
                      server, square_root_net)


def write_source(folder: Path, suffix: str) -> Path:
    """A dark photo whose content matches `suffix`: JPEG for every JPEG name, a 16-bit TIFF, a WebP."""
    path = folder / f"night{suffix}"
    if suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, dark_pixels(40, 48, np.uint16), photometric="rgb")
    elif suffix.lower() == ".webp":
        save_photo(path, dark_pixels(40, 48))
    else:  # write_image only writes the usual JPEG suffixes: write .jpg, then rename
        save_photo(folder / "night-source.jpg", dark_pixels(40, 48)).rename(path)
    return path


# --------------------------------------------------------------------------- 1. download name and format

@pytest.mark.parametrize("suffix, download, fmt, bits", [
    (".jfif", "night_enhanced.jpg", "JPEG", 8),   # Windows browsers save web JPEGs as .jfif
    (".JFIF", "night_enhanced.jpg", "JPEG", 8),
    (".jpe", "night_enhanced.jpg", "JPEG", 8),
    (".jpeg", "night_enhanced.jpeg", "JPEG", 8),  # the usual names keep their spelling
    (".JPG", "night_enhanced.JPG", "JPEG", 8),
    (".webp", "night_enhanced.webp", "WEBP", 8),
    (".tif", "night_enhanced.tif", "TIFF", 16),
    (".tiff", "night_enhanced.tiff", "TIFF", 16),
])
def test_download_keeps_the_uploads_format_and_a_sensible_name(tmp_path, suffix, download, fmt, bits):
    # A .jfif or .jpe JPEG came back as a PNG.
    source = write_source(tmp_path, suffix)
    assert read_image(source).bit_depth == bits

    _, path, info = make_handler(square_root_net(), tmp_path)(str(source))

    result = read_image(path)
    assert Path(path).name == download and f"Download: `{download}`" in info
    assert (result.format, result.bit_depth) == (fmt, bits)
    assert result.pixels.mean() > read_image(source).pixels.mean() + 40  # enhanced, not a copy


def test_jfif_and_jpe_uploads_are_accepted_by_the_file_input():
    # Gradio checks the upload's suffix against file_types before the app sees it.
    assert {".jfif", ".jpe"} <= set(webapp.SUPPORTED_EXTENSIONS)


def test_client_gets_a_jfif_back_as_a_jpg(server, gradio_client, tmp_path):
    # Before: Gradio refused the upload ("Invalid file type"), and the handler would have written a PNG.
    source = write_source(tmp_path, ".jfif")
    client = gradio_client.Client(server.url, verbose=False, download_files=tmp_path / "downloads")

    _, download, _ = client.predict(gradio_client.handle_file(str(source)), api_name="/enhance")

    assert Path(download).name == "night_enhanced.jpg" and read_image(download).format == "JPEG"


# --------------------------------------------------------------------------- 2. slider values through the API

def test_sliders_accept_numeric_text_from_an_api_client(server, gradio_client, tmp_path):
    source = save_photo(tmp_path / "dark.png", dark_pixels(40, 48))
    client = gradio_client.Client(server.url, verbose=False, download_files=tmp_path / "downloads")

    _, _, info = client.predict(gradio_client.handle_file(str(source)), "saga-s", "auto", "0.5", "1",
                                api_name="/enhance")

    assert "strength 0.50 · exposure +1.00 stops" in info


@pytest.mark.parametrize("strength, exposure, message", [
    ("full", 0.0, "strength must be a number, got 'full'"),
    (None, 0.0, "strength must be a number, got None"),
    (2, 0.0, "strength must be between 0 and 1, got 2.0"),
    (1.0, None, "exposure must be a number, got None"),
    (1.0, "bright", "exposure must be a number, got 'bright'"),
    (1.0, 7, "exposure 7: must be between -3 and 3 stops"),
])
def test_bad_slider_values_from_an_api_client_get_the_apps_own_message(server, gradio_client, tmp_path,
                                                                        strength, exposure, message):
    # Before: Gradio's slider compared text or null with its bounds, and the client got Gradio's
    # generic "The upstream Gradio app has raised an exception ...".
    source = save_photo(tmp_path / "dark.png", dark_pixels(40, 48))
    client = gradio_client.Client(server.url, verbose=False, download_files=tmp_path / "downloads")

    with pytest.raises(gradio_client.exceptions.AppError) as caught:
        client.predict(gradio_client.handle_file(str(source)), "saga-s", "auto", strength, exposure,
                       api_name="/enhance")

    assert str(caught.value) == message  # the whole message, one line, not quoted


def test_the_page_still_draws_gradios_own_sliders(server):
    sliders = [c for c in server.demo.config["components"] if c["props"].get("label") in ("Strength", "Exposure (stops)")]
    assert [c["type"] for c in sliders] == ["slider", "slider"]
    assert [(c["props"]["minimum"], c["props"]["maximum"]) for c in sliders] == [(0.0, 1.0), (-3.0, 3.0)]


def test_no_type_stub_is_written_next_to_the_app():
    # Gradio writes a .pyi beside any module that defines a component class; one beside
    # webapp.py would be a stale copy of it that type checkers read instead.
    assert not Path(webapp.__file__).with_suffix(".pyi").exists()


def test_handler_errors_for_the_exposure_are_not_quoted(tmp_path):
    # gr.Error is a ValueError: the exposure's "must be a number" error was caught again and
    # re-raised as its repr, in quotes.
    source = save_photo(tmp_path / "dark.png", dark_pixels(40, 48))
    with pytest.raises(gr.Error) as caught:
        make_handler(square_root_net(), tmp_path)(str(source), exposure="bright")
    assert caught.value.message == "exposure must be a number, got 'bright'"


# --------------------------------------------------------------------------- 3. strength 0

class CountingNet(SquareRootNet):
    """SquareRootNet that counts its forward passes."""

    passes = 0

    def forward(self, x: torch.Tensor, run_op=None) -> torch.Tensor:
        self.passes += 1
        return super().forward(x)


def test_strength_zero_still_runs_the_network_so_the_next_strength_is_quick(tmp_path):
    # Deliberate: skipping the network at strength 0 would only move the wait to the next press
    # of Enhance, after the user raises the strength, which is what they do next.
    model = CountingNet(create_model("saga-s").config).eval()
    handler = make_handler(model, tmp_path)
    source = save_photo(tmp_path / "dark.png", dark_pixels(40, 48))

    _, download, _ = handler(str(source), strength=0.0)
    assert model.passes == 1
    np.testing.assert_array_equal(read_image(download).pixels, read_image(source).pixels)  # the original

    _, _, info = handler(str(source), strength=0.6)
    assert model.passes == 1 and "applied to the last result" in info


class BrokenNet(SquareRootNet):
    """A network whose pass fails as a full disk or a bug would."""

    def __init__(self, error: Exception):
        super().__init__(create_model("saga-s").config)
        self.error = error

    def forward(self, x, run_op=None):
        raise self.error


@pytest.mark.parametrize("error, message", [
    (OSError(28, "No space left on device"), "night.png: No space left on device"),
    (RuntimeError("something inside PyTorch\nmore lines"), "night.png: RuntimeError: something inside PyTorch"),
])
def test_a_failed_network_pass_is_said_on_the_page_with_the_photos_name(tmp_path, error, message):
    # Before: Gradio's generic "Error", with nothing to go on.
    source = save_photo(tmp_path / "night.png", dark_pixels(24, 32))
    with pytest.raises(gr.Error) as raised:
        make_handler(BrokenNet(error).eval(), tmp_path)(str(source), tile="0")
    assert raised.value.message == message
