"""Pure-Python wheels (PEP 427, `py3-none-any`) and the package index the tab installs them from.

    write_wheel(out_dir, metadata, sources)     -> path of the .whl
    write_simple_index(index_dir, wheels)        -> PEP 503 pages, one per project

Written here rather than by setuptools because build.py needs three things setuptools does not
give without extra packages or network: two distributions from one source tree (`intab`, which
ships to the tab, and `intab-host`, CPython only), byte-identical output for identical inputs
(build.py's stamps and the site's service worker compare bytes: entries are sorted and dated
1980-01-01), and a pure-Python MarkupSafe built from its sdist without its C extension. A wheel is
a zip of the package files plus `<name>-<version>.dist-info/` (METADATA, WHEEL, top_level.txt,
RECORD with each file's sha256); pip and micropip install these (tests/test_python_api.py checks
that pip does).
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)   # the earliest date a zip entry can carry


@dataclass(frozen=True)
class WheelMetadata:
    name: str                           # distribution name, e.g. "intab" or "intab-host"
    version: str
    summary: str = ""
    requires_python: str = ""
    license: str = ""
    requires: tuple[str, ...] = ()      # Requires-Dist lines (PEP 508, markers allowed)
    extras: tuple[str, ...] = ()        # Provides-Extra
    top_level: tuple[str, ...] = ()     # import names (top_level.txt)
    raw: str | None = None              # a complete METADATA text to use as is (MarkupSafe's PKG-INFO)
    description: str = field(default="", compare=False)

    @property
    def stem(self) -> str:
        """`name-version` with the name normalized as wheel file names spell it (PEP 427)."""
        return f"{re.sub(r'[-_.]+', '_', self.name).lower()}-{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.stem}-py3-none-any.whl"

    def text(self) -> str:
        if self.raw is not None:
            return self.raw
        lines = ["Metadata-Version: 2.1", f"Name: {self.name}", f"Version: {self.version}"]
        if self.summary:
            lines.append(f"Summary: {self.summary}")
        if self.license:
            lines.append(f"License: {self.license}")
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Provides-Extra: {e}" for e in self.extras]
        lines += [f"Requires-Dist: {r}" for r in self.requires]
        text = "\n".join(lines) + "\n"
        if self.description:
            text += "Description-Content-Type: text/markdown\n\n" + self.description
        return text


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def package_files(package_dir: Path, suffixes: tuple[str, ...] = (".py", ".typed")) -> dict[str, bytes]:
    """{path in the wheel: bytes} for a package folder: its .py files and py.typed, no caches."""
    package_dir = Path(package_dir)
    out = {}
    for f in sorted(package_dir.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.name.endswith(suffixes):
            out[f"{package_dir.name}/{f.relative_to(package_dir).as_posix()}"] = f.read_bytes()
    return out


def write_wheel(out_dir: Path, meta: WheelMetadata, files: dict[str, bytes]) -> Path:
    """Write `<out_dir>/<name>-<version>-py3-none-any.whl` from {path in the wheel: bytes}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = f"{meta.stem}.dist-info"
    entries = dict(sorted(files.items()))
    entries[f"{info}/METADATA"] = meta.text().encode()
    entries[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: intab tools/wheels.py\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    if meta.top_level:
        entries[f"{info}/top_level.txt"] = ("\n".join(meta.top_level) + "\n").encode()
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in entries.items()) + f"{info}/RECORD,,\n"
    entries[f"{info}/RECORD"] = record.encode()
    target = out_dir / meta.filename
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in entries.items():
            zi = zipfile.ZipInfo(path, date_time=EPOCH)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    tmp.replace(target)
    return target


def _project(wheel: Path) -> str:
    """The normalized project name of a wheel file (PEP 503: runs of -_. become -, lower case)."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def write_simple_index(index_dir: Path, wheels: list[Path]) -> None:
    """A PEP 503 "simple" index over wheels that sit one folder above `index_dir`:
    `index_dir/index.html` lists the projects, `index_dir/<project>/index.html` its files, each
    link relative (`../../<file>`, so the site works under any path) with its `#sha256=`, which
    micropip and pip check. Used as `micropip.install("intab", index_urls=[".../py/simple/{package_name}/"])`
    and `pip install --index-url .../py/simple/ intab`."""
    index_dir = Path(index_dir)
    by_project: dict[str, list[Path]] = {}
    for w in sorted(wheels):
        by_project.setdefault(_project(w), []).append(w)
    index_dir.mkdir(parents=True, exist_ok=True)
    page = "<!doctype html>\n<html><head><meta charset=utf-8><title>{t}</title></head><body>\n{b}</body></html>\n"
    for project, files in by_project.items():
        links = "".join(
            f'<a href="../../{html.escape(w.name)}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
            f"{html.escape(w.name)}</a><br>\n" for w in files)
        (index_dir / project).mkdir(exist_ok=True)
        _write_if_changed(index_dir / project / "index.html", page.format(t=f"Links for {project}", b=links))
    root_links = "".join(f'<a href="{p}/">{p}</a><br>\n' for p in by_project)
    _write_if_changed(index_dir / "index.html", page.format(t="Simple index", b=root_links))


def _write_if_changed(path: Path, text: str) -> None:
    if not (path.is_file() and path.read_text() == text):
        path.write_text(text)
