"""Quarto's pre-render step: `layerwise prerender`, i.e. `layerwise run` for the params files of the
active profile(s).

Quarto runs this script with the Python on PATH, in the project directory, with QUARTO_PROFILE set to
the active profiles. When that Python does not have layerwise installed, the project's .venv (created
by `make install` / `make report`) is used instead.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    try:
        from layerwise.cli import main as layerwise_main
    except ImportError:
        venv = ROOT / ".venv"
        # a venv's python is a link to the base interpreter: compare the environments, not the executables
        if Path(sys.prefix).resolve() != venv.resolve():
            for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
                if candidate.exists():
                    return subprocess.call([str(candidate), str(Path(__file__).resolve())])
        print(f"error: layerwise is not installed for {sys.executable}. Fix: run `make install` "
              "(creates .venv) or `pip install -e .` in the Python that Quarto uses.", file=sys.stderr)
        return 2
    return layerwise_main(["prerender"])


if __name__ == "__main__":
    sys.exit(main())
