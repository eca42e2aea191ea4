"""The pure parts of scripts/build_photos.py, on small synthetic inputs (no apt-get, no network)."""

import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_photos.py"
_spec = importlib.util.spec_from_file_location("build_photos", _SCRIPT)
bp = importlib.util.module_from_spec(_spec)
sys.modules["build_photos"] = bp  # dataclasses look their module up there
_spec.loader.exec_module(bp)


def _image(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_extract_largest_jpeg_from_edj_like_blob():
    small, large_gray, mid = _image(40, 30, seed=1), _image(300, 200, "L", seed=2), _image(120, 80, seed=3)
    parts = [b"EET\x00junk\xff\xd8\xff not a jpeg", _jpeg_bytes(small), b"\x00" * 37, _jpeg_bytes(large_gray),
             b"more junk", _jpeg_bytes(mid), b"\xff\xd8\xfftrailing junk"]
    blob = b"".join(parts)
    offset = bp.largest_jpeg_offset(blob)
    assert offset == blob.index(_jpeg_bytes(mid))  # the largest RGB one: the larger grayscale one is ignored
    im = bp.extract_largest_jpeg(blob)
    assert im.size == (120, 80) and im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), np.asarray(Image.open(io.BytesIO(_jpeg_bytes(mid)))))


def test_extract_largest_jpeg_exception():
    with pytest.raises(ValueError, match="no RGB JPEG"):
        bp.extract_largest_jpeg(b"junk\xff\xd8\xffjunk" + _jpeg_bytes(_image(8, 8, "L")))


@pytest.mark.parametrize(("size", "max_side", "expected"), [
    ((3840, 2160), 1920, (1920, 1080)),
    ((3838, 2160), 1920, (1919, 1080)),
    ((101, 61), 1920, (51, 31)),  # odd sizes round up, like Image.reduce
    ((5312, 2988), 1920, (1920, 1080)),  # still too large after 2x: shrunk further
    ((2560, 3837), 1920, (1280, 1919)),
])
def test_shrunk_size(size, max_side, expected):
    assert bp.shrunk_size(size, 2, max_side) == expected


def test_shrink_and_save_jpeg(tmp_path):
    im = _image(64, 48)
    small = bp.shrink(im, 2, 1920)
    assert small.size == (32, 24)
    path = tmp_path / "sub" / "photo.jpg"
    bp.save_jpeg(small, path)
    stored = Image.open(path)
    assert stored.format == "JPEG" and stored.mode == "RGB" and stored.size == (32, 24)
    assert JpegImagePlugin.get_sampling(stored) == 0  # 4:4:4
    reference = io.BytesIO()
    small.save(reference, "JPEG", quality=95, subsampling=0)
    assert stored.quantization == Image.open(reference).quantization  # quality 95
    bp.save_jpeg(_image(16, 16, "L"), tmp_path / "gray.jpg")
    assert Image.open(tmp_path / "gray.jpg").mode == "RGB"


def _photo(key: str, im: Image.Image, shrink: bool = True) -> "bp.SourcePhoto":
    return bp.SourcePhoto(key=key, source=f"{key.split('-')[0]}-pkg", version="1.0-1",
                          original_path=f"usr/share/{key}.jpg", licence="CC0-1.0", author=None if shrink else "A B",
                          load=lambda: im, shrink=shrink)


def test_store_photos_split_and_manifest(tmp_path):
    photos = [_photo("deb-big", _image(200, 100, seed=1)), _photo("deb-held", _image(60, 40, seed=2)),
              _photo("skimage-tiny", _image(30, 20, seed=3), shrink=False)]
    stale = tmp_path / "train" / "deb-old.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier build")

    records = bp.store_photos(photos, tmp_path, {"deb-held"}, max_side=80)
    assert [r["file"] for r in records] == ["train/deb-big.jpg", "train/skimage-tiny.jpg", "val/deb-held.jpg"]
    assert not stale.exists()
    by_file = {r["file"]: r for r in records}
    assert by_file["train/deb-big.jpg"]["stored_size"] == [80, 40]  # 2x, then capped at max_side
    assert by_file["val/deb-held.jpg"]["stored_size"] == [30, 20]
    assert by_file["train/skimage-tiny.jpg"]["stored_size"] == [30, 20]  # native size kept
    for r in records:
        assert Image.open(tmp_path / r["file"]).size == tuple(r["stored_size"])
        assert r["bytes"] == (tmp_path / r["file"]).stat().st_size
        assert r["split"] == r["file"].split("/")[0]
        assert {"source", "version", "original_path", "original_size", "licence", "author"} <= r.keys()

    first = {r["file"]: (tmp_path / r["file"]).read_bytes() for r in records}
    bp.write_manifest(records, tmp_path / "manifest.json", 80)
    manifest = (tmp_path / "manifest.json").read_text()
    assert bp.store_photos(photos, tmp_path, {"deb-held"}, max_side=80) == records
    assert {f: (tmp_path / f).read_bytes() for f in first} == first  # a rebuild writes the same bytes
    bp.write_manifest(records, tmp_path / "manifest.json", 80)
    assert (tmp_path / "manifest.json").read_text() == manifest
    assert json.loads(manifest)["photos"] == records

    table = bp.sources_table(records)
    assert table.count("\n") == 2 + len(records)
    assert "| `val/deb-held.jpg` | val | deb-pkg 1.0-1 | CC0-1.0 | - |" in table
    lines = {line.split()[0]: line.split()[1:] for line in bp.summary(records).splitlines()}
    assert lines["deb-pkg"] == ["1", "1"] and lines["skimage-pkg"] == ["1", "0"] and lines["all"] == ["2", "1"]


def test_store_photos_exception(tmp_path):
    im = _image(8, 8)
    with pytest.raises(ValueError, match="not in the set"):
        bp.store_photos([_photo("a-x", im)], tmp_path, {"a-y"})
    with pytest.raises(ValueError, match="duplicate"):
        bp.store_photos([_photo("a-x", im), _photo("a-x", im)], tmp_path, set())


def test_select(capsys):
    spec = bp.Package(key="pkg", pattern="*", photos=("Sea", "Tree"), skip={"Swirl": "drawn art"})
    assert bp.select("pkg", spec, ["Tree", "Swirl", "Sea"]) == ["Sea", "Tree"]
    assert "skip pkg-Swirl: drawn art" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"neither list \['New'\]"):
        bp.select("pkg", spec, ["Sea", "Tree", "New"])
    with pytest.raises(ValueError, match=r"missing \['Tree'\]"):
        bp.select("pkg", spec, ["Sea"])


def test_copyright_of():
    text = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wallpapers

Files: *
Copyright: 2000-2020 Some Project and contributors
License: BSD-2-clause

Files: 16.04/sea_by_Ann_Lee.jpg
       16.04/tree_by_Ann_Lee.jpg
Copyright: 2018, Ann Lee <ann@example.org>
           2019. "Bo"
License: CC-BY-4.0

License: CC-BY-4.0
 Attribution 4.0 International
"""
    stanzas = bp.parse_dep5(text)
    assert bp.copyright_of(stanzas, "tree_by_Ann_Lee.jpg") == ("CC-BY-4.0", 'Ann Lee; "Bo"')
    assert bp.copyright_of(stanzas, "Bamboo.edj") == ("BSD-2-clause", None)  # the package's, not a photographer
    with pytest.raises(KeyError):
        bp.copyright_of(stanzas[2:], "Bamboo.edj")


def test_deb_version():
    assert bp.deb_version(Path("plasma-workspace-wallpapers_4%3a5.27.5-2_all.deb")) == "4:5.27.5-2"
    assert bp.deb_version(Path("mate-backgrounds_1.26.0-1_all.deb")) == "1.26.0-1"
