from pathlib import Path

import pytest
from PIL import Image

from enhance.pairs import (
    ImagePair,
    PairError,
    check_sizes,
    find_pairs,
    find_unpaired,
    read_stem_list,
)

SHARED_LOL_V1_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "LOL-v1-train"


def make_images(folder: Path, names, size=(8, 6)):
    """Write tiny generated images (never dataset images) under the given file names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(
            Path(name).suffix.lower(), None
        )
        Image.new("RGB", size, (40, 80, 120)).save(folder / name, format=fmt)


def make_split(folder: Path, low="low", high="high", names=("1.png", "2.png"), high_names=None):
    make_images(folder / low, names)
    make_images(folder / high, names if high_names is None else high_names)
    return folder


def stems(pair_set):
    return [p.stem for p in pair_set.pairs]


# --- layouts ---------------------------------------------------------------------------------

def test_lol_v1_split_folder(tmp_path):
    ps = find_pairs(make_split(tmp_path / "eval15"))
    assert ps.layout == "LOL-v1 (eval15)"
    assert stems(ps) == ["1", "2"]
    assert ps.problems() == []


def test_lol_v1_folder_with_low_high_and_other_name(tmp_path):
    ps = find_pairs(make_split(tmp_path / "LOL-v1-train", names=("5.webp", "7.webp")))
    assert ps.layout == "LOL-v1 (LOL-v1-train)"
    assert stems(ps) == ["5", "7"]


def test_lol_v1_root_picks_test_split(tmp_path):
    root = tmp_path / "LOLdataset"
    make_split(root / "our485", names=("2.png", "3.png", "4.png"))
    make_split(root / "eval15", names=("1.png", "22.png"))
    ps = find_pairs(root)
    assert ps.layout.startswith("LOL-v1 (eval15")
    assert "test split chosen" in ps.layout and "our485" in ps.layout
    assert stems(ps) == ["1", "22"]
    assert all(p.low.parent.parent.name == "eval15" for p in ps.pairs)


@pytest.mark.parametrize("layout_dir, train_name, test_name, low, high, dataset", [
    ("LOLdataset", "our485", "eval15", "low", "high", "LOL-v1"),
    ("LOLv1", "Train", "Test", "input", "target", "Retinexformer-style"),
    ("Real_captured", "Train", "Test", "Low", "Normal", "LOL-v2-real"),
])
def test_training_split_of_a_root_holding_both(tmp_path, layout_dir, train_name, test_name, low, high, dataset):
    """Training asks for the training split; evaluation keeps getting the test split."""
    root = tmp_path / layout_dir
    make_split(root / train_name, low=low, high=high, names=("2.png", "3.png", "4.png"))
    make_split(root / test_name, low=low, high=high, names=("1.png",))
    trained = find_pairs(root, split="train")
    assert trained.layout == f"{dataset} ({train_name}; training split chosen, {test_name}/ also present)"
    assert stems(trained) == ["2", "3", "4"]
    evaluated = find_pairs(root)
    assert evaluated.layout == f"{dataset} ({test_name}; test split chosen, {train_name}/ also present)"
    assert stems(evaluated) == ["1"]


def test_training_split_of_a_root_with_only_a_test_split_is_refused(tmp_path):
    root = tmp_path / "LOLdataset"
    make_split(root / "eval15")
    with pytest.raises(PairError, match="only the test split eval15/.*point at .*eval15") as err:
        find_pairs(root, split="train")
    assert "\n" not in str(err.value)
    assert find_pairs(root).layout == "LOL-v1 (eval15)"  # evaluation reads it as before
    assert find_pairs(root / "eval15", split="train").layout == "LOL-v1 (eval15)"  # asked for by name


def test_training_split_through_a_lol_v2_root_with_one_category(tmp_path):
    root = tmp_path / "LOL-v2"
    make_split(root / "Synthetic" / "Train", low="Low", high="Normal", names=("5.png",))
    make_split(root / "Synthetic" / "Test", low="Low", high="Normal", names=("6.png",))
    assert stems(find_pairs(root, split="train")) == ["5"]
    assert stems(find_pairs(root)) == ["6"]


def test_lol_v2_split_with_prefixed_names(tmp_path):
    split = tmp_path / "LOL-v2" / "Real_captured" / "Test"
    make_images(split / "Low", ["low00001.png", "low00002.png"])
    make_images(split / "Normal", ["normal00002.png", "normal00001.png"])
    ps = find_pairs(split)
    assert ps.layout == "LOL-v2-real (Test)"
    assert stems(ps) == ["00001", "00002"]
    for p in ps.pairs:
        assert p.low.name == f"low{p.stem}.png"
        assert p.high.name == f"normal{p.stem}.png"


def test_lol_v2_identical_names(tmp_path):
    split = tmp_path / "Synthetic" / "Test"
    make_split(split, low="Low", high="Normal", names=("r000.png", "r001.png"))
    ps = find_pairs(split)
    assert ps.layout == "LOL-v2-synthetic (Test)"
    assert stems(ps) == ["r000", "r001"]


def test_lol_v2_category_picks_test(tmp_path):
    category = tmp_path / "LOL-v2" / "Real_captured"
    make_images(category / "Train" / "Low", ["low00010.png"])
    make_images(category / "Train" / "Normal", ["normal00010.png"])
    make_images(category / "Test" / "Low", ["low00690.png"])
    make_images(category / "Test" / "Normal", ["normal00690.png"])
    ps = find_pairs(category)
    assert ps.layout.startswith("LOL-v2-real (Test")
    assert "Train/" in ps.layout
    assert stems(ps) == ["00690"]


def test_lol_v2_root_with_one_category(tmp_path):
    root = tmp_path / "LOL-v2"
    make_split(root / "Synthetic" / "Test", low="Low", high="Normal")
    ps = find_pairs(root)
    assert ps.layout == "LOL-v2-synthetic (Test)"


def test_lol_v2_root_with_both_categories_requires_choice(tmp_path):
    root = tmp_path / "LOL-v2"
    make_split(root / "Real_captured" / "Test", low="Low", high="Normal")
    make_split(root / "Synthetic" / "Test", low="Low", high="Normal")
    with pytest.raises(PairError, match="Real_captured.*Synthetic") as err:
        find_pairs(root)
    assert str(root) in str(err.value)


def test_retinexformer_copy(tmp_path):
    root = tmp_path / "LOLv1"
    make_split(root / "Train", low="input", high="target", names=("9.png",))
    make_split(root / "Test", low="input", high="target", names=("1.png", "111.png"))
    ps = find_pairs(root)
    assert ps.layout.startswith("Retinexformer-style (Test")
    assert stems(ps) == ["1", "111"]
    assert find_pairs(root / "Test").layout == "Retinexformer-style (Test)"


def test_explicit_folders(tmp_path):
    make_images(tmp_path / "dark", ["a.png", "b.png"])
    make_images(tmp_path / "bright", ["b.png", "a.png"])
    ps = find_pairs(low_dir=tmp_path / "dark", high_dir=tmp_path / "bright")
    assert ps.layout == "explicit folders"
    assert [(p.low.name, p.high.name) for p in ps.pairs] == [("a.png", "a.png"), ("b.png", "b.png")]


def test_folder_names_case_insensitive(tmp_path):
    ps = find_pairs(make_split(tmp_path / "eval15", low="LOW", high="High"))
    assert ps.layout == "LOL-v1 (eval15)"


# --- matching --------------------------------------------------------------------------------

def test_matched_by_stem_not_listing_order(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["2.png", "10.png", "1.png"])
    make_images(folder / "high", ["1.png", "10.png", "2.png"])
    ps = find_pairs(folder)
    assert stems(ps) == ["1", "2", "10"]  # natural order
    for p in ps.pairs:
        assert p.low.stem == p.high.stem == p.stem


def test_partners_with_different_extensions(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.png"])
    make_images(folder / "high", ["1.webp"])
    assert stems(find_pairs(folder)) == ["1"]


def test_case_insensitive_extensions(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.PNG", "2.Jpg", "3.TIFF", "4.bmp", "5.JPEG"])
    make_images(folder / "high", ["1.png", "2.JPG", "3.tif", "4.BMP", "5.jpeg"])
    (folder / "low" / "notes.txt").write_text("not an image")
    (folder / "low" / "._1.png").write_bytes(b"macOS metadata")
    ps = find_pairs(folder)
    assert stems(ps) == ["1", "2", "3", "4", "5"]
    assert ps.problems() == []


def test_missing_partners_are_listed(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.png", "2.png", "3.png"])
    make_images(folder / "high", ["1.png", "2.png", "4.png"])
    ps = find_pairs(folder)
    assert stems(ps) == ["1", "2"]
    assert ps.missing_high == [folder / "low" / "3.png"]
    assert ps.missing_low == [folder / "high" / "4.png"]
    problems = ps.problems()
    assert len(problems) == 2
    assert any("3.png" in line for line in problems)
    assert any("4.png" in line for line in problems)


def test_size_mismatch_listed(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.png", "2.png"], size=(8, 6))
    make_images(folder / "high", ["1.png"], size=(8, 6))
    make_images(folder / "high", ["2.png"], size=(8, 7))
    ps = find_pairs(folder)
    assert len(ps.size_mismatches) == 1
    assert ps.size_mismatches[0].startswith("2:")
    assert "8x6" in ps.size_mismatches[0] and "8x7" in ps.size_mismatches[0]
    assert check_sizes(ps.pairs) == ps.size_mismatches


def test_check_sizes_compares_upright_sizes(tmp_path):
    """A ground truth stored sideways with EXIF orientation 6 is read upright, as evaluation reads it."""
    low, high = tmp_path / "low.png", tmp_path / "high.png"
    Image.new("RGB", (8, 6)).save(low)
    turned = Image.Exif()
    turned[0x0112] = 6
    Image.new("RGB", (6, 8)).save(high, exif=turned.tobytes())
    assert check_sizes([ImagePair("1", low, high)]) == []
    Image.new("RGB", (8, 6)).save(high, exif=turned.tobytes())  # upright 6x8: a real mismatch
    assert len(check_sizes([ImagePair("1", low, high)])) == 1


def test_check_sizes_with_custom_reader_and_unpaired():
    pairs = [ImagePair("a", Path("a_low"), Path("a_high")), ImagePair("b", Path("b"), None)]
    sizes = {"a_low": (4, 4), "a_high": (4, 5)}
    lines = check_sizes(pairs, read_size=lambda p: sizes[str(p)])
    assert len(lines) == 1 and lines[0].startswith("a:")


def test_check_sizes_reports_unreadable_file(tmp_path):
    bad = tmp_path / "1.png"
    bad.write_bytes(b"not a png")
    good = tmp_path / "good.png"
    Image.new("RGB", (4, 4)).save(good)
    lines = check_sizes([ImagePair("1", bad, good)])
    assert len(lines) == 1 and "cannot read" in lines[0]
    assert "size mismatch" not in lines[0]  # an unreadable file is not called a mismatch


def test_duplicate_stem_in_one_folder_raises(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.png", "1.jpg"])
    make_images(folder / "high", ["1.png"])
    with pytest.raises(PairError, match="same name"):
        find_pairs(folder)


# --- stems restriction -----------------------------------------------------------------------

def test_stems_restrict_and_report_missing(tmp_path):
    folder = make_split(tmp_path / "train", names=("1.png", "2.png", "3.png", "10.png"))
    ps = find_pairs(folder, stems=["10", "1", "99"])
    assert stems(ps) == ["1", "10"]
    assert ps.missing_stems == ["99"]
    assert ps.missing_high == [] and ps.missing_low == []


def test_stems_with_lol_v2_prefix(tmp_path):
    split = tmp_path / "Real_captured" / "Test"
    make_images(split / "Low", ["low00001.png", "low00002.png"])
    make_images(split / "Normal", ["normal00001.png", "normal00002.png"])
    assert stems(find_pairs(split, stems=["00002"])) == ["00002"]
    assert stems(find_pairs(split, stems=["low00001"])) == ["00001"]


def test_stems_half_pair_is_missing_stem(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.png", "2.png"])
    make_images(folder / "high", ["1.png"])
    ps = find_pairs(folder, stems=["1", "2"])
    assert stems(ps) == ["1"]
    assert ps.missing_stems == ["2"]
    assert ps.missing_high == [folder / "low" / "2.png"]


def test_stems_matching_nothing_raises(tmp_path):
    folder = make_split(tmp_path / "eval15")
    with pytest.raises(PairError, match="requested stems"):
        find_pairs(folder, stems=["77", "78"])


def test_read_stem_list(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("# validation split\n\n12\n  7  \n3  # dark scene\n#55\n")
    assert read_stem_list(path) == ["12", "7", "3"]


def test_read_stem_list_ignores_a_utf8_byte_order_mark(tmp_path):
    path = tmp_path / "val.txt"
    path.write_bytes("\ufeff12\r\n7\r\n".encode("utf-8"))  # as Windows Notepad saves it
    assert read_stem_list(path) == ["12", "7"]


def test_read_stem_list_that_is_not_utf8_is_a_one_line_error(tmp_path):
    path = tmp_path / "val.txt"
    path.write_bytes("12\nnuit\xe9\n".encode("latin-1"))
    with pytest.raises(PairError, match="not a UTF-8 text file") as err:
        read_stem_list(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# --- errors ----------------------------------------------------------------------------------

def test_empty_folder_raises(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PairError, match="empty") as err:
        find_pairs(empty)
    assert str(empty) in str(err.value)
    assert "\n" not in str(err.value)


def test_unrecognised_folder_raises(tmp_path):
    folder = tmp_path / "photos"
    make_images(folder / "foo", ["1.png"])
    make_images(folder / "bar", ["1.png"])
    with pytest.raises(PairError, match="no recognised layout") as err:
        find_pairs(folder)
    message = str(err.value)
    assert str(folder) in message
    assert "low/+high/" in message and "Low/+Normal/" in message
    assert "\n" not in message


def test_image_folder_without_images_raises(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.png"])
    (folder / "high").mkdir()
    with pytest.raises(PairError, match="no images") as err:
        find_pairs(folder)
    assert str(folder / "high") in str(err.value)


def test_no_matching_names_raises(tmp_path):
    folder = tmp_path / "eval15"
    make_images(folder / "low", ["1.png"])
    make_images(folder / "high", ["2.png"])
    with pytest.raises(PairError, match="no file name matches"):
        find_pairs(folder)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(PairError, match="no such folder"):
        find_pairs(tmp_path / "nope")


def test_bad_argument_combinations(tmp_path):
    folder = make_split(tmp_path / "eval15")
    with pytest.raises(PairError):
        find_pairs(folder, low_dir=folder / "low", high_dir=folder / "high")
    with pytest.raises(PairError):
        find_pairs(low_dir=folder / "low")
    with pytest.raises(PairError):
        find_pairs()


# --- unpaired --------------------------------------------------------------------------------

def test_find_unpaired(tmp_path):
    folder = tmp_path / "night"
    make_images(folder, ["b10.JPG", "b2.png", "a.webp"])
    (folder / "readme.txt").write_text("x")
    ps = find_unpaired(folder)
    assert ps.layout == "unpaired (no ground truth)"
    assert stems(ps) == ["a", "b2", "b10"]
    assert all(p.high is None for p in ps.pairs)
    assert check_sizes(ps.pairs) == []


def test_find_unpaired_empty_raises(tmp_path):
    with pytest.raises(PairError, match="no images"):
        find_unpaired(tmp_path)


# --- the real training data, when this machine has it ---------------------------------------

def test_shared_lol_v1_train():
    if not SHARED_LOL_V1_TRAIN.is_dir():
        pytest.skip(f"{SHARED_LOL_V1_TRAIN} not present (only on machines with ../shared)")
    ps = find_pairs(SHARED_LOL_V1_TRAIN)
    assert ps.layout == "LOL-v1 (LOL-v1-train)"
    assert len(ps.pairs) == 340
    assert ps.problems() == []
