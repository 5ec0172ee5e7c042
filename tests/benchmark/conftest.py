from tests.data.conftest import hc18, organs  # noqa: F401  (shared converted-data fixtures)
