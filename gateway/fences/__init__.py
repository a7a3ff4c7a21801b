"""Fences: the only modules that reach into a library's internals.

Each one is small, says which private names it touches and why, and has a test
(tests/test_fences*.py) that fails when the library changes them.
"""
