"""What a plain ``pip install .`` (no extras) gives: every runtime need of core is a dependency, and
``deblur-demo`` without gradio says which extra to install instead of a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]

# runs the console script's function with gradio made unimportable, as in an environment without the extra
_NO_GRADIO = """
import sys
sys.modules["gradio"] = None  # 'import gradio' now raises ImportError
sys.argv = ["deblur-demo"]
from deblur_demo.app import main
sys.exit(main())
"""


def test_demo_without_gradio_names_the_extra_and_exits_non_zero():
    r = subprocess.run([sys.executable, "-c", _NO_GRADIO], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "pip install 'deblur-toolkit[demo]'" in r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def test_training_curves_need_no_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("<")[0].split("=")[0].strip().lower() for d in project["dependencies"]}
    assert "matplotlib" in core  # train() saves curve.png with it
