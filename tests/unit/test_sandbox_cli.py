"""`python -m sandbox`'s command line: what each flag becomes in the sandbox's configuration."""

from __future__ import annotations

from typing import Any

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


def test_reconciliation_waits_play_at_the_simulated_speed() -> None:
    from sandbox.runtime import stack_parameters
    from sandbox.template import load_template

    template = load_template()

    at_20 = stack_parameters(template, 20, {"CarrierCallsPerSecond": "5"})

    # then: call-time waits are 20 times shorter (template defaults 75, 120 and 900 s), the rest as given
    assert at_20 == {
        "CarrierCallsPerSecond": "5",
        "ReconcileRingingAfterSeconds": "3.75",
        "ReconcileAnsweredAfterSeconds": "6",
        "ReconcileMaxIntervalSeconds": "45",
    }
    # and: a value given on the command line is taken as it is
    assert (
        stack_parameters(template, 20, {"ReconcileAnsweredAfterSeconds": "30"})["ReconcileAnsweredAfterSeconds"] == "30"
    )
    assert stack_parameters(template, 1, {})["ReconcileMaxIntervalSeconds"] == "900"


def test_the_scheduler_fires_at_the_simulated_speed() -> None:
    from sandbox.sources import ScheduleTimer, event_sources
    from sandbox.template import Stack, load_template

    # given: the template as it is (the scheduler's rule: rate(1 minute)) and its scheduler function
    template = load_template()
    (scheduler,) = (
        name
        for name, resource in template["Resources"].items()
        if any(e.get("Type") == "Schedule" for e in resource.get("Properties", {}).get("Events", {}).values())
    )
    stack = Stack(template={"Resources": {scheduler: template["Resources"][scheduler]}}, prefix="t")

    def period(**kwargs: Any) -> float:
        (runner,) = event_sources(stack, {scheduler: object()}, lambda _name: {}, print, **kwargs)  # type: ignore[dict-item]
        timer = getattr(runner, "__self__", None)
        assert isinstance(timer, ScheduleTimer)
        return timer.every

    # then: at --speed 20 the rule fires every 3 s, as the reconciliation delays are 20 times shorter: a call whose
    # final callback was lost is looked up within seconds of its delay, not at the next whole minute
    assert period(speed=20) == 3
    assert period() == 60
    # and: never more often than once a second, and --schedule-every wins whatever the speed
    assert period(speed=200) == 1
    assert period(speed=20, schedule_every=0.5) == 0.5
