"""Builds a Python module project into a Worldline component.

    python build.py PROJECT_DIR OUT.wasm

Run it with the Python of a venv holding componentize-py 0.25
(``pip install componentize-py==0.25.1``). ``PROJECT_DIR/worldline.toml``
names the app module (``module = "app"``: ``PROJECT_DIR/app.py``); the SDK
(this directory's ``worldline`` package) and the WIT (``../wit``) are found
next to this file, or where ``WORLDLINE_PYTHON_SDK`` and ``WORLDLINE_WIT``
point.
"""

import os
import pathlib
import subprocess
import sys
import tomllib

HERE = pathlib.Path(__file__).resolve().parent


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
    sdk = pathlib.Path(os.environ.get("WORLDLINE_PYTHON_SDK", HERE))
    wit = pathlib.Path(os.environ.get("WORLDLINE_WIT", HERE.parent / "wit" / "worldline.wit"))
    out.parent.mkdir(parents=True, exist_ok=True)
    # The entry module sits at a fixed path beside the output, so that
    # building the same sources again gives the same bytes.
    entry_dir = out.parent / (out.stem + ".entry")
    entry_dir.mkdir(exist_ok=True)
    entry = entry_dir / "worldline_entry.py"
    entry.write_text(f"import {module}  # noqa: F401\nfrom worldline.runtime import Guest  # noqa: F401\n")
    command = [
        str(pathlib.Path(sys.executable).parent / "componentize-py"), "-d", str(wit), "-w", "module",
        "componentize", "-p", str(entry_dir), "-p", str(project), "-p", str(sdk),
        "worldline_entry", "-o", str(out),
    ]
    sys.exit(subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": "0"}).returncode)


if __name__ == "__main__":
    main()
