"""What differs on macOS and Windows, simulated on Linux: file names that differ only in case are
one file on macOS's default volumes, and Python 3.10 has no tomllib."""

import sys
from pathlib import Path

import pytest

from enhance import run as run_module


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
                            env={**__import__("os").environ, "PYTHONIOENCODING": "cp1252"})
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
