"""The serving benchmark's write-up records how it was run, without paths of the machine that ran it."""

from __future__ import annotations

from benchmarks.serving import recorded_command


def test_the_recorded_command_leaves_out_the_mlserver_venv_path() -> None:
    assert recorded_command(["--grpc", "--mlserver-venv", "/srv/bench/venv", "--write-docs"]) == \
        "python benchmarks/serving.py --grpc --write-docs"
    assert recorded_command(["--mlserver-venv=/srv/bench/venv", "--rounds", "5"]) == \
        "python benchmarks/serving.py --rounds 5"
    assert recorded_command([]) == "python benchmarks/serving.py"
