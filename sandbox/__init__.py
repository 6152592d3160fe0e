"""The sandbox: all of callbridge on one machine (`python -m sandbox`)."""

import sys
from pathlib import Path

# The sandbox runs the handlers of the checkout it is started from: the layer's package is imported from here,
# before any copy an environment has installed (a virtualenv shared between checkouts points at only one).
_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "callbridge")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
