from tests.data.conftest import both, hc18, organs  # noqa: F401  (shared converted-data fixtures)
