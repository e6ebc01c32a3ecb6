"""Platforms this machine is not: Windows (no os.preadv, no MSVC, a console code page), macOS (no
/proc, names that differ only in case, PyTorch without MPS autocast or without oneDNN, no C++
compiler), and Python 3.10, simulated by taking the missing pieces away."""

import os
import sys
import types
from pathlib import Path

import pytest
import torch

from enhance import inference, tiling
from enhance import run as run_module
from enhance.attention import autocast_available, autocast_off
from enhance.inference import available_memory, resolve_precision
from enhance.models import create_model
from enhance.tiling import DiskMap, run_tiled

CPU, MPS = torch.device("cpu"), torch.device("mps")  # a device object needs no MPS hardware


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return create_model("saga-s", widths=(16, 32), encoder_blocks=(1,), middle_blocks=1, decoder_blocks=(1,)).eval()


def without_positioned_io(monkeypatch):
    """os as on Windows: no os.preadv or os.pwritev."""
    monkeypatch.delattr(os, "preadv", raising=False)
    monkeypatch.delattr(os, "pwritev", raising=False)


def without_autocast_on(monkeypatch, refused):
    """torch.autocast as in PyTorch 2.2-2.4 for MPS: refused even with enabled=False."""
    real = torch.autocast

    def autocast(device_type, *args, **kwargs):
        if device_type == refused:
            raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
        return real(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", autocast)


# Windows: the disk spill without os.preadv / os.pwritev.

def test_spilled_maps_without_preadv_give_bit_identical_results(small_model, monkeypatch):
    image = torch.rand(1, 3, 96, 160)
    with_preadv = run_tiled(small_model, image, 64, map_budget=0)
    without_positioned_io(monkeypatch)
    monkeypatch.setattr(tiling, "IO_CHUNK", 1000)  # many pieces per band, and pieces that split a pixel
    without = run_tiled(small_model, image, 64, map_budget=0)
    assert torch.equal(with_preadv, without)
    assert torch.equal(without, run_tiled(small_model, image, 64))  # and equal to the in-memory maps


def test_disk_map_round_trips_in_bf16_without_preadv(monkeypatch):
    without_positioned_io(monkeypatch)
    full = torch.randn(1, 5, 12, 20).to(torch.bfloat16)
    disk = DiskMap(tuple(full.shape), torch.bfloat16)
    disk.write(0, 0, full[..., :6, :])
    disk.write(6, 0, full[..., 6:, :])
    assert torch.equal(disk.read(3, 10, 4, 17), full[..., 3:10, 4:17])


# macOS with PyTorch 2.2-2.4: no MPS autocast, not even a disabled one.

def test_autocast_off_is_a_null_context_where_the_device_has_no_autocast(monkeypatch):
    assert autocast_available("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with autocast_off("cpu"):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    without_autocast_on(monkeypatch, "mps")
    assert not autocast_available("mps")
    with autocast_off("mps"):
        pass


def test_network_runs_in_fp32_where_the_device_has_no_autocast(small_model, monkeypatch):
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        whole = small_model(image)
    tiled = run_tiled(small_model, image, 32)
    without_autocast_on(monkeypatch, "cpu")  # the device these tests can run on stands in for MPS
    with torch.no_grad():
        assert torch.equal(small_model(image), whole)
    assert torch.equal(run_tiled(small_model, image, 32), tiled)


def test_precision_refuses_bf16_and_fp16_where_the_device_has_no_autocast(monkeypatch):
    without_autocast_on(monkeypatch, "mps")
    for name in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"--precision {name}: .* no autocast on mps; use fp32, or PyTorch 2.5"):
            resolve_precision(name, MPS)
    assert resolve_precision("fp32", MPS) is None
    assert resolve_precision("auto", MPS) is None


# macOS arm64 with --device cpu: a PyTorch without oneDNN.

@pytest.mark.parametrize("mkldnn", ["unavailable", "no query", "query fails"])
def test_auto_precision_is_fp32_on_a_cpu_without_onednn(monkeypatch, mkldnn):
    if mkldnn == "unavailable":
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    elif mkldnn == "no query":
        monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace())
    else:
        def query():
            raise RuntimeError("oneDNN is not built in")
        monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace(_is_mkldnn_bf16_supported=query))
    assert resolve_precision("auto", CPU) is None
    assert resolve_precision("bf16", CPU) == torch.bfloat16  # asked for by name, it still runs


# macOS and Windows: no /proc/meminfo.

def test_available_memory_without_proc(monkeypatch, tmp_path):
    monkeypatch.setattr(inference, "_MEMINFO", str(tmp_path / "no-meminfo"))
    sizes = {"SC_PHYS_PAGES": 6 * 1024 * 1024, "SC_PAGE_SIZE": 4096}  # 24 GiB
    monkeypatch.setattr(os, "sysconf", lambda name: sizes[name], raising=False)
    assert available_memory(CPU) == 12 << 30  # macOS: half the physical memory
    monkeypatch.delattr(os, "sysconf", raising=False)
    assert available_memory(CPU) == 4 << 30  # Windows: the default guess


# --- file names, console output and compilers ------------------------------------------------
def test_on_macos_names_differing_in_case_are_one_output(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "IMG_1.JPG", tmp_path / "b" / "img_1.jpg"
    inputs = [(first, Path(first.name)), (second, Path(second.name))]  # (photo, path below what was named)

    jobs, errors = run_module.plan_jobs(inputs, tmp_path / "out", "", "same", recursive=False)
    assert len(jobs) == 2 and errors == []  # Linux: two files

    monkeypatch.setattr(sys, "platform", "darwin")
    jobs, errors = run_module.plan_jobs(inputs, tmp_path / "out", "", "same", recursive=False)
    assert len(jobs) == 1 and len(errors) == 1  # macOS: the second would overwrite the first's output
    assert errors[0].startswith(f"{second}: would write") and f"which {first} also writes" in errors[0]
    # Unicode spelled composed or decomposed is one name there too.
    assert run_module._file_key(Path("/x/caf\u00e9.jpg")) == run_module._file_key(Path("/x/cafe\u0301.JPG"))


def test_output_the_console_cannot_encode_is_escaped_not_fatal(tmp_path):
    # Windows writes redirected output in its ANSI code page; simulate one that lacks "Δ".
    import subprocess

    code = ("import sys; sys.argv = ['enhance', 'models']; from enhance import cli, modelinfo; "
            "modelinfo.main = lambda args: print('Δ gates') or 0; sys.exit(cli.main())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip() == b"\\u0394 gates"


def test_compile_without_a_cpp_compiler_trains_uncompiled_with_a_note(tmp_path, monkeypatch, capsys):
    # A Mac without Xcode's tools, or Windows without MSVC: torch.compile failed at the first step.
    import torch
    from enhance import train as train_module
    from test_train_own_data import config_file, own_data, train

    data = own_data(tmp_path / "data", [("1.png", "1.png"), ("2.png", "2.png"), ("3.png", "3.png")])
    config = config_file(tmp_path)
    config.write_text(config.read_text().replace("compile = false", "compile = true"))
    monkeypatch.setattr(train_module.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(torch, "compile", lambda *args, **kwargs: pytest.fail("torch.compile was called"))

    assert train(config, data, tmp_path / "run") == 0
    assert "compile = true, but no C++ compiler (g++, clang++ or $CXX) was found" in capsys.readouterr().err
    monkeypatch.setattr(sys, "platform", "win32")
    assert train_module.missing_compiler() == "MSVC's C++ compiler (cl) is not on the PATH"
