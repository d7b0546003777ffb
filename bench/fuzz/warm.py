"""Imported by the fuzzer's fork server: the picture stack loaded once, before any library thread runs.

A process whose libvips threads have run cannot be forked safely (the child's thread pool lists
threads that do not exist in it); one that only imported and preloaded has a single thread.
"""

from shared.imagetype import preload

preload()
