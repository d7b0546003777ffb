"""Fuzzing the picture stack: mutated pictures of every kind through ``inspect`` and ``prepare_upload``.

* :mod:`~bench.fuzz.isolated`: :func:`~bench.fuzz.isolated.run_one`, the one seam: a file in, a
  :class:`~bench.fuzz.isolated.Verdict` out, the picture stack run where a crash cannot reach the caller.
* :mod:`~bench.fuzz.seeds`: the pictures mutations start from, made at run time (nothing committed).
* :mod:`~bench.fuzz.structure`: where a file's chunks, boxes, segments, IFDs and size fields are.
* :mod:`~bench.fuzz.mutate`: mutations as data (:class:`~bench.fuzz.mutate.Mutation`), so a case is
  its seed's name and a short list, printable and replayable.
* :mod:`~bench.fuzz.bombs`: metadata bombs (huge EXIF/XMP/ICC/text, deep IFD chains) per kind.
* :mod:`~bench.fuzz.campaign`: the long run, ``python -m bench fuzz``; findings saved as files.

The short run is ``tests/imagetype/test_fuzz.py`` (Hypothesis, a fixed seed, seconds).
"""
