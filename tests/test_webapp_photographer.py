"""The web app as a photographer uses it: bugs found by dropping real-world photos into it.

Helpers (the square-root stand-in network, dark test photos, a handler that publishes to a
folder) come from tests/test_app.py; see its docstring for why that network is used.
"""

from __future__ import annotations

import gradio as gr
import pytest

from enhance import webapp
from test_app import dark_pixels, make_handler, save_photo, square_root_net


class RecordingProgress(gr.Progress):
    """Gradio's progress tracker, recording what the handler reports instead of sending it."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __call__(self, progress, desc=None, total=None, unit="steps", _tqdm=None):
        self.calls.append((progress, desc, unit))


def test_progress_reaches_gradios_tracker(tmp_path):
    # A gr.Progress is falsy (len() 0 until it tracks an iterable): the handler once swapped it
    # for a no-op, so the page showed only a clock for minutes on a big photo.
    progress = RecordingProgress()
    assert not progress
    source = save_photo(tmp_path / "dark.png", dark_pixels(48, 64))

    make_handler(square_root_net(), tmp_path)(str(source), progress=progress)

    descriptions = [desc for _, desc, _ in progress.calls]
    assert descriptions[0] == "Reading the photo" and descriptions[-1] == "Saving the result"
    assert ((1, 1), "Enhancing") in [call[:2] for call in progress.calls]  # one piece: the stand-in is not tiled


def test_progress_counts_steps_not_tiles(tmp_path, random_saga_s):
    # The tiled pass reports after every layer on every tile: a 4-MP photo showed "1.8k tiles".
    progress = RecordingProgress()
    source = save_photo(tmp_path / "dark.png", dark_pixels(128, 256))

    make_handler(random_saga_s, tmp_path)(str(source), tile="128", progress=progress)

    steps = [(value, unit) for value, desc, unit in progress.calls if desc == "Enhancing"]
    assert len(steps) > 10 and {unit for _, unit in steps} == {"steps"}
    assert steps[-1][0][0] == steps[-1][0][1]  # (done, total): the bar ends full


def test_a_typed_tile_size_may_say_px_as_the_choices_do():
    # The choices read "512 px"; typing "300 px" was refused as not "at least 128 px".
    assert webapp.parse_tile("300 px") == webapp.parse_tile("300px") == 300
    with pytest.raises(gr.Error, match="at least 128 px; got '64 px'"):
        webapp.parse_tile("64 px")
