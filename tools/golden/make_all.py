"""Regenerates every fixture: /usr/bin/python3 tools/golden/make_all.py (Debian's python3-torch)."""
import glob
import os
import runpy

here = os.path.dirname(os.path.abspath(__file__))
for script in sorted(glob.glob(os.path.join(here, "fx_*.py"))):
    runpy.run_path(script, run_name="__main__")
