"""Where registered versions find their pyfunc class.

Versions registered before the ``components/io/`` layout were pickled as
``components.serving.MultiTaskModel``; unpickling them imports this module, so the name
stays and points at :class:`components.io.serving.MultiTaskPyfunc`, which reads their
artifacts unchanged (``tests/io/test_legacy_model.py`` loads one).
"""

from components.io.serving import MultiTaskPyfunc as MultiTaskModel

__all__ = ["MultiTaskModel"]
