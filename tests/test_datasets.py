"""Bad training data and models: one line naming the file, the line and the reason, exit code 2."""
from __future__ import annotations

import pytest

from batchemo.cli import main
from batchemo.sources.labelled import DatasetError, load_csv

GOOD = " ".join(["128"] * 2304)


def _csv(tmp_path, bad_emotion="3", bad_pixels=GOOD):
    path = tmp_path / "fer2013.csv"
    rows = ["emotion,pixels,Usage"] + [f"{k % 7},{GOOD},PublicTest" for k in range(4)]
    rows.insert(3, f"{bad_emotion},{bad_pixels},PublicTest")  # line 4 of the file
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("emotion, pixels, message", [
    ("2.5", GOOD, r"fer2013\.csv:4: emotion '2\.5' is not a label 0-6"),
    ("", GOOD, r"fer2013\.csv:4: emotion '' is not a label 0-6"),
    ("7", GOOD, r"fer2013\.csv:4: emotion '7' is not a label 0-6"),
    ("3", GOOD.replace("128", "nan", 1), r"fer2013\.csv:4: pixel value nan is not a number 0-255"),
    ("3", GOOD.replace("128", "abc", 1), r"fer2013\.csv:4: pixel value 'abc' is not a number"),
])
def test_bad_csv_rows_name_file_line_and_reason(tmp_path, emotion, pixels, message):
    path = _csv(tmp_path, emotion, pixels)
    with pytest.raises(DatasetError, match=message):
        load_csv(path, None)


def test_cli_bad_csv_is_one_line_and_exit_2(tmp_path, capsys):
    path = _csv(tmp_path, "2.5")
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fer2013.csv:4: emotion '2.5'" in err and "Traceback" not in err
