"""Helpers shared by the test modules: factories, live servers, HTTP peers, picture sets and small functions used in
more than one test module. Shared fixtures live here too and are registered in tests/conftest.py (pytest_plugins).

No test module imports another test module or conftest; tests/test_layout.py keeps it so."""
