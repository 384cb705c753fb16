"""``synthmed run``: import -> train -> generate -> evaluate -> utility -> report in one run
directory, each stage skipped when its inputs are unchanged (see :mod:`.markers`)."""

from synthmed.pipeline.runner import run

__all__ = ["run"]
