#!/usr/bin/env python3
"""intab's one entry point.

    python3 build.py serve   # install what is missing, prepare the model, assemble static/, serve it
    python3 build.py test    # the same build, plus Chromium, then the whole test suite
    python3 build.py build   # just build static/
    python3 build.py bench   # the build, then the benchmark with comparators (tools/bench/bench.py --help)
    python3 build.py soak    # the build, then 200 turns, 50 conversations, memory by turn, the long fuzz (tools/soak/soak.py)

Every step is idempotent: it keeps a stamp of its inputs and says "up to date" when they have
not changed. Python packages go to .venv/, npm packages to node_modules/, downloads and model
builds to .cache/, the deployable site to static/.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
CACHE = ROOT / ".cache"
STATIC = ROOT / "static"
STAMPS = CACHE / "stamps"
CHROMIUM = Path("/usr/lib/chromium/chromium")

DIST = ROOT / "dist"        # CPython wheels (intab, intab-host): never part of the site

# Pure-Python packages the tab needs next to intab (Pyodide's core has none of them).
TAB_PACKAGES = {"jinja2": "3.1.6", "markupsafe": "3.0.3"}
# micropip's own wheel: Pyodide's npm core has none; pages load it with pyodide.loadPackage(url).
MICROPIP = "0.11.1"


def say(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, cwd=kw.pop("cwd", ROOT), **kw)


def digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def step(name: str, key: str) -> bool:
    """True when the step must run; prints 'up to date' otherwise. Call done() after running."""
    stamp = STAMPS / name
    if stamp.exists() and stamp.read_text() == key:
        say(f"{name}: up to date (inputs unchanged), skipping")
        return False
    say(f"{name}: running")
    return True


def done(name: str, key: str) -> None:
    STAMPS.mkdir(parents=True, exist_ok=True)
    (STAMPS / name).write_text(key)


# -- steps ----------------------------------------------------------------------------------------
def ensure_venv(with_test: bool) -> None:
    """Create .venv and install requirements/*.txt into it, then re-run this script inside it."""
    reqs = [ROOT / "requirements" / "build.txt"] + ([ROOT / "requirements" / "test.txt"] if with_test else [])
    key = digest(*reqs, extra=sys.version)
    name = "python-packages" + ("-test" if with_test else "")
    py = VENV / "bin" / "python"
    if step(name, key):
        if not py.exists():
            venv.EnvBuilder(with_pip=True).create(VENV)
        args = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-qq"]
        for r in reqs:
            args += ["-r", str(r)]
        run(args)
        done(name, key)


def ensure_npm() -> None:
    key = digest(ROOT / "package.json", ROOT / "package-lock.json")
    if step("npm-packages", key) or not (ROOT / "node_modules").exists():
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"])
        done("npm-packages", key)


def ensure_chromium() -> None:
    if CHROMIUM.exists():
        say("chromium: installed, skipping")
        return
    say("chromium: installing Debian chromium (apt-get)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    run(sudo + ["apt-get", "update", "-qq"])
    run(sudo + ["apt-get", "install", "-y", "-qq", "chromium"], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def prepare_models() -> list[Path]:
    """Every model of the site (models/recipes.py SITE: SmolLM2-135M-Instruct, the default, then
    Gemma 3 270M), each built once into .cache/build/<id>/."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "py"))   # intab.arch: the architectures
    from models.prepare import prepare
    from models.recipes import SITE
    return [prepare(recipe, CACHE) for recipe in SITE]


def fetch_tab_packages() -> dict[str, Path]:
    """Source folders of the pure-Python packages: jinja2 from its wheel, markupsafe from its sdist
    (its wheel carries a C extension; the sdist's pure-Python fallback `_native.py` is what Pyodide
    can run)."""
    out: dict[str, Path] = {}
    for name, version in TAB_PACKAGES.items():
        dest = CACHE / "tab-packages" / f"{name}-{version}"
        pkg = dest / name
        if not pkg.exists():
            dl = CACHE / "downloads"
            dl.mkdir(parents=True, exist_ok=True)
            binary = ["--only-binary", ":all:"] if name == "jinja2" else ["--no-binary", ":all:"]
            run([sys.executable, "-m", "pip", "download", "--no-deps", "-qq", "-d", str(dl), *binary, f"{name}=={version}"])
            dest.mkdir(parents=True, exist_ok=True)
            if name == "jinja2":
                with zipfile.ZipFile(next(dl.glob(f"jinja2-{version}-*.whl"))) as z:
                    z.extractall(dest, [m for m in z.namelist() if m.startswith("jinja2/")])
            else:
                with tarfile.open(next(dl.glob(f"markupsafe-{version}.tar.gz"))) as t:
                    prefix = f"markupsafe-{version}/src/markupsafe/"
                    for m in t.getmembers():
                        if m.name.startswith(prefix) and m.name.endswith((".py", "py.typed")):
                            m.name = "markupsafe/" + m.name[len(prefix):]
                            t.extract(m, dest, filter="data")
        out[name] = pkg
    return out


def build_py_bundle() -> None:
    """static/py/intab-bundle.zip: intab + jinja2 + markupsafe, unpacked by the worker into site-packages."""
    pkgs = fetch_tab_packages()
    src = ROOT / "py" / "intab"
    target = STATIC / "py" / "intab-bundle.zip"
    key = digest(src, *pkgs.values())
    if not step("py-bundle", key) and target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for root in [src, *pkgs.values()]:
            for f in sorted(root.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".typed", ""):
                    # Fixed timestamps: same inputs, same bytes.
                    info = zipfile.ZipInfo(str(f.relative_to(root.parent)), date_time=(2020, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, f.read_bytes())
    tmp.replace(target)
    done("py-bundle", key)


def build_py_snapshot() -> None:
    """static/py/intab-snapshot.bin.gz: Pyodide's memory after its boot with intab imported
    (tools/py_snapshot.mjs); the worker boots from it (web/worker_python.mjs)."""
    pyodide = STATIC / "vendor" / "pyodide"
    bundle = STATIC / "py" / "intab-bundle.zip"
    target = STATIC / "py" / "intab-snapshot.bin.gz"
    script = ROOT / "tools" / "py_snapshot.mjs"
    key = digest(bundle, pyodide / "pyodide.asm.wasm", pyodide / "python_stdlib.zip", script)
    if not step("py-snapshot", key) and target.exists():
        return
    run(["node", str(script), str(pyodide), str(bundle), str(target)])
    done("py-snapshot", key)


def _pip_download(spec: str, *flags: str) -> Path:
    """One file from PyPI into .cache/downloads (kept: the next build is offline)."""
    dl = CACHE / "downloads"
    name, version = spec.split("==")
    pattern = re.sub(r"[-_.]+", "[-_.]", name) + "-" + re.escape(version) + r"[-.].*"
    found = [f for f in dl.glob("*") if re.fullmatch(pattern, f.name, re.I)] if dl.exists() else []
    if not found:
        dl.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "--no-deps", "-qq", "-d", str(dl), *flags, spec])
        found = [f for f in dl.glob("*") if re.fullmatch(pattern, f.name, re.I)]
    return found[0]


def test_wheels(names: tuple[str, ...] = ("hypothesis", "sortedcontainers")) -> list[Path]:
    """Pure-Python wheels that only the tests load into Pyodide (hypothesis and its one dependency
    there, at requirements/test.txt's versions), into .cache/downloads: never part of the site
    (tests/browser/test_python_props.py serves them from its own test server)."""
    pins = dict(line.split("#")[0].strip().split("==") for line in (ROOT / "requirements" / "test.txt").read_text().splitlines()
                if "==" in line.split("#")[0])
    return [_pip_download(f"{n}=={pins[n]}", "--only-binary", ":all:", "--python-version", "3.14") for n in names]


def _project_metadata() -> tuple["WheelMetadata", "WheelMetadata"]:
    """intab's and intab-host's metadata, from pyproject.toml (the one place that states them)."""
    import tomllib
    from wheels import WheelMetadata

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    proj, host = meta["project"], meta["tool"]["intab"]["host"]
    extras = proj.get("optional-dependencies", {})
    intab = WheelMetadata(
        name=proj["name"], version=proj["version"], summary=proj["description"],
        requires_python=proj["requires-python"], license=proj["license"],
        requires=tuple(proj["dependencies"]) + tuple(f'{r}; extra == "{e}"' for e, rs in extras.items() for r in rs),
        extras=tuple(extras), top_level=("intab",))
    intab_host = WheelMetadata(
        name=host["name"], version=proj["version"], summary=host["description"],
        requires_python=proj["requires-python"], license=proj["license"],
        requires=tuple(host["dependencies"]), top_level=("intab_host",))
    return intab, intab_host


def build_wheels() -> dict[str, Path]:
    """static/py/: the wheels a page installs with micropip, with no index outside the site:
    intab (py/intab/ only: never intab_host), jinja2 (PyPI's wheel), markupsafe (pure Python,
    built from its sdist: the PyPI wheels carry a C extension), micropip (for pages whose Pyodide
    has none), and a PEP 503 index over them (static/py/simple/). dist/: intab and intab-host for
    CPython (pip install --find-links dist "intab[cpu]")."""
    sys.path.insert(0, str(ROOT / "tools"))
    from wheels import WheelMetadata, package_files, write_simple_index, write_wheel

    pkgs = fetch_tab_packages()
    jinja2_whl = _pip_download(f"jinja2=={TAB_PACKAGES['jinja2']}", "--only-binary", ":all:")
    micropip_whl = _pip_download(f"micropip=={MICROPIP}", "--only-binary", ":all:", "--python-version", "3.14")
    sdist = _pip_download(f"markupsafe=={TAB_PACKAGES['markupsafe']}", "--no-binary", ":all:")
    intab_meta, host_meta = _project_metadata()
    out = STATIC / "py"
    key = digest(ROOT / "py", ROOT / "pyproject.toml", ROOT / "tools" / "wheels.py", jinja2_whl, micropip_whl, sdist)
    names = {"intab": intab_meta.filename, "jinja2": jinja2_whl.name, "micropip": micropip_whl.name,
             "markupsafe": f"markupsafe-{TAB_PACKAGES['markupsafe']}-py3-none-any.whl"}
    wheels = {k: out / v for k, v in names.items()}
    host_whl = DIST / host_meta.filename
    if not step("wheels", key) and all(p.exists() for p in [*wheels.values(), host_whl, DIST / intab_meta.filename]):
        return wheels
    write_wheel(out, intab_meta, package_files(ROOT / "py" / "intab"))
    with tarfile.open(sdist) as t:
        pkg_info = t.extractfile(f"markupsafe-{TAB_PACKAGES['markupsafe']}/PKG-INFO").read().decode()
    write_wheel(out, WheelMetadata(name="markupsafe", version=TAB_PACKAGES["markupsafe"], raw=pkg_info,
                                   top_level=("markupsafe",)), package_files(pkgs["markupsafe"]))
    for whl in (jinja2_whl, micropip_whl):
        shutil.copy2(whl, out / whl.name)
    write_simple_index(out / "simple", [out / n for n in names.values()])
    DIST.mkdir(exist_ok=True)
    shutil.copy2(out / intab_meta.filename, DIST / intab_meta.filename)
    write_wheel(DIST, host_meta, package_files(ROOT / "py" / "intab_host"))
    done("wheels", key)
    return wheels


def copy_pyscript() -> None:
    """static/vendor/pyscript/: @pyscript/core's dist (npm), so PyScript pages need no CDN."""
    src, dest = ROOT / "node_modules" / "@pyscript" / "core" / "dist", STATIC / "vendor" / "pyscript"
    for f in sorted(src.iterdir()):
        if f.is_file() and f.suffix in (".js", ".css"):
            out = dest / f.name
            if not (out.exists() and out.stat().st_size == f.stat().st_size and out.read_bytes() == f.read_bytes()):
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out)


# The JupyterLite site (static/jupyterlite/): jupyterlite-core + jupyterlite-pyodide-kernel from
# PyPI (requirements/build.txt), on this site's Pyodide. Its kernel loads micropip, then
# ipykernel/ipython/jedi and their dependencies from Pyodide's lock file: the npm core has none of
# those wheels, so they come from PyPI at the lock's versions (all pure Python) and a copy of the
# lock lists them with their own sha256 (PyPI's files differ from Pyodide's rebuilt ones).
LITE_PYODIDE_PACKAGES = ["micropip", "packaging", "jinja2", "ipython", "jedi", "parso", "asttokens", "decorator", "executing",
                         "matplotlib-inline", "prompt-toolkit", "pure-eval", "pygments", "six", "stack-data",
                         "traitlets", "wcwidth"]
LITE_PIPLITE_EXTRA = {"comm": "0.2.3"}   # pyodide-kernel needs it; Pyodide's lock lacks it


def _lite_pyodide(dest: Path, own: dict[str, Path]) -> None:
    """A Pyodide distribution folder for JupyterLite: the npm core + the kernel's wheels + a lock.
    own: {package: wheel} served instead of the lock's (markupsafe: our pure-Python build)."""
    pyodide = ROOT / "node_modules" / "pyodide"
    lock = json.loads((pyodide / "pyodide-lock.json").read_text())
    canon = {re.sub(r"[-_.]+", "-", k).lower(): k for k in lock["packages"]}
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide.js"):
        shutil.copy2(pyodide / name, dest / name)
    for name in LITE_PYODIDE_PACKAGES:
        entry = lock["packages"][canon[name]]
        whl = _pip_download(f"{name}=={entry['version']}", "--only-binary", ":all:", "--python-version", "3.14")
        shutil.copy2(whl, dest / whl.name)
        entry["file_name"] = whl.name
        entry["sha256"] = hashlib.sha256(whl.read_bytes()).hexdigest()
    for name, whl in own.items():
        entry = lock["packages"][canon[name]]
        shutil.copy2(whl, dest / whl.name)
        entry.update(file_name=whl.name, sha256=hashlib.sha256(whl.read_bytes()).hexdigest(), shared_library=False)
    (dest / "pyodide-lock.json").write_text(json.dumps(lock))


def build_jupyterlite(wheels: dict[str, Path]) -> None:
    """static/jupyterlite/: a JupyterLite site (lab, notebooks) whose Pyodide kernel runs offline
    from this site, with intab's wheels in its piplite index (`%pip install intab`) and the example
    notebook (examples/intab.ipynb) in its files."""
    out = STATIC / "jupyterlite"
    extra = {n: _pip_download(f"{n}=={v}", "--only-binary", ":all:") for n, v in LITE_PIPLITE_EXTRA.items()}
    key = digest(ROOT / "examples" / "intab.ipynb", ROOT / "requirements" / "build.txt", *wheels.values(),
                 *extra.values(), extra=json.dumps(LITE_PYODIDE_PACKAGES))
    if not step("jupyterlite", key) and (out / "static" / "pyodide" / "pyodide-lock.json").exists():
        return
    lite = CACHE / "jupyterlite"
    if lite.exists():
        shutil.rmtree(lite)
    (lite / "files").mkdir(parents=True)
    shutil.copy2(ROOT / "examples" / "intab.ipynb", lite / "files" / "intab.ipynb")
    settings = {"pyodideUrl": "./static/pyodide/pyodide.mjs", "disablePyPIFallback": True}
    (lite / "jupyter-lite.json").write_text(json.dumps({
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {"litePluginSettings": {"@jupyterlite/pyodide-kernel-extension:kernel": settings}}}))
    piplite = [wheels[n] for n in ("intab", "jinja2", "markupsafe")] + list(extra.values())
    if out.exists():
        shutil.rmtree(out)
    args = [str(VENV / "bin" / "jupyter"), "lite", "build", "--lite-dir", str(lite), "--output-dir", str(out),
            "--apps", "lab", "--apps", "notebooks", "--no-sourcemaps"]
    for w in piplite:
        args += ["--piplite-wheels", str(w)]
    run(args, cwd=lite)
    _lite_pyodide(out / "static" / "pyodide", {"markupsafe": wheels["markupsafe"]})
    done("jupyterlite", key)


def copy_examples() -> None:
    """static/examples/: examples/ as is (the pages, their Python, the notebook)."""
    src, dest = ROOT / "examples", STATIC / "examples"
    for f in sorted(src.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and ".ipynb_checkpoints" not in f.parts:
            out = dest / f.relative_to(src)
            if not (out.exists() and out.read_bytes() == f.read_bytes()):
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out)


def install_models(build_dirs: list[Path]) -> None:
    """Copy the prepared model folders into static/models/<id>/ and list them in index.json (the
    first is the default). A model's license files (Gemma's NOTICE and Terms) go beside it."""
    manifests = [json.loads((d / "manifest.json").read_text()) for d in build_dirs]
    index = {"models": [m["model_id"] for m in manifests]}
    key = json.dumps([index, manifests], sort_keys=True)
    if not step("static-models", key) and all((STATIC / "models" / m["model_id"] / "manifest.json").exists()
                                              for m in manifests):
        return
    for build_dir, manifest in zip(build_dirs, manifests):
        dest = STATIC / "models" / manifest["model_id"]
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        notices = (manifest.get("license") or {}).get("files", [])
        for f in [*(x["name"] for x in manifest["files"]), *notices, "manifest.json"]:
            try:
                os.link(build_dir / f, dest / f)   # the model is big: hard-link when on one filesystem
            except OSError:
                shutil.copy2(build_dir / f, dest / f)
    (STATIC / "models" / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    done("static-models", key)


def build() -> None:
    t0 = time.time()
    ensure_npm()
    model_dirs = prepare_models()
    sys.path.insert(0, str(ROOT))
    from web.assemble import assemble_web, write_offline_list
    STATIC.mkdir(exist_ok=True)
    assemble_web(STATIC, ROOT / "node_modules")
    build_py_bundle()
    build_py_snapshot()
    write_offline_list(STATIC)   # its version covers the bundle and the snapshot too
    wheels = build_wheels()
    copy_pyscript()
    build_jupyterlite(wheels)
    copy_examples()
    install_models(model_dirs)
    say(f"static/ ready in {time.time() - t0:.1f} s")


def serve(port: int) -> None:
    from web.serve import make_server
    server = make_server(STATIC, "127.0.0.1", port)
    host, real_port = server.server_address[:2]
    say(f"serving {STATIC} with COOP/COEP headers")
    print(f"\n  intab demo: http://{host}:{real_port}/\n", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def test(pytest_args: list[str]) -> int:
    ensure_chromium()
    args = [sys.executable, "-m", "pytest", *(pytest_args or ["-q", "-ra"])]
    say("running the test suite: " + " ".join(args[1:]))
    return subprocess.run(args, cwd=ROOT).returncode


def bench(bench_args: list[str]) -> int:
    """tools/bench/bench.py: intab vs transformers.js vs a bare ORT loop in headless Chromium."""
    ensure_chromium()
    sys.path.insert(0, str(ROOT / "tools" / "bench"))
    if "--start" in bench_args:   # the app's start, cold and warm, phase by phase (tools/bench/start.py)
        from start import main as start_main
        return start_main([a for a in bench_args if a != "--start"])
    if "--sizes" in bench_args:   # intab vs wllama at each model size, with the roofline (tools/bench/scaling.py)
        from scaling import main as sizes_main
        return sizes_main([a for a in bench_args if a != "--sizes"])
    if "--constraints" in bench_args:   # the constraint engine's mask and compile times (tools/bench/constraints.py)
        from constraints import main as constraints_main
        return constraints_main([a for a in bench_args if a != "--constraints"])
    from bench import main as bench_main
    return bench_main(bench_args)


def soak(soak_args: list[str]) -> int:
    """tools/soak/soak.py: 200 turns, 50 conversations, memory by turn, replays, the long fuzz."""
    ensure_chromium()
    sys.path.insert(0, str(ROOT / "tools" / "soak"))
    from soak import main as soak_main
    return soak_main(soak_args)


def main() -> int:
    ap = argparse.ArgumentParser(description="Build, serve and test intab.")
    ap.add_argument("command", choices=["build", "serve", "test", "bench", "soak"])
    ap.add_argument("--port", type=int, default=8000)
    args, extra = ap.parse_known_args()   # test: anything else goes to pytest; bench: to tools/bench/bench.py
    if extra and args.command not in ("test", "bench", "soak"):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")

    if Path(sys.prefix).resolve() != VENV.resolve():
        ensure_venv(with_test=args.command in ("test", "bench", "soak"))   # bench drives Chromium with Playwright
        os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), str(ROOT / "build.py"), *sys.argv[1:]])

    build()
    if args.command == "serve":
        serve(args.port)
    elif args.command == "test":
        return test(extra)
    elif args.command == "bench":
        return bench(extra)
    elif args.command == "soak":
        return soak(extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
