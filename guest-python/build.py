"""Builds a Python module project into a Worldline component.

    python build.py PROJECT_DIR OUT.wasm

Run it with the Python of a venv holding componentize-py 0.25
(``pip install componentize-py==0.25.1``). ``PROJECT_DIR/worldline.toml``
names the app module (``module = "app"``: ``PROJECT_DIR/app.py``); the SDK
(this directory's ``worldline`` package) and the WIT (``../wit``) are found
next to this file, or where ``WORLDLINE_PYTHON_SDK`` and ``WORLDLINE_WIT``
point. The module imports from the project, the SDK and that venv's
site-packages (packages ``pip install``ed into the venv), nothing else.

componentize-py's output is not byte-reproducible (see README.md), so
when nothing the build reads has changed since the last build of
``OUT.wasm`` (recorded in ``OUT.wasm.inputs``), the component is kept as
it is instead of being rebuilt: an unchanged project gives the same
component, which the server then finds in its compiled-component cache.
"""

import hashlib
import os
import pathlib
import site
import subprocess
import sys
import tomllib

HERE = pathlib.Path(__file__).resolve().parent
FORMAT = b"worldline python build 1"


def files(root, skip):
    """Every file under ``root`` (sorted, relative), hidden entries,
    ``__pycache__`` and the paths in ``skip`` left out."""
    found = []
    for directory, dirs, names in os.walk(root):
        here = pathlib.Path(directory)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__"
                         and (here / d) not in skip)
        found.extend(here / n for n in names if not n.startswith(".") and (here / n) not in skip)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def inputs_key(module, wit, python_path, site_packages, skip):
    """A digest of everything the build reads: the app module's name, the
    WIT, every file on the module's path (by content) and the venv's
    site-packages, componentize-py included (by size and modification time)."""
    digest = hashlib.sha256(FORMAT)

    def add(*parts):
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode()
            digest.update(len(data).to_bytes(8, "little") + data)

    add("module", module, "wit", wit.read_bytes())
    for position, root in enumerate(python_path):
        for path in files(root, skip):
            add(f"{position}/{path.relative_to(root).as_posix()}", path.read_bytes())
    for root in site_packages:
        for path in files(root, skip):
            stat = path.stat()
            add(f"site/{path.relative_to(root).as_posix()}", stat.st_size, stat.st_mtime_ns)
    return digest.hexdigest()


def sha256(path):
    """The SHA-256 of a file's content, or ``None`` when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    project = pathlib.Path(sys.argv[1]).resolve()
    out = pathlib.Path(sys.argv[2]).resolve()
    config = project / "worldline.toml"
    try:
        module = tomllib.loads(config.read_text())["module"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        sys.exit(f"{config}: needs a line `module = \"app\"` naming the app module ({e})")
    if sys.prefix == sys.base_prefix:
        sys.exit("run build.py with the Python of the venv holding componentize-py")
    sdk = pathlib.Path(os.environ.get("WORLDLINE_PYTHON_SDK", HERE)).resolve()
    wit = pathlib.Path(os.environ.get("WORLDLINE_WIT", HERE.parent / "wit" / "worldline.wit"))
    out.parent.mkdir(parents=True, exist_ok=True)
    # The entry module sits at a fixed path beside the output.
    entry_dir = out.parent / (out.stem + ".entry")
    entry_dir.mkdir(exist_ok=True)
    entry = entry_dir / "worldline_entry.py"
    text = f"import {module}  # noqa: F401\nfrom worldline.runtime import Guest  # noqa: F401\n"
    if not entry.exists() or entry.read_text() != text:
        entry.write_text(text)
    stamp = out.with_name(out.name + ".inputs")
    python_path = [entry_dir, project, sdk]
    site_packages = [pathlib.Path(p) for p in site.getsitepackages() if pathlib.Path(p).is_dir()]
    key = inputs_key(module, wit, python_path, site_packages, {out, stamp, entry_dir})
    try:
        recorded = stamp.read_text().split()
    except OSError:
        recorded = []
    if recorded == [key, sha256(out)]:
        print(f"{out}: up to date (nothing it is built from changed)")
        return
    stamp.unlink(missing_ok=True)
    command = [
        str(pathlib.Path(sys.executable).parent / "componentize-py"), "-d", str(wit), "-w", "module",
        "componentize", "-p", str(entry_dir), "-p", str(project), "-p", str(sdk),
        "worldline_entry", "-o", str(out),
    ]
    # componentize-py appends the site-packages of $VIRTUAL_ENV to the
    # module's path, and without it those of whatever `python3` is first on
    # $PATH: name this venv, so that the module sees its packages and not
    # the build machine's.
    # A module that fails to import is reported by componentize-py as its
    # Python traceback; with RUST_BACKTRACE set (as a Rust developer's shell
    # often has it) that is followed by some fifty lines of componentize-py's
    # own native frames, burying the module's error: leave those out.
    env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
    result = subprocess.run(command, env={**env, "VIRTUAL_ENV": sys.prefix})
    if result.returncode != 0:
        sys.exit(result.returncode)
    stamp.write_text(f"{key}\n{sha256(out)}\n")


if __name__ == "__main__":
    main()
