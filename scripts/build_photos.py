"""Build a set of sharp camera photographs for training: four Debian wallpaper packages + scikit-image's photos.

Usage, from the repository root: ``python scripts/build_photos.py --out data/photos``.

The Debian packages are fetched with ``apt-get download`` into a cache folder (``data/.debs`` by default; a
``.deb`` already there is reused) and unpacked with ``dpkg -x`` into a temporary folder: nothing is installed.
Which files are photographs is fixed by the allow- and deny-lists in this script (PACKAGES), and a file a package holds that
neither list names stops the build, so the set is the same on every run (a new package version that adds or
drops a file is noticed, not silently absorbed). Each photo's licence and copyright holder are read from its
package's ``copyright`` file (Plasma wallpapers also carry an author and licence in their ``metadata.json``).

Processing: the Debian photos are shrunk 2x with a Lanczos filter (this sharpens them and hides their JPEG
artefacts), and further where the long side would still exceed ``--max-side``; scikit-image's photos keep
their native size. Every photo is stored as an RGB JPEG, quality 95, no chroma subsampling.

Layout::

    OUT/train/<source>-<name>.jpg
    OUT/val/<source>-<name>.jpg     whole photos held out: scikit-image's validation photos + VAL_PHOTOS
    OUT/manifest.json               one record per photo: file, split, package + version, original path and
                                    size, stored size, licence, author
    OUT/SOURCES.md                  the same as a Markdown table (``--sources-md``)
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import skimage
from PIL import Image, ImageOps

from deblur_core.data import DEFAULT_TRAIN, DEFAULT_VAL

ROOT = Path(__file__).resolve().parent.parent
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_QUALITY = 95
DOWNSCALE = 2  # Debian photos: 2x smaller
MAX_SIDE = 1920  # Debian photos: long side after shrinking at most this (keeps the set under the size budget)
MAX_MB = 30.0  # the whole set must stay under this


@dataclass(frozen=True)
class Package:
    """A Debian package and which of its files are photographs."""

    key: str  # short source name used in the stored file names
    pattern: str  # glob, relative to the unpacked package, of every candidate file
    photos: tuple[str, ...]  # names (see `name_of`) kept
    skip: dict[str, str]  # names left out -> why
    image: str = ""  # Plasma: path of the image inside a wallpaper folder matched by `pattern`


PACKAGES = {
    "enlightenment-data": Package(
        key="enlightenment",
        pattern="usr/share/enlightenment/data/backgrounds/*.edj",
        photos=("Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain", "Peaks",
                "Red-Maple", "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles", "Sunset-Clouds", "White-Flower",
                "Yellow-Flower"),
        skip={"Dunes": "drawn art", "Flat-Fan": "drawn art", "Flat-Stone-Pattern": "texture tile (750x750)",
              "Paper-Flower": "art", "Squiggle": "vector pattern", "Squiggle-Dark": "vector pattern",
              "Squiggle-Light": "vector pattern", "Squiggle-Mid": "vector pattern", "Sunset-Hills": "drawn art"},
    ),
    "lomiri-wallpapers-16.04": Package(
        key="lomiri",
        pattern="usr/share/backgrounds/*_by_*.jpg",
        photos=("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
                "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
                "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
                "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
                "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi"),
        skip={"analogpattern_by_Peter_Nerlich": "texture (painted pattern)",
              "umang_by_Abhishek_Mudgal": "rendered colour gradient"},
    ),
    "mate-backgrounds": Package(
        key="mate",
        pattern="usr/share/backgrounds/mate/nature/*",
        photos=("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
                "TwoWings", "Wood", "YellowFlower"),
        skip={},
    ),
    "plasma-workspace-wallpapers": Package(
        key="plasma",
        pattern="usr/share/wallpapers/*",
        image="contents/images/2560x1600.jpg",
        photos=("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
                "Kite", "OneStandsOut", "Path", "summer_1am"),
        skip={"Autumn": "painting",
              **dict.fromkeys(("Altai", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "FlyingKonqui",
                               "Honeywave", "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal", "PastelHills", "Patak",
                               "SafeLanding", "Shell", "Volna"), "drawn or rendered art")},
    ),
}

# Held out whole for validation: about 1 in 6 of the Debian photos, two per package, chosen for plenty of
# edges (not the dark or foggy ones), beside scikit-image's validation photos (DEFAULT_VAL).
VAL_PHOTOS = frozenset({
    "enlightenment-Green-Maple", "enlightenment-Snow-Trees",
    "lomiri-life_by_Aitzol_Berasategi", "lomiri-Picture_1A_by_freespace",
    "mate-Dune", "mate-RainDrops",
    "plasma-EveningGlow", "plasma-Grey",
})

# scikit-image's photos: licence and author from their docstrings in skimage.data.
SKIMAGE_LICENCES = {
    "astronaut.png": ("public domain (NASA)", "NASA"),
    "camera.png": ("CC0-1.0", "Lav Varshney"),
    "chelsea.png": ("CC0-1.0", "Stefan van der Walt"),
    "coffee.png": ("CC0-1.0", "Rachel Michetti"),
    "rocket.jpg": ("public domain (SpaceX)", "SpaceX"),
    "motorcycle_right.png": ("Middlebury 2014 stereo dataset (no licence stated; cite Scharstein et al. 2014)",
                             "Nesic, Westling, Wang, Kitajima, Krathwohl, Scharstein"),
    "hubble_deep_field.jpg": ("public domain (NASA)", "NASA/ESA"),
    "ihc.png": ("no known copyright restrictions", "Center for Microscopy And Molecular Imaging (CMMI)"),
    "retina.jpg": ("CC0-1.0", "Mikael Häggström"),
    "brick.png": ("CC0-1.0", "CC0Textures"),
    "grass.png": ("CC0-1.0", "linolafett (DeviantArt)"),
    "gravel.png": ("CC0-1.0", "CC0Textures"),
    "moon.png": ("BSD-3-Clause (scikit-image; no separate notice)", None),
    "coins.png": ("no known copyright restrictions", "Brooklyn Museum"),
    "page.png": ("BSD-3-Clause (scikit-image; no separate notice)", None),
    "text.png": ("public domain", None),
}


@dataclass(frozen=True)
class SourcePhoto:
    """A photo to store: where it comes from and how to load it."""

    key: str  # "<source>-<name>", the stored file's stem
    source: str  # package name, or "scikit-image"
    version: str
    original_path: str  # inside the package (or scikit-image's wheel)
    licence: str
    author: str | None
    load: Callable[[], Image.Image]
    shrink: bool  # Debian photos are shrunk, scikit-image's are kept at native size
    embedded_offset: int | None = None  # .edj files: byte offset of the JPEG used
    licence_upstream: str | None = None  # Plasma: the licence in the wallpaper's metadata.json


def find_jpegs(blob: bytes) -> list[tuple[int, tuple[int, int], str]]:
    """``(offset, size, mode)`` of every JPEG that PIL can open at an offset of ``b"\\xff\\xd8\\xff"`` in
    ``blob`` (headers read, not decoded)."""
    found = []
    offset = blob.find(JPEG_MAGIC)
    while offset >= 0:
        try:
            with Image.open(io.BytesIO(blob[offset:])) as im:
                found.append((offset, im.size, im.mode))
        except (OSError, SyntaxError):  # the marker bytes also occur by chance in compressed data
            pass
        offset = blob.find(JPEG_MAGIC, offset + 1)
    return found


def largest_jpeg_offset(blob: bytes) -> int:
    """Byte offset of the largest (by pixel count; the first of equals) RGB JPEG embedded in ``blob``.

    Raises:
        ValueError: if ``blob`` holds no RGB JPEG.
    """
    rgb = [(offset, size) for offset, size, mode in find_jpegs(blob) if mode == "RGB"]
    if not rgb:
        raise ValueError(f"no RGB JPEG found in {len(blob)} bytes")
    return max(rgb, key=lambda item: (item[1][0] * item[1][1], -item[0]))[0]


def extract_largest_jpeg(blob: bytes) -> Image.Image:
    """The largest RGB JPEG embedded in ``blob`` (see `largest_jpeg_offset`), decoded."""
    im = Image.open(io.BytesIO(blob[largest_jpeg_offset(blob):]))
    im.load()
    return im


def shrunk_size(size: tuple[int, int], factor: int = DOWNSCALE, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``size`` divided by ``factor`` (rounded up), then scaled down further if its long side exceeds ``max_side``."""
    w, h = -(-size[0] // factor), -(-size[1] // factor)
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    return w, h


def shrink(im: Image.Image, factor: int = DOWNSCALE, max_side: int = MAX_SIDE) -> Image.Image:
    """``im`` resized to `shrunk_size` with a Lanczos filter (antialiased), in one step from the original."""
    size = shrunk_size(im.size, factor, max_side)
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)


def save_jpeg(im: Image.Image, path: Path) -> None:
    """Store ``im`` as an RGB JPEG, quality 95, 4:4:4 (no chroma subsampling), no metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im.convert("RGB").save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)


def parse_dep5(text: str) -> list[dict[str, str]]:
    """The stanzas of a machine-readable (DEP-5) Debian copyright file: field name -> value (continuation lines
    joined by newlines)."""
    stanzas: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += "\n" + line.strip()
            elif ":" in line:
                last, value = line.split(":", 1)
                fields[last] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def copyright_of(stanzas: list[dict[str, str]], filename: str) -> tuple[str, str | None]:
    """``(licence, copyright holders)`` of ``filename`` from the stanza whose ``Files`` names it (by base name).

    A file no stanza names takes the licence of the ``Files: *`` stanza and no holders: those are the whole
    package's (for enlightenment-data, its code authors and translators), not the photographer. Years, e-mail
    and web addresses are dropped from the holders.

    Raises:
        KeyError: if no stanza covers ``filename``.
    """
    named = [s for s in stanzas if any(Path(f).name == filename for f in s.get("Files", "").split())]
    fallback = [s for s in stanzas if s.get("Files", "").split() == ["*"]]
    if not named and not fallback:
        raise KeyError(f"{filename}: no stanza of the copyright file covers it")
    stanza = (named or fallback)[-1]
    licence = stanza["License"].splitlines()[0].strip()
    if not named:
        return licence, None
    holders = []
    for line in stanza.get("Copyright", "").splitlines():
        line = re.sub(r"<[^>]*>|https?://\S+|\b\d{4}(\s*-\s*\d{4})?\b", "", line)
        line = line.strip(" ,.;´")
        if line:
            holders.append(line)
    return licence, "; ".join(holders) or None


def deb_version(deb: Path) -> str:
    """The version in a ``.deb`` file name (``NAME_VERSION_ARCH.deb``; an epoch's colon is stored as ``%3a``)."""
    return unquote(deb.name.split("_")[1])


def fetch_deb(package: str, cache: Path) -> Path:
    """The package's ``.deb`` in ``cache``, downloaded with ``apt-get download`` unless already there."""
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        print(f"apt-get download {package} (into {cache})", flush=True)
        done = subprocess.run(["apt-get", "download", package], cwd=cache, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"apt-get download {package} failed:\n{done.stderr.strip()}")
        debs = sorted(cache.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise SystemExit(f"expected one {package}_*.deb in {cache}, found {[d.name for d in debs]}: "
                         "delete the stale ones")
    return debs[0]


def select(package: str, spec: Package, candidates: Iterable[str]) -> list[str]:
    """The names in ``candidates`` on the package's allow-list; prints the skipped ones and why.

    Raises:
        ValueError: if a candidate is on neither list, or an allowed name is missing.
    """
    candidates = sorted(candidates)
    unlisted = [n for n in candidates if n not in spec.photos and n not in spec.skip]
    missing = sorted(set(spec.photos) - set(candidates))
    if unlisted or missing:
        raise ValueError(f"{package}: files on neither list {unlisted}, listed photos missing {missing}: "
                         "update PACKAGES in scripts/build_photos.py")
    for name in candidates:
        if name in spec.skip:
            print(f"  skip {spec.key}-{name}: {spec.skip[name]}")
    return [n for n in candidates if n in spec.photos]


def debian_photos(package: str, spec: Package, deb: Path, unpacked: Path) -> list[SourcePhoto]:
    """The allowed photos of one unpacked package, with licence and author."""
    version = deb_version(deb)
    stanzas = parse_dep5((unpacked / "usr/share/doc" / package / "copyright").read_text(encoding="utf-8"))
    paths = {p.stem if p.is_file() else p.name: p for p in sorted(unpacked.glob(spec.pattern))}
    photos = []
    for name in select(package, spec, paths):
        path = paths[name]
        licence, author = copyright_of(stanzas, path.name)
        offset = upstream = None
        if path.suffix == ".edj":
            offset = largest_jpeg_offset(path.read_bytes())
            load = _edj_loader(path)
        else:
            if spec.image:
                plugin = json.loads((path / "metadata.json").read_text(encoding="utf-8"))["KPlugin"]
                author = plugin["Authors"][0]["Name"]
                upstream = plugin.get("License")
                path = path / spec.image
            load = _file_loader(path)
        photos.append(SourcePhoto(
            key=f"{spec.key}-{name}", source=package, version=version,
            original_path=str(path.relative_to(unpacked)), licence=licence, author=author, load=load, shrink=True,
            embedded_offset=offset, licence_upstream=upstream,
        ))
    return photos


def _edj_loader(path: Path) -> Callable[[], Image.Image]:
    return lambda: extract_largest_jpeg(path.read_bytes())


def _file_loader(path: Path) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(path) as im:
            return ImageOps.exif_transpose(im).convert("RGB")
    return load


def skimage_photos() -> tuple[list[SourcePhoto], set[str]]:
    """scikit-image's photos in the project's default split, and the keys of those that validate."""
    folder = Path(skimage.__file__).parent / "data"
    photos = []
    for filename in (*DEFAULT_TRAIN, *DEFAULT_VAL):
        licence, author = SKIMAGE_LICENCES[filename]
        photos.append(SourcePhoto(
            key=f"skimage-{Path(filename).stem}", source="scikit-image", version=skimage.__version__,
            original_path=f"skimage/data/{filename}", licence=licence, author=author,
            load=_file_loader(folder / filename), shrink=False,
        ))
    return photos, {f"skimage-{Path(f).stem}" for f in DEFAULT_VAL}


def store_photos(photos: list[SourcePhoto], out: Path, val: set[str] | frozenset[str],
                 max_side: int = MAX_SIDE) -> list[dict]:
    """Write each photo to ``out/{train,val}/KEY.jpg`` and return the manifest records (sorted by file).

    JPEGs in ``out/train`` and ``out/val`` that are not in the set (left over from an earlier build) are removed.

    Raises:
        ValueError: if two photos share a key, or a name in ``val`` is not among the photos.
    """
    keys = [p.key for p in photos]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate photo keys: {sorted(k for k, n in Counter(keys).items() if n > 1)}")
    if unknown := sorted(set(val) - set(keys)):
        raise ValueError(f"validation photos not in the set: {unknown}")
    records = []
    for photo in photos:
        split = "val" if photo.key in val else "train"
        im = photo.load()
        stored = shrink(im, max_side=max_side) if photo.shrink else im
        file = f"{split}/{photo.key}.jpg"
        save_jpeg(stored, out / file)
        record = {
            "file": file, "split": split, "source": photo.source, "version": photo.version,
            "original_path": photo.original_path, "original_size": list(im.size),
            "stored_size": list(stored.size), "bytes": (out / file).stat().st_size,
            "licence": photo.licence, "author": photo.author,
        }
        if photo.licence_upstream:
            record["licence_upstream"] = photo.licence_upstream
        if photo.embedded_offset is not None:
            record["embedded_offset"] = photo.embedded_offset
        records.append(record)
        print(f"  {file}: {im.width}x{im.height} -> {stored.width}x{stored.height}, "
              f"{record['bytes'] / 1e6:.2f} MB", flush=True)
    kept = {r["file"] for r in records}
    for stale in sorted([*out.glob("train/*.jpg"), *out.glob("val/*.jpg")]):
        if str(stale.relative_to(out)) not in kept:
            print(f"  removing {stale} (not in the set)")
            stale.unlink()
    return sorted(records, key=lambda r: (r["split"] != "train", r["file"]))


def write_manifest(records: list[dict], path: Path, max_side: int) -> None:
    """``records`` as JSON, with the processing settings (no timestamps: a rebuild gives the same file)."""
    manifest = {
        "generator": "scripts/build_photos.py",
        "processing": {"debian_downscale": DOWNSCALE, "filter": "lanczos", "max_side": max_side,
                       "jpeg_quality": JPEG_QUALITY, "subsampling": "4:4:4", "skimage": "native size"},
        "photos": records,
    }
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def sources_table(records: list[dict]) -> str:
    """A Markdown table of every photo: file, split, package (version), licence, author."""
    lines = ["| File | Split | Package | Licence | Author |", "|---|---|---|---|---|"]
    for r in records:
        licence = r["licence"] + (f" (upstream: {r['licence_upstream']})" if r.get("licence_upstream") else "")
        cells = [f"`{r['file']}`", r["split"], f"{r['source']} {r['version']}", licence, r["author"] or "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summary(records: list[dict]) -> str:
    """Counts per split and source, and the total size."""
    counts = Counter((r["split"], r["source"]) for r in records)
    lines = [f"{'source':30s} {'train':>5s} {'val':>5s}"]
    for source in sorted({r["source"] for r in records}):
        lines.append(f"{source:30s} {counts['train', source]:5d} {counts['val', source]:5d}")
    n_train = sum(r["split"] == "train" for r in records)
    lines.append(f"{'all':30s} {n_train:5d} {len(records) - n_train:5d}")
    lines.append(f"total {sum(r['bytes'] for r in records) / 1e6:.1f} MB in {len(records)} photos")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "photos", help="output folder (default: data/photos)")
    ap.add_argument("--debs", type=Path, default=ROOT / "data" / ".debs",
                    help="where the .deb files are downloaded and reused (default: data/.debs)")
    ap.add_argument("--sources-md", type=Path, help="Markdown table of the photos (default: OUT/SOURCES.md)")
    ap.add_argument("--max-side", type=int, default=MAX_SIDE,
                    help=f"long side of a stored Debian photo at most this (default: {MAX_SIDE})")
    ap.add_argument("--max-mb", type=float, default=MAX_MB,
                    help=f"fail if the set is larger than this many MB (default: {MAX_MB:g})")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    photos, val = skimage_photos()
    with tempfile.TemporaryDirectory(prefix="build_photos-") as tmp:
        for package, spec in PACKAGES.items():
            deb = fetch_deb(package, args.debs)
            unpacked = Path(tmp) / package
            print(f"dpkg -x {deb.name}", flush=True)
            subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
            photos += debian_photos(package, spec, deb, unpacked)
        records = store_photos(photos, args.out, val | VAL_PHOTOS, max_side=args.max_side)

    write_manifest(records, args.out / "manifest.json", args.max_side)
    sources_md = args.sources_md or args.out / "SOURCES.md"
    sources_md.write_text(sources_table(records), encoding="utf-8")
    print(summary(records))
    print(f"wrote {args.out}/{{train,val}}, manifest.json, {sources_md} in {time.perf_counter() - start:.0f} s")
    total_mb = sum(r["bytes"] for r in records) / 1e6
    if total_mb > args.max_mb:
        sys.exit(f"the set is {total_mb:.1f} MB, over --max-mb {args.max_mb:g}: lower --max-side")


if __name__ == "__main__":
    main()
