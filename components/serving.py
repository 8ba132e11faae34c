"""Where registered versions find their pyfunc class.

Versions registered before the ``components/io/`` layout were pickled as
``components.serving.MultiTaskModel``, and their pickles also carry the network, tasks and
input encoder MLflow had loaded into that instance before saving it (state that
``load_context`` replaces on load). Unpickling imports this module first, so it keeps the
old name pointing at :class:`components.io.serving.MultiTaskPyfunc` and maps the one old
module path that no longer exists, ``components.inputs``, to its new home. The classes of
``components.models`` and ``components.tasks`` are still importable from those packages.
New versions pickle no state (``MultiTaskPyfunc.__getstate__``), so they need none of this.
``tests/io/test_legacy_model.py`` loads such an old version.
"""

import sys

from components.data import encoders
from components.io.serving import MultiTaskPyfunc as MultiTaskModel

sys.modules.setdefault("components.inputs", encoders)

__all__ = ["MultiTaskModel"]
