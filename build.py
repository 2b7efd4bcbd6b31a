#!/usr/bin/env python3
"""intab's one entry point.

    python3 build.py serve   # install what is missing, prepare the model, assemble static/, serve it
    python3 build.py test    # the same build, plus Chromium, then the whole test suite
    python3 build.py build   # just build static/
    python3 build.py bench   # the build, then the benchmark with comparators (tools/bench/bench.py --help)

Every step is idempotent: it keeps a stamp of its inputs and says "up to date" when they have
not changed. Python packages go to .venv/, npm packages to node_modules/, downloads and model
builds to .cache/, the deployable site to static/.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
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

# Pure-Python packages the tab needs next to intab (Pyodide's core has none of them).
TAB_PACKAGES = {"jinja2": "3.1.6", "markupsafe": "3.0.3"}


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
    from web.assemble import assemble_web
    STATIC.mkdir(exist_ok=True)
    assemble_web(STATIC, ROOT / "node_modules")
    build_py_bundle()
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
    from bench import main as bench_main
    return bench_main(bench_args)


def main() -> int:
    ap = argparse.ArgumentParser(description="Build, serve and test intab.")
    ap.add_argument("command", choices=["build", "serve", "test", "bench"])
    ap.add_argument("--port", type=int, default=8000)
    args, extra = ap.parse_known_args()   # test: anything else goes to pytest; bench: to tools/bench/bench.py
    if extra and args.command not in ("test", "bench"):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")

    if Path(sys.prefix).resolve() != VENV.resolve():
        ensure_venv(with_test=args.command in ("test", "bench"))   # bench drives Chromium with Playwright
        os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), str(ROOT / "build.py"), *sys.argv[1:]])

    build()
    if args.command == "serve":
        serve(args.port)
    elif args.command == "test":
        return test(extra)
    elif args.command == "bench":
        return bench(extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
