"""Stage two's checks: one file per check, each a pure function ``(record, evidence) -> CheckResult``
with the ``Code`` enum of the reasons it gives. Which checks run, in what order, is
:mod:`pipeline.checks.registry`; what a check sees is :mod:`pipeline.checks.base`."""
