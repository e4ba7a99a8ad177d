"""The transfer chapter's PAS verdict is gated by the alignment chapter's positive control."""

from persona import transfer, verdicts


def _a_verdict():
    return verdicts.decide(0.02, -0.39, 0.43, level=0.975, n=4, unit="subjects", paper_effect=None, effect_label="r(PAS) - r(unchanged)")


def test_a_failed_positive_control_makes_the_pas_row_not_testable():
    gated = transfer.gated_by_control(_a_verdict(), False)
    assert gated.verdict == verdicts.NOT_TESTABLE
    assert "positive control does not pass" in gated.reason and "+0.02" in gated.reason


def test_a_passed_or_unknown_control_leaves_the_verdict_as_it_is():
    verdict = _a_verdict()
    assert transfer.gated_by_control(verdict, True) is verdict
    assert transfer.gated_by_control(verdict, None) is verdict
