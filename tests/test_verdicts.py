from persona.verdicts import INCONCLUSIVE, NOT_REPLICATED, NOT_TESTABLE, REPLICATED, at_most, compare


def test_compare():
    assert compare(True, True) == REPLICATED
    assert compare(True, False) == INCONCLUSIVE
    assert compare(False, True) == NOT_REPLICATED
    assert compare(True, None) == REPLICATED


def test_at_most():
    assert at_most(0.1, 0.2) == REPLICATED
    assert at_most(0.1, 0.2, upper_ci=0.3) == INCONCLUSIVE
    assert at_most(0.5, 0.2, upper_ci=0.6) == NOT_REPLICATED
    assert at_most(float("nan"), 0.2) == NOT_TESTABLE
