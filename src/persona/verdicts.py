"""The rule every verdict of the book follows, and the statistics behind it.

A claim of a paper is tested as an *effect in the claimed direction* (positive = as claimed), estimated
with a confidence interval from units that are independent (subjects, or items for tests without
subjects): never from items nested in subjects or generations nested in items.

* **replicated**: the interval excludes no effect, in the claimed direction (its lower end is above 0;
  for a bound claim "value <= bound", its upper end is at most the bound);
* **not replicated**: the interval excludes the effect size the paper reports (its upper end is below the
  paper's effect, which is named), or the estimate is significantly in the opposite direction; for a
  bound claim, the interval lies above the bound;
* **inconclusive at this scale**: everything else, always with the power this run had to detect the
  paper's effect and the number of units that 80% power would need;
* **not testable here**: the data or model is missing, the evidence does not test the claim (e.g. two
  methods that gave identical answers), or the input holds NaN;
* **not testable on this model**: the capability check the claim rests on (``persona.gate``: steering moves
  answers, the model reads content, personas move answers) failed or could not be decided for this model; the
  failure, with its numbers, is then the finding.

When an interval lies in the claimed direction *and* below the paper's effect, ``replicated`` takes
precedence (the direction is what the claim states) and the evidence line adds "smaller than the paper's ...".

Multiplicity: each chapter passes the number of verdicts it decides (``family_size``) and every interval
is widened to the Bonferroni level ``1 - alpha / family_size``, so a chapter's verdicts hold together at
``alpha``. Intervals are Student-t (paired differences, Welch for two independent samples) or, where no
closed form applies (agreement statistics), a percentile bootstrap over the independent units. Power is
that of the same two-sided test (noncentral t), at the paper's effect and this run's standard error.
Where every unit gives the same difference (a model whose answers never move), zero spread is not zero
uncertainty: the interval is an exact binomial one over the share of units that could differ
(``constant_interval``), and no power is claimed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

REPLICATED = "replicated"
NOT_REPLICATED = "not replicated"
INCONCLUSIVE = "inconclusive at this scale"
NOT_TESTABLE = "not testable here"
NOT_TESTABLE_ON_MODEL = "not testable on this model"
VERDICTS = (REPLICATED, NOT_REPLICATED, INCONCLUSIVE, NOT_TESTABLE, NOT_TESTABLE_ON_MODEL)
TARGET_POWER = 0.8


@dataclass(frozen=True)
class Verdict:
    """A verdict with everything a reader needs to check it: effect, interval, n, power, reason."""

    verdict: str
    reason: str
    effect: float = float("nan")  # point estimate, in the claimed direction
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    level: float = float("nan")  # confidence level of the interval (after the multiplicity adjustment)
    n: int = 0
    unit: str = "subjects"
    power: float = float("nan")  # power to detect the paper's effect at this n (NaN: no paper effect)
    n_needed: int | None = None  # units for 80% power at the paper's effect
    paper_effect: float | None = None
    paper_label: str = ""
    effect_label: str = "effect"
    power_for: str = ""  # what the power is the power to detect (set from the paper's effect when empty)
    digits: int = 2

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    def _num(self, value: float) -> str:
        return f"{value:.{self.digits}f}"

    @property
    def interval(self) -> str:
        if not np.isfinite(self.ci_low):
            return "no interval"
        return f"[{self._num(self.ci_low)}, {self._num(self.ci_high)}] ({100 * self.level:.4g}% CI)"

    @property
    def power_text(self) -> str:
        target = self.power_for or (f"the paper's {self._num(self.paper_effect)}" if self.paper_effect is not None
                                    else "")
        if not target:
            return "no power figure (the paper reports no effect size for this claim)"
        if not np.isfinite(self.power):
            return f"power to detect {target} not computable at n = {self.n}"
        needed = f"; about {self.n_needed} {self.unit} for 80%" if self.n_needed else ""
        return f"power {self.power:.0%} to detect {target}{needed}"

    @property
    def evidence(self) -> str:
        """One line for a findings table: effect, interval, n, power."""
        if self.verdict == NOT_TESTABLE_ON_MODEL or (self.verdict == NOT_TESTABLE and not np.isfinite(self.effect)):
            return self.reason
        return (f"{self.effect_label} {self._num(self.effect)} {self.interval}, n = {self.n} {self.unit}"
                f"{self.qualifier}; {self.power_text}")

    @property
    def qualifier(self) -> str:
        """"; smaller than the paper's X" when a replicated interval lies below the paper's effect."""
        if (self.verdict == REPLICATED and self.paper_effect is not None and np.isfinite(self.ci_high)
                and self.ci_high < self.paper_effect):
            return f"; smaller than the paper's {self._num(self.paper_effect)}"
        return ""

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "effect": self.effect, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "level": self.level, "n": self.n, "unit": self.unit, "power": self.power,
                "n_needed": self.n_needed, "paper_effect": self.paper_effect, "reason": self.reason}


def not_testable(reason: str) -> Verdict:
    return Verdict(NOT_TESTABLE, reason)


# ------------------------------------------------------------------------------------------ power


def power_t(effect: float, se: float, df: float, level: float) -> float:
    """Power of a two-sided t test at ``level`` to detect ``effect`` given a standard error ``se``."""
    if not (np.isfinite(effect) and np.isfinite(se) and df > 0):
        return float("nan")
    if se <= 0:
        return 1.0 if effect != 0 else 0.0
    crit = stats.t.ppf(1 - (1 - level) / 2, df)
    nc = abs(effect) / se
    value = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    if not np.isfinite(value):  # scipy's noncentral t breaks down far in the tail: the normal approximation
        value = stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc)
    return float(min(max(value, 0.0), 1.0))


def n_for_power(effect: float, se_at: Callable[[int], tuple[float, float]], level: float,
                target: float = TARGET_POWER, limit: int = 100_000) -> int | None:
    """Smallest n whose power reaches ``target``; ``se_at(n) -> (se, df)`` says how the error shrinks."""
    if not np.isfinite(effect) or effect == 0:
        return None
    lo, hi = 2, 2
    while power_t(effect, *se_at(hi), level) < target:
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while lo < hi:  # power grows with n: bisect
        mid = (lo + hi) // 2
        if power_t(effect, *se_at(mid), level) >= target:
            hi = mid
        else:
            lo = mid + 1
    return hi


# ------------------------------------------------------------------------------------------ the rule


def decide(effect: float, ci_low: float, ci_high: float, *, level: float, n: int, unit: str,
           paper_effect: float | None, paper_label: str = "", power: float = float("nan"),
           n_needed: int | None = None, effect_label: str = "effect", digits: int = 2) -> Verdict:
    """Apply the rule (module docstring) to an effect in the claimed direction and its interval."""
    common = dict(effect=effect, ci_low=ci_low, ci_high=ci_high, level=level, n=n, unit=unit, power=power,
                  n_needed=n_needed, paper_effect=paper_effect, paper_label=paper_label,
                  effect_label=effect_label, digits=digits)
    fmt = f"{{:.{digits}f}}".format
    if not all(np.isfinite([effect, ci_low, ci_high])):
        return Verdict(INCONCLUSIVE, f"one unit gives no interval (n = {n} {unit})", **common)
    if ci_low > 0:
        smaller = (f"; smaller than the paper's {fmt(paper_effect)}"
                   if paper_effect is not None and ci_high < paper_effect else "")
        return Verdict(REPLICATED, f"the interval lies above 0, in the claimed direction{smaller}", **common)
    if ci_high < 0:
        return Verdict(NOT_REPLICATED, "the estimate is significantly in the opposite direction", **common)
    if paper_effect is not None and ci_high < paper_effect:
        return Verdict(NOT_REPLICATED, f"the interval excludes the paper's effect of {fmt(paper_effect)}"
                       f"{f' ({paper_label})' if paper_label else ''}", **common)
    return Verdict(INCONCLUSIVE, "the interval includes no effect"
                   + (f" and the paper's {fmt(paper_effect)}" if paper_effect is not None else ""), **common)


def _level(alpha: float, family_size: int) -> float:
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    return 1 - alpha / family_size


def _aligned(x: pd.Series, y: pd.Series) -> tuple[np.ndarray, np.ndarray] | str:
    """Paired values, or the reason they cannot be paired (raises on mismatched units)."""
    if not isinstance(x, pd.Series) or not isinstance(y, pd.Series):
        raise TypeError("paired data must be pandas Series indexed by the unit (e.g. subject)")
    if x.index.has_duplicates or y.index.has_duplicates:
        raise ValueError("each unit may appear once per side")
    if set(x.index) != set(y.index):
        only = sorted(set(x.index) ^ set(y.index), key=str)[:5]
        raise ValueError(f"the two sides cover different units (e.g. {only}); a paired comparison needs the same")
    y = y.loc[x.index]
    if len(x) == 0:
        return "no data"
    if x.isna().any() or y.isna().any():
        return "the data hold NaN (a method gave no answer for some unit)"
    return x.to_numpy(float), y.to_numpy(float)


def could_differ(n: int, level: float) -> float:
    """Upper confidence bound (Clopper-Pearson, two-sided ``level``) on the share of units that differ from a
    value when none of ``n`` sampled units did: ``1 - ((1 - level) / 2) ** (1 / n)``."""
    return 1 - ((1 - level) / 2) ** (1 / n)


def constant_interval(value: float, n: int, level: float, bound: float,
                      low: float | None = None) -> tuple[float, float]:
    """Interval for a mean when all ``n`` sampled units gave the same ``value`` and a unit's value can lie
    anywhere in ``[low, bound]`` (``low`` defaults to ``-bound``): no t interval (zero spread is not zero
    uncertainty), but an exact one. Zero of ``n`` units differed from ``value``, so at most
    ``q = could_differ(n, level)`` of the population does; those could sit anywhere on the scale, the rest sit
    at ``value``."""
    q = could_differ(n, level)
    low = -bound if low is None else low
    return value - q * (value - low), value + q * (bound - value)


def paired(x: pd.Series, y: pd.Series, *, higher_is_better: bool, paper_effect: float | None,
           paper_label: str = "", family_size: int = 1, alpha: float = 0.05, unit: str = "subjects",
           effect_label: str = "effect", digits: int = 2, identical_is_evidence: bool = False,
           bound: float | None = None) -> Verdict:
    """Claim "X beats Y" on per-unit values (same units on both sides): a paired t interval.

    The effect is ``x - y`` when higher is better, ``y - x`` when lower is better (e.g. an error), so a
    positive effect always favours X. Two sides that are identical for every unit are *not testable* when
    they are the same thing (PAS that chose alpha = 0 is few-shot: the comparison holds no contrast); with
    ``identical_is_evidence`` (two models, two personas: things that could have differed) they are evidence
    of no difference. When every unit gives the same difference, a t interval would have zero width and claim
    certainty that n units cannot give: with ``bound`` (the largest |difference| the scale allows) the
    interval is ``constant_interval``'s exact binomial one and power is not computed; without it, no interval.
    """
    pair = _aligned(x, y)
    if isinstance(pair, str):
        return not_testable(pair)
    a, b = pair
    diff = (a - b) if higher_is_better else (b - a)
    n = len(diff)
    level = _level(alpha, family_size)
    if np.all(diff == 0) and not identical_is_evidence:
        return not_testable("the two sides are identical for every unit: the comparison holds no contrast")
    mean = float(diff.mean())
    if n < 2:
        return decide(mean, float("nan"), float("nan"), level=level, n=n, unit=unit, paper_effect=paper_effect,
                      paper_label=paper_label, effect_label=effect_label, digits=digits)
    if np.all(diff == diff[0]):
        return _constant(float(diff[0]), n, level, bound, unit=unit, paper_effect=paper_effect,
                         paper_label=paper_label, effect_label=effect_label, digits=digits)
    sd = float(diff.std(ddof=1))
    se = sd / math.sqrt(n)
    half = stats.t.ppf(1 - (1 - level) / 2, n - 1) * se
    power = power_t(paper_effect, se, n - 1, level) if paper_effect is not None else float("nan")
    needed = (n_for_power(paper_effect, lambda m: (sd / math.sqrt(m), m - 1), level)
              if paper_effect is not None and sd > 0 else None)
    return decide(mean, mean - half, mean + half, level=level, n=n, unit=unit, paper_effect=paper_effect,
                  paper_label=paper_label, power=power, n_needed=needed, effect_label=effect_label, digits=digits)


def _constant(value: float, n: int, level: float, bound: float | None, *, unit: str, **named) -> Verdict:
    same = f"all {n} {unit} gave the same difference ({value:.{named['digits']}f})"
    if bound is None:
        return Verdict(INCONCLUSIVE, f"{same}: zero spread gives a t interval of zero width, and the scale sets no "
                       "bound for an exact one", effect=value, n=n, unit=unit, level=level, **named)
    low, high = constant_interval(value, n, level, bound)
    verdict = decide(value, low, high, level=level, n=n, unit=unit, **named)
    share = could_differ(n, level)
    return replace(verdict, reason=f"{verdict.reason} ({same}; an exact binomial interval: at most {share:.1%} of "
                   f"{unit} could differ, anywhere within ±{bound:g}; power is not computed for zero spread)")


def _side_interval(v: np.ndarray, level: float, scale: tuple[float, float]) -> tuple[float, float]:
    """Interval for one sample's mean within ``scale``: exact binomial when its units all agree, else t, clipped."""
    lo, hi = scale
    if np.all(v == v[0]):
        return constant_interval(float(v[0]), v.size, level, bound=hi, low=lo)
    half = stats.t.ppf(1 - (1 - level) / 2, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return max(lo, float(v.mean()) - half), min(hi, float(v.mean()) + half)


def two_samples(x: Sequence[float], y: Sequence[float], *, higher_is_better: bool, paper_effect: float | None,
                paper_label: str = "", family_size: int = 1, alpha: float = 0.05, unit: str = "items",
                effect_label: str = "effect", digits: int = 2, scale: tuple[float, float] | None = None) -> Verdict:
    """Claim "X beats Y" on two independent samples of units (e.g. items of two tests): a Welch interval.

    With ``scale`` (the range a unit's value can take, e.g. (0, 100) for a percentage): a side whose units all
    agree is not treated as exact (zero spread is not zero uncertainty). Each side then gets its own interval at
    ``1 - (1 - level) / 2`` (exact binomial for the constant side, t clipped to the scale for the other) and the
    difference's interval joins them (conservative: the two sides hold together at ``level``); no power is
    claimed. A Welch interval is clipped to the largest difference the scale allows.
    """
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.size == 0 or b.size == 0:
        return not_testable("no data on one side")
    if np.isnan(a).any() or np.isnan(b).any():
        return not_testable("the data hold NaN")
    level = _level(alpha, family_size)
    sign = 1 if higher_is_better else -1
    mean = sign * float(a.mean() - b.mean())
    n = int(a.size + b.size)
    common = dict(level=level, n=n, unit=unit, paper_effect=paper_effect, paper_label=paper_label,
                  effect_label=effect_label, digits=digits)
    if a.size < 2 or b.size < 2:
        return decide(mean, float("nan"), float("nan"), **common)
    constant = [name for name, v in (("X", a), ("Y", b)) if np.all(v == v[0])]
    if scale is not None and constant:
        side = 1 - (1 - level) / 2
        (a_lo, a_hi), (b_lo, b_hi) = _side_interval(a, side, scale), _side_interval(b, side, scale)
        low, high = (a_lo - b_hi, a_hi - b_lo) if sign > 0 else (b_lo - a_hi, b_hi - a_lo)
        verdict = decide(mean, low, high, **common)
        sides = " and ".join(f"all {v.size} {unit} of one side gave {float(v[0]):g}" for v in (a, b) if np.all(v == v[0]))
        return replace(verdict, reason=f"{verdict.reason} ({sides}: an exact binomial interval for that side, each "
                       f"side at {side:.4g}; power is not computed)")
    va, vb = a.var(ddof=1), b.var(ddof=1)

    def se_df(na: float, nb: float) -> tuple[float, float]:
        se2 = va / na + vb / nb
        if se2 == 0:
            return 0.0, na + nb - 2
        df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        return math.sqrt(se2), df

    se, df = se_df(a.size, b.size)
    if se == 0:  # both sides constant and no scale to bound them: no interval, never a zero-width one
        return Verdict(INCONCLUSIVE, "both samples have zero spread and the scale sets no bound for an exact "
                       "interval", effect=mean, **common)
    half = stats.t.ppf(1 - (1 - level) / 2, df) * se
    low, high = mean - half, mean + half
    if scale is not None:
        span = scale[1] - scale[0]
        low, high = max(low, -span), min(high, span)
    power = power_t(paper_effect, se, df, level) if paper_effect is not None else float("nan")
    share = a.size / n
    needed = (n_for_power(paper_effect, lambda m: se_df(max(2.0, share * m), max(2.0, (1 - share) * m)), level)
              if paper_effect is not None else None)
    return decide(mean, low, high, power=power, n_needed=needed, **common)


def bootstrap(statistic: Callable[[np.ndarray], float], units: int, *, claimed: float, paper_effect: float | None,
              paper_label: str = "", family_size: int = 1, alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
              unit: str = "items", effect_label: str = "effect", digits: int = 2) -> Verdict:
    """Claim "statistic > claimed" with a percentile bootstrap over ``units`` independent units.

    ``statistic(index)`` computes the statistic on the units at ``index`` (drawn with replacement); the
    effect is ``statistic - claimed`` (e.g. agreement beyond chance: kappa - 0). Power uses the normal
    approximation with the bootstrap standard error.
    """
    if units == 0:
        return not_testable("no data")
    level = _level(alpha, family_size)
    point = float(statistic(np.arange(units)))
    if not np.isfinite(point):
        return not_testable("the statistic is undefined on these data")
    rng = np.random.default_rng(seed)
    reps = np.array([statistic(rng.integers(0, units, units)) for _ in range(n_boot)], dtype=float)
    reps = reps[np.isfinite(reps)]
    if units < 2 or reps.size < n_boot // 2:
        return decide(point - claimed, float("nan"), float("nan"), level=level, n=units, unit=unit,
                      paper_effect=paper_effect, paper_label=paper_label, effect_label=effect_label, digits=digits)
    low, high = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    se = float(reps.std(ddof=1))
    power = power_t(paper_effect, se, np.inf, level) if paper_effect is not None else float("nan")
    needed = (n_for_power(paper_effect, lambda m: (se * math.sqrt(units / m), np.inf), level)
              if paper_effect is not None and se > 0 else None)
    return decide(point - claimed, low - claimed, high - claimed, level=level, n=units, unit=unit,
                  paper_effect=paper_effect, paper_label=paper_label, power=power, n_needed=needed,
                  effect_label=effect_label, digits=digits)


def at_most(values: pd.Series, bound: float, *, family_size: int = 1, alpha: float = 0.05,
            unit: str = "subjects", effect_label: str = "ratio", log_scale: bool = True,
            digits: int = 2) -> Verdict:
    """Claim "value <= bound" (e.g. a time ratio of at most 1/5) from per-unit values.

    On the log scale (ratios) the interval is a t interval of the mean log value, reported back as a
    geometric mean. Replicated: the interval's upper end is at most the bound; not replicated: its lower
    end is above the bound; otherwise inconclusive, with the power to tell the observed value from the
    bound at this n and the n that 80% power would need (both at the observed value: a planning figure).
    """
    v = np.asarray(values, float)
    if v.size == 0:
        return not_testable("no data")
    if np.isnan(v).any():
        return not_testable("the data hold NaN")
    if log_scale and (v <= 0).any():
        raise ValueError("a ratio on the log scale must be positive")
    t = np.log(v) if log_scale else v
    b = math.log(bound) if log_scale else bound
    back = np.exp if log_scale else (lambda z: z)
    level = _level(alpha, family_size)
    n = int(v.size)
    mean = float(t.mean())
    common = dict(level=level, n=n, unit=unit, paper_effect=None, effect_label=effect_label, digits=digits)
    fmt = f"{{:.{digits}f}}".format
    if n < 2:
        return Verdict(INCONCLUSIVE, f"one {unit[:-1]} gives no interval", effect=float(back(mean)), **common)
    sd = float(t.std(ddof=1))
    se = sd / math.sqrt(n)
    half = stats.t.ppf(1 - (1 - level) / 2, n - 1) * se
    low, high = float(back(mean - half)), float(back(mean + half))
    gap = mean - b
    power = power_t(gap, se, n - 1, level)
    needed = n_for_power(gap, lambda m: (sd / math.sqrt(m), m - 1), level) if sd > 0 else None
    values_ = dict(effect=float(back(mean)), ci_low=low, ci_high=high, power=power, n_needed=needed,
                   power_for=f"the observed {fmt(float(back(mean)))} from {fmt(bound)}")
    if high <= bound:
        return Verdict(REPLICATED, f"the interval lies at or below {fmt(bound)}", **values_, **common)
    if low > bound:
        return Verdict(NOT_REPLICATED, f"the interval lies above {fmt(bound)}", **values_, **common)
    return Verdict(INCONCLUSIVE, f"the interval includes {fmt(bound)}", **values_, **common)


def table(verdicts: dict[str, Verdict]) -> pd.DataFrame:
    """The verdicts of a chapter as one table (for display next to the glued text)."""
    return pd.DataFrame({k: v.as_dict() for k, v in verdicts.items()}).T
