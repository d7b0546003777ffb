"""Benchmarks of the miro-sync pipeline against the local sandbox, with a sequential baseline beside it.

``python -m bench`` (full), ``--quick`` (under two minutes), ``--smoke`` (seconds). See bench/RESULTS.md.
"""
