from omnimedseg.testing import check_converter
from tests.converters.fake.hc18 import make_remote_files


def test_hc18_end_to_end_on_fake_raw_data(tmp_path):
    check_converter("hc18", make_remote_files, tmp_path, expected_splits={"train": 3, "test": 2})
