"""`python -m sandbox`'s command line: what each flag becomes in the sandbox's configuration."""

from __future__ import annotations

import pytest

from sandbox.__main__ import parse_args


def test_seed_is_passed_to_the_carriers_fault_draws() -> None:
    config = parse_args(["--faults", "--seed", "42"])
    assert (config.faults, config.seed) == (True, 42)


def test_without_seed_the_simulator_draws_one() -> None:
    assert parse_args(["--faults"]).seed is None


def test_seed_must_be_a_whole_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--faults", "--seed", "x"])
    assert "--seed" in capsys.readouterr().err
