"""The picture stack: what a file is, whether it is sound, and the bytes Miro gets.

* :mod:`~shared.image.sniff`: the kind from the first bytes (pure; the watcher's check).
* :mod:`~shared.image.validate`: :func:`inspect`, a file checked and measured, cheaply.
* :mod:`~shared.image.convert`: :func:`prepare_upload`, the file itself or a converted copy that fits.
* :mod:`~shared.image.isolated`: the same, run where a decoder's crash, memory blow-up or hang costs
  one picture (a converter child process); what the worker calls.
* :mod:`~shared.image.gps`: the GPS position cut out of a file sent as it is.
* :mod:`~shared.image.jpeg`, :mod:`~shared.image.png`: their structure, walked without decoding (validate and gps use them).

Imaging libraries are imported on first use: the watcher only sniffs and must stay small.
"""
