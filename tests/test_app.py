"""Tests for the web app (enhance/webapp.py, app.py).

Three layers:
* The request handler called directly: outputs, readable errors, the strength and exposure controls,
  16-bit and alpha round trips, tile parsing, model loading and the start-up refusal.
* End to end through gradio_client against the app launched in this process on a free port:
  one request, a bad file, and 8 concurrent requests (then: no scratch files left).
* A real browser (Debian's /usr/bin/chromium driven by Playwright): upload, Enhance, result
  shown, screenshot. Skipped when chromium or playwright is missing (.ci/install_browser.sh).

Which model: no trained weights exist yet, and random weights do not reliably brighten a
photo. The end-to-end tests therefore serve `SquareRootNet`: the saga-s network class with
its forward replaced by sqrt(x), a deterministic brightening that keeps everything the
pipeline reads from a model (config, multiple_of, capabilities, saga_layers, parameters).
The handler tests that compare against the pipeline use the real saga-s network with
seeded random weights.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import httpx
import numpy as np
import tifffile
import pytest
import torch

from enhance import webapp
from enhance.imageio import Photo, read_image, write_image
from enhance.models import create_model, list_models
from enhance.network import SAGAUNet
from enhance.pipeline import enhance_photo
from enhance.weights import UntrainedModelError

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class SquareRootNet(SAGAUNet):
    """saga-s with a fixed, brightening forward pass (see the module docstring)."""

    def forward(self, x: torch.Tensor, run_op=None) -> torch.Tensor:
        return x.clamp(0, 1).sqrt()  # pixel-wise: the tiled runner's run_op is not needed


def square_root_net() -> SquareRootNet:
    return SquareRootNet(create_model("saga-s").config).eval()


def dark_pixels(height: int, width: int, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A dark, noisy gradient: values in the lowest fifth of the range."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    ramp = np.linspace(0.02, 0.15, width)[None, :, None] * np.ones((height, 1, 3))
    return np.rint(np.clip(ramp + rng.normal(0, 0.01, ramp.shape), 0, 0.2) * top).astype(dtype)


def save_photo(path: Path, pixels: np.ndarray, alpha: np.ndarray | None = None) -> Path:
    bits = 16 if pixels.dtype == np.uint16 else 8
    return write_image(path, Photo(pixels, alpha, False, bits, "PNG", None, None))


def make_handler(model, tmp_path: Path, name: str = "saga-s") -> webapp.EnhanceHandler:
    """A handler as the app builds it, publishing results to tmp_path/published instead of Gradio's cache."""
    models = webapp.ModelCache("cpu")
    models.add(name, model)
    published = tmp_path / "published"

    def publish(path: str) -> str:
        target = published / Path(path).parent.name
        target.mkdir(parents=True)
        return shutil.copy(path, target)

    return webapp.EnhanceHandler(models, tmp_path / "scratch", publish)


def scratch_files(handler_or_dir) -> list[Path]:
    folder = Path(getattr(handler_or_dir, "scratch_dir", handler_or_dir))
    return sorted(folder.rglob("*"))


# --------------------------------------------------------------------------- the handler

@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_handler_returns_previews_download_and_info(tmp_path, suffix):
    handler = make_handler(square_root_net(), tmp_path)
    source = save_photo(tmp_path / f"dark{suffix}", dark_pixels(48, 64))

    (before, after), download, info = handler(str(source))

    assert before.shape == after.shape == (48, 64, 3) and after.dtype == np.uint8
    assert Path(download).name == f"dark_enhanced{suffix}"
    result = read_image(download)
    assert result.pixels.shape == (48, 64, 3) and result.format == ("PNG" if suffix == ".png" else "JPEG")
    assert result.pixels.mean() > read_image(source).pixels.mean() + 40  # sqrt brightens a dark photo a lot
    assert "0.00 MP" in info and "64 × 48" in info and " s** with `saga-s`" in info
    assert scratch_files(handler) == []  # the request's scratch folder is gone


@pytest.mark.parametrize("content, reason", [
    (b"this is not an image", "not an image file, or an unsupported image format"),
    (b"", "empty file (0 bytes)"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated or corrupt image data"),
], ids=["text", "empty", "broken-png"])
def test_bad_file_gives_a_one_line_error_with_the_reason(tmp_path, content, reason):
    handler = make_handler(square_root_net(), tmp_path)
    bad = tmp_path / "holiday.png"
    bad.write_bytes(content)

    with pytest.raises(gr.Error) as caught:
        handler(str(bad))

    message = caught.value.message
    assert message.startswith("holiday.png: ") and reason in message
    assert "\n" not in message and str(tmp_path) not in message  # no server paths, no traceback
    assert scratch_files(handler) == []


def test_an_expired_upload_asks_for_the_photo_again(tmp_path):
    with pytest.raises(gr.Error) as caught:
        make_handler(square_root_net(), tmp_path)(str(tmp_path / "gone" / "holiday.png"))
    message = caught.value.message
    assert message.startswith("holiday.png: this upload is no longer on the server") and str(tmp_path) not in message


def test_no_photo_asks_for_one(tmp_path):
    with pytest.raises(gr.Error, match="Upload a photo first"):
        make_handler(square_root_net(), tmp_path)(None)


def test_default_strength_gives_the_models_own_output(tmp_path, random_saga_s):
    handler = make_handler(random_saga_s, tmp_path)
    source = save_photo(tmp_path / "dark.png", dark_pixels(40, 56))
    photo = read_image(source)
    expected = enhance_photo(random_saga_s, photo).pixels

    _, download, _ = handler(str(source))                      # strength left at its default
    np.testing.assert_array_equal(read_image(download).pixels, expected)

    _, download, _ = handler(str(source), strength=0.0)        # 0: the original photo
    np.testing.assert_array_equal(read_image(download).pixels, photo.pixels)

    _, download, _ = handler(str(source), strength=0.5)        # halfway, within rounding
    halfway = (expected.astype(np.float32) + photo.pixels) / 2
    assert np.abs(read_image(download).pixels - halfway).max() <= 0.5 + 1e-3


def test_exposure_control_brightens_the_result_and_refuses_out_of_range(tmp_path, random_saga_s):
    handler = make_handler(random_saga_s, tmp_path)
    source = save_photo(tmp_path / "dark.png", dark_pixels(40, 56))
    expected = enhance_photo(random_saga_s, read_image(source), exposure=0.5).pixels

    _, download, info = handler(str(source), exposure=0.5)
    np.testing.assert_array_equal(read_image(download).pixels, expected)
    assert "exposure +0.50 stops" in info

    with pytest.raises(gr.Error, match="exposure 4: must be between -3 and 3 stops"):
        handler(str(source), exposure=4.0)
    # An API call may send null or text where the page's sliders send numbers.
    with pytest.raises(gr.Error, match="exposure must be a number, got None"):
        handler(str(source), exposure=None)
    with pytest.raises(gr.Error, match="strength must be a number, got 'full'"):
        handler(str(source), strength="full")
    with pytest.raises(gr.Error, match="strength must be between 0 and 1, got nan"):
        handler(str(source), strength=float("nan"))
    assert scratch_files(handler) == []


class CountingNet(SquareRootNet):
    """SquareRootNet that counts its forward passes."""

    passes = 0

    def forward(self, x: torch.Tensor, run_op=None) -> torch.Tensor:
        self.passes += 1
        return super().forward(x)


def test_moving_strength_or_exposure_reuses_the_last_network_output(tmp_path):
    model = CountingNet(create_model("saga-s").config).eval()
    handler = make_handler(model, tmp_path)
    source = save_photo(tmp_path / "dark.png", dark_pixels(40, 56))
    photo = read_image(source)

    _, _, info = handler(str(source))
    assert model.passes == 1 and "enhanced in" in info
    _, download, info = handler(str(source), strength=0.5, exposure=0.7)
    assert model.passes == 1 and "applied to the last result" in info
    fresh = webapp.blend(photo, enhance_photo(model, photo, exposure=0.7), 0.5)  # the same, computed anew
    np.testing.assert_array_equal(read_image(download).pixels, fresh.pixels)

    again = tmp_path / "upload-2" / "dark.png"  # the same photo uploaded again: another path, same bytes
    again.parent.mkdir()
    shutil.copy(source, again)
    passes = model.passes
    _, _, info = handler(str(again), strength=0.8)
    assert model.passes == passes and "applied to the last result" in info

    model.passes = 0
    _, _, info = handler(str(source), tile="0")  # another tile size runs the network again
    assert "tile whole image" in info
    source.unlink()
    save_photo(source, dark_pixels(40, 56, seed=1))  # and so does a changed file
    _, download, _ = handler(str(source), tile="0")
    assert model.passes == 2
    np.testing.assert_array_equal(read_image(download).pixels, enhance_photo(model, read_image(source)).pixels)


def test_16bit_png_gives_a_16bit_png_download(tmp_path):
    handler = make_handler(square_root_net(), tmp_path)
    pixels = dark_pixels(32, 48, dtype=np.uint16)
    source = save_photo(tmp_path / "deep.png", pixels)

    (before, _), download, info = handler(str(source))

    result = read_image(download)
    assert Path(download).suffix == ".png" and result.bit_depth == 16 and result.pixels.dtype == np.uint16
    assert np.any(result.pixels % 257 != 0)  # real 16-bit values, not 8-bit ones scaled up
    expected = np.sqrt(pixels / 65535.0) * 65535  # what the sqrt stand-in computes, within float32 rounding
    assert np.abs(result.pixels - expected).max() <= 2
    assert before.dtype == np.uint8 and "16-bit PNG" in info


def test_float_tiff_gives_a_float_tiff_download(tmp_path):
    handler = make_handler(square_root_net(), tmp_path)
    pixels = dark_pixels(32, 48).astype(np.float32) / 255
    source = tmp_path / "export.tif"
    tifffile.imwrite(source, pixels, photometric="rgb")

    (before, _), download, info = handler(str(source))

    result = tifffile.imread(download)
    assert Path(download).suffix == ".tif" and result.dtype == np.float32
    np.testing.assert_allclose(result, np.sqrt(pixels), atol=1e-6)  # the sqrt stand-in, unrounded
    assert before.dtype == np.uint8 and "32-bit float TIFF" in info


def test_rgba_alpha_is_kept(tmp_path):
    handler = make_handler(square_root_net(), tmp_path)
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (32, 1))
    source = save_photo(tmp_path / "cutout.png", dark_pixels(32, 48), alpha=alpha)

    (before, after), download, _ = handler(str(source))

    result = read_image(download)
    np.testing.assert_array_equal(result.alpha, alpha)
    assert before.shape == after.shape == (32, 48, 4)  # the previews show the transparency too


def test_what_the_download_format_cannot_hold_is_said_in_the_result_text(tmp_path):
    handler = make_handler(square_root_net(), tmp_path)
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (32, 1))
    misnamed = save_photo(tmp_path / "cutout.png", dark_pixels(32, 48), alpha=alpha).rename(tmp_path / "cutout.jpg")

    _, download, info = handler(str(misnamed))  # PNG bytes under a .jpg name: the download is a JPEG

    assert read_image(download).alpha is None
    assert "Note: cutout_enhanced.jpg: JPEG cannot store transparency; the alpha channel was dropped" in info
    assert str(tmp_path) not in info


def test_exposure_at_strength_zero_is_said_to_do_nothing(tmp_path):
    handler = make_handler(square_root_net(), tmp_path)
    source = save_photo(tmp_path / "dark.png", dark_pixels(24, 32))
    _, download, info = handler(str(source), strength=0.0, exposure=1.0)
    assert "strength 0 gives back the original photo" in info
    np.testing.assert_array_equal(read_image(download).pixels, read_image(source).pixels)


def test_stray_empty_temp_files_and_folders_of_gradio_are_removed(tmp_path):
    old = time.time() - 3600
    for name, content, mtime in (("tmpold", b"", old), ("tmpnew", b"", None), ("tmpfull", b"x", old),
                                 ("photo.png", b"", old)):
        (tmp_path / name).write_bytes(content)
        if mtime:
            os.utime(tmp_path / name, (mtime, mtime))
    for name, mtime in (("a" * 64, time.time() - 3 * 3600), ("b" * 64, None), ("c" * 64, time.time() - 3 * 3600)):
        (tmp_path / name).mkdir()  # hash folders: old and empty, recent and empty, old with a file
        if name.startswith("c"):
            (tmp_path / name / "kept.png").write_bytes(b"x")
        if mtime:
            os.utime(tmp_path / name, (mtime, mtime))
    webapp.remove_stray_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b" * 64, "c" * 64, "photo.png", "tmpfull", "tmpnew"]


def test_previews_of_large_photos_are_downscaled():
    photo = Photo(np.zeros((300, 3000, 3), np.uint16), None, False, 16, "PNG", None, None)
    small = webapp.preview(photo)
    assert small.shape == (205, 2048, 3) and small.dtype == np.uint8


def test_model_dropdown_says_what_each_model_is_for():
    names = list_models()
    text = webapp.model_help(names + ["my-run.safetensors"])  # an added, unregistered model has no entry
    assert [part.split(":")[0] for part in text.split("; ")] == names
    assert "much darker or brighter" in text


def test_tile_sizes():
    assert webapp.parse_tile("auto") == "auto"
    assert webapp.parse_tile("0") == 0
    assert webapp.parse_tile(" 512 ") == 512
    for bad in ("big", "64", "-1"):
        with pytest.raises(gr.Error, match="tile size"):
            webapp.parse_tile(bad)


def test_models_load_once_per_name_and_untrained_ones_only_when_allowed(tmp_path, monkeypatch):
    calls = []

    def fake_load_model(name, device="cpu", *, allow_untrained=False):
        calls.append((name, allow_untrained))
        time.sleep(0.05)  # long enough for the other threads to ask at the same time
        if not allow_untrained:
            raise UntrainedModelError(f"model {name!r} has no trained weights yet")
        return square_root_net()

    monkeypatch.setattr(webapp, "load_model", fake_load_model)

    refusing = webapp.ModelCache("cpu", allow_untrained=False)
    handler = webapp.EnhanceHandler(refusing, tmp_path / "scratch", publish=str)
    source = save_photo(tmp_path / "dark.png", dark_pixels(16, 16))
    with pytest.raises(gr.Error, match="'saga-l' has no trained weights yet"):
        handler(str(source), model_name="saga-l")

    # The name comes from the client: only the offered models load, never a path on the server.
    with pytest.raises(gr.Error, match="unknown model '/etc/passwd'; choose one of saga-s, saga-l"):
        handler(str(source), model_name="/etc/passwd")

    calls.clear()
    allowing = webapp.ModelCache("cpu", allow_untrained=True)
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: allowing.get("saga-l"), range(4)))
    assert all(m is models[0] for m in models)
    assert calls == [("saga-l", False), ("saga-l", True)]  # loaded once, for all four requests
    assert allowing.untrained == {"saga-l"}


def serve_args(**overrides):
    args = dict(host="127.0.0.1", port=0, model="saga-s", device="cpu", allow_untrained=False)
    return SimpleNamespace(**{**args, **overrides})


def test_start_refuses_untrained_weights_unless_allowed(tmp_path, monkeypatch, capsys):
    def fake_load_model(name, device="cpu", *, allow_untrained=False):
        if not allow_untrained:
            raise UntrainedModelError(f"model {name!r} has no trained weights yet")
        return square_root_net()

    launched = []
    monkeypatch.setattr(webapp, "load_model", fake_load_model)
    monkeypatch.setattr(webapp, "launch", lambda demo, host, port: launched.append(demo))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the example photos go here
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cached-examples"))  # restored afterwards

    assert webapp.main(serve_args()) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no trained weights" in error and "--allow-untrained" in error
    assert launched == []

    assert webapp.main(serve_args(allow_untrained=True)) == 0
    assert "RANDOM WEIGHTS" in capsys.readouterr().err
    banners = [b for b in launched[0].blocks.values() if getattr(b, "elem_id", None) == "untrained-banner"]
    assert len(banners) == 1 and "Untrained model" in banners[0].value


def test_a_port_out_of_range_is_a_one_line_error(capsys):
    assert webapp.main(serve_args(port=99999)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--port 99999" in error


def test_serve_subcommand_and_app_py_share_the_options():
    from enhance.cli import build_parser

    args = build_parser("serve").parse_args(["serve", "--host", "0.0.0.0", "--port", "8000", "--model", "saga-l"])
    assert (args.command, args.host, args.port, args.model, args.allow_untrained) == (
        "serve", "0.0.0.0", 8000, "saga-l", False)


def test_example_photos_are_dark_and_made_once(tmp_path):
    paths = webapp.example_photos(tmp_path)
    assert len(paths) == 3
    for path in paths:
        photo = read_image(path)
        top = 65535 if photo.bit_depth == 16 else 255
        assert photo.pixels.mean() / top < 0.25
    stamp = paths[0].stat().st_mtime_ns
    webapp.example_photos(tmp_path)
    assert paths[0].stat().st_mtime_ns == stamp


# --------------------------------------------------------------------------- end to end

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app serving SquareRootNet on a free localhost port, in this process."""
    work_dir = tmp_path_factory.mktemp("app-work")
    demo = webapp.build_app(square_root_net(), "saga-s", work_dir=work_dir,
                            examples_dir=tmp_path_factory.mktemp("examples"))
    port = free_port()
    webapp.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", demo=demo, scratch=work_dir / "scratch")
    cached = tracked_files(demo)
    demo.close()
    assert [f for f in cached if Path(f).exists()] == []  # closing the app deletes Gradio's cached files


def tracked_files(demo) -> list[str]:
    """Files Gradio has cached for this app (uploads, previews, results): what delete_cache removes."""
    return [f for files in demo.temp_file_sets for f in files]


@pytest.fixture(scope="module")
def gradio_client():
    return pytest.importorskip("gradio_client", reason="gradio_client is not installed")


def test_client_enhances_a_photo(server, gradio_client, tmp_path):
    source = save_photo(tmp_path / "street.png", dark_pixels(72, 96))
    client = gradio_client.Client(server.url, verbose=False, download_files=tmp_path / "downloads")

    (before, after), download, info = client.predict(gradio_client.handle_file(str(source)), api_name="/enhance")

    result = read_image(download)
    assert Path(download).name == "street_enhanced.png" and result.pixels.shape == (72, 96, 3)
    assert result.pixels.mean() > read_image(source).pixels.mean() + 40
    assert read_image(after).pixels.shape == (72, 96, 3) and Path(after).suffix == ".png"
    assert "enhanced in" in info


def test_client_gets_the_reason_for_a_bad_file(server, gradio_client, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"shopping list: eggs, milk")
    client = gradio_client.Client(server.url, verbose=False, download_files=tmp_path / "downloads")

    with pytest.raises(gradio_client.exceptions.AppError, match="notes.png: not an image file"):
        client.predict(gradio_client.handle_file(str(bad)), api_name="/enhance")


def test_examples_outlive_the_cache_clean_up(tmp_path, monkeypatch):
    """Gradio deletes cached files after DELETE_CACHE[1] s; the example photos must not go with them."""
    monkeypatch.setattr(webapp, "DELETE_CACHE", (1, 1))
    demo = webapp.build_app(square_root_net(), "saga-s", work_dir=tmp_path / "work", examples_dir=tmp_path / "examples")
    port = free_port()
    webapp.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        time.sleep(3)  # two clean-ups, each deleting files older than a second
        api = f"http://127.0.0.1:{port}/gradio_api/call/load_example"
        event_id = httpx.post(api, json={"data": [0]}, timeout=30).json()["event_id"]
        events = httpx.get(f"{api}/{event_id}", timeout=60).text
    finally:
        demo.close()
    assert "event: complete" in events and "dim-room_enhanced.png" in events, events[:300]


def test_uploads_are_limited_to_200_mb(server, gradio_client, tmp_path):
    big = tmp_path / "huge.png"
    with open(big, "wb") as f:  # sparse: 201 MB on paper, nothing on disk
        f.truncate(201 * 1024 * 1024)
    # gradio_client reads the limit from the app and refuses before uploading ...
    client = gradio_client.Client(server.url, verbose=False, download_files=tmp_path / "downloads")
    with pytest.raises(ValueError, match="exceeds the maximum file size of 209715200 bytes"):
        client.predict(gradio_client.handle_file(str(big)), api_name="/enhance")
    # ... and the server refuses an upload that ignores it.
    with open(big, "rb") as f:
        response = httpx.post(server.url + "gradio_api/upload", files={"files": (big.name, f, "image/png")},
                              timeout=60)
    assert response.status_code == 413


def test_eight_concurrent_requests_all_succeed_and_leave_no_scratch_files(server, gradio_client, tmp_path):
    sources = [save_photo(tmp_path / f"photo{i}.png", dark_pixels(40 + 8 * i, 64, seed=i)) for i in range(8)]

    def one_user(i: int):
        client = gradio_client.Client(server.url, verbose=False, download_files=tmp_path / f"user{i}")
        _, download, _ = client.predict(gradio_client.handle_file(str(sources[i])), "saga-s", "auto", 1.0,
                                        api_name="/enhance")
        return read_image(download).pixels.shape

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        shapes = list(pool.map(one_user, range(8)))
    print(f"8 concurrent requests: {time.perf_counter() - started:.1f} s")

    assert shapes == [(40 + 8 * i, 64, 3) for i in range(8)]
    assert scratch_files(server.scratch) == []  # every request removed its scratch folder
    cached = {Path(f).name for f in tracked_files(server.demo)}
    assert {f"photo{i}_enhanced.png" for i in range(8)} <= cached  # the results age out with delete_cache


# --------------------------------------------------------------------------- a real browser

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (.ci/install_browser.sh installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_browser_upload_enhance_and_screenshot(server, browser, tmp_path):
    source = webapp.example_photos(tmp_path / "examples")[0]  # the dim room, 512 x 384
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server.url, wait_until="networkidle")
        page.locator("#photo-input input[type=file]").set_input_files(str(source))
        # The upload is done when the file shows up with its download link.
        page.locator(f'#photo-input a[download="{source.name}"]').wait_for(timeout=30_000)
        page.locator("#enhance-button").click()

        page.locator('#result-file a[download="dim-room_enhanced.png"]').wait_for(timeout=120_000)
        images = page.locator("#result-slider img")
        assert images.count() == 2
        for i in range(2):  # both previews were fetched and decoded by the browser
            assert images.nth(i).evaluate("img => img.complete && img.naturalWidth") == 512
        assert "enhanced in" in page.locator("#result-info").inner_text()

        screenshot = tmp_path / "app.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        if os.environ.get("SAGA_UPDATE_SCREENSHOT") == "1":
            shutil.copy(screenshot, ROOT / "docs" / "app.png")
    finally:
        page.close()


def test_browser_paste_uploads_the_image(server, browser, tmp_path):
    source = save_photo(tmp_path / "pasted.png", dark_pixels(24, 32))
    page = browser.new_page()
    try:
        page.goto(server.url, wait_until="networkidle")
        # What a paste of an image delivers: a ClipboardEvent whose clipboardData holds a File.
        page.evaluate("""async ({data, name}) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/png"}));
            document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true}));
        }""", {"data": base64.b64encode(source.read_bytes()).decode(), "name": source.name})
        page.locator(f'#photo-input a[download="{source.name}"]').wait_for(timeout=30_000)
    finally:
        page.close()


def test_a_photo_that_is_not_dark_gets_a_note_on_toning_it_down(tmp_path):
    handler = make_handler(square_root_net(), tmp_path)
    daylight = save_photo(tmp_path / "daylight.png", dark_pixels(40, 56) + 150)
    *_, info = handler(str(daylight))
    assert "Note: this photo is not dark" in info and "an exposure of -1, a lower strength" in info
    *_, info = handler(str(save_photo(tmp_path / "dark.png", dark_pixels(40, 56))))
    assert "not dark" not in info
