"""The method interface: order averaging, prompts per convention, adapters, and the PAS protocols."""

from __future__ import annotations

import json

import numpy as np
import pytest
from methods_fixtures import papi_items, per_domain
from tiny_models import tiny_model, tiny_tokenizer

from persona.engine import Engine, OptionProbs
from persona.papi import Item, Subject
from persona.papi.methods.answering import AnswerMode, Answers, few_shot_system, ask_items, selection_loss
from persona.papi.methods.base import Method
from persona.papi.methods.pas import CONTENT, PALIGN, PAS, agree_directions, contrast_activations, dose_response
from persona.papi.methods.prompting import FewShot, NoChange, PersonalityPrompt


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


class LetterABias:
    """A stub engine that always puts 0.6 on the first presented letter and 0.1 on each other one."""

    tokenizer = tiny_tokenizer()  # decides the answer cue: "(" and "A" are two tokens for it

    def __init__(self):
        self.prompts = []

    def label_probs(self, prompts):
        self.prompts.extend(prompts)
        raw = np.zeros((len(prompts), 5))
        for i, p in enumerate(prompts):
            raw[i, list(p.identity_of_position)] = [0.6, 0.1, 0.1, 0.1, 0.1]
        return OptionProbs(probs=raw / raw.sum(1, keepdims=True), mass=raw.sum(1), raw=raw)


ITEM_PLUS = Item(1, 1, "N", "N1", "Anxiety", +1, "Worry about things.")
ITEM_MINUS = Item(31, 31, "N", "N1", "Anxiety", -1, "Am not easily bothered by things.")
ITEM_MISSING = Item(61, None, "N", "N1", "Anxiety", +1, "Fear for the worst.")


def test_orders_are_averaged_in_identity_order():
    answers = ask_items(LetterABias(), [ITEM_PLUS], system=None)
    # original order: identity 0 gets 0.6; reversed: identity 4 gets 0.6 -> mean 0.35, 0.1, 0.1, 0.1, 0.35
    np.testing.assert_allclose(answers.probs[0], [0.35, 0.1, 0.1, 0.1, 0.35])
    assert answers.expected[0] == pytest.approx(3.0)  # a pure letter bias cancels out
    assert answers.agreement[0] == 5  # ties go to the first identity (Very Accurate)


def test_prompts_end_with_the_answer_cue_and_letter_mass_is_kept():
    engine = LetterABias()
    answers = ask_items(engine, [ITEM_PLUS, ITEM_MINUS], system=None)
    assert [p.assistant_prefix for p in engine.prompts] == ["("] * 6  # 2 items x 2 orders + 2 content-free
    np.testing.assert_allclose(answers.mass, [1.0, 1.0])
    assert answers.frame()["label_mass"].tolist() == [1.0, 1.0]
    ask_items(engine, [ITEM_PLUS], system=None, mode=AnswerMode(cue=""))
    assert engine.prompts[-1].assistant_prefix == ""


def test_each_order_and_its_content_free_prior_are_kept():
    engine = LetterABias()
    answers = ask_items(engine, [ITEM_PLUS], system=None)
    frame = answers.frame()
    columns = [[f"{kind}{v}_{tag}" for v in (5, 4, 3, 2, 1)] for kind, tag in (("p", "orig"), ("p", "rev"), ("cf", "orig"))]
    np.testing.assert_allclose(frame[columns[0]].iloc[0], [0.6, 0.1, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(frame[columns[1]].iloc[0], [0.1, 0.1, 0.1, 0.1, 0.6])
    # the stub's letter bias is the same for the content-free question: calibration removes it entirely
    np.testing.assert_allclose(frame[columns[2]].iloc[0], [0.6, 0.1, 0.1, 0.1, 0.1])
    assert "N/A" in engine.prompts[-1].user.upper()


def test_few_shot_prompt_per_convention():
    subject = Subject(case=7, index=0, answers={1: 5, 31: 5, 61: 0})
    paper = few_shot_system(subject, [ITEM_PLUS, ITEM_MINUS, ITEM_MISSING], "paper")
    corrected = few_shot_system(subject, [ITEM_PLUS, ITEM_MINUS, ITEM_MISSING], "corrected")
    header = "Here are some of your behaviors and your level of recognition towards them;"
    assert paper == header + ("Worry about things.:Very Accurate;Am not easily bothered by things.:Very Accurate;"
                              "Fear for the worst.:Unknown")
    assert corrected == header + "Worry about things.:Very Accurate;Am not easily bothered by things.:Very Inaccurate"


def test_p2_paragraphs_follow_test_set_order():
    from persona.datafiles import fetch
    from persona.papi.methods.prompting import personality_paragraphs

    _, _ = papi_items()  # skips without data
    from persona import papi

    subjects = papi.load_subjects(limit=3)
    records = json.loads(fetch("papi/personality_prompt.json").read_text())
    assert len(personality_paragraphs()) == 300
    for subject in subjects:
        # the P^2 input of row i lists subject i's first item with its stored value, as PAlign built it
        label = {5: "Very Accurate", 4: "Moderately Accurate", 3: "Neither Accurate Nor Inaccurate",
                 2: "Moderately Inaccurate", 1: "Very Inaccurate"}[subject.answers[1]]
        assert f"Worry about things.:{label};" in records[subject.index]["input"]
        method = PersonalityPrompt(LetterABias())
        method.fit(subject, [])
        assert method.system == records[subject.index]["output"][0]


@pytest.fixture(scope="module")
def tiny_setup():
    known, heldout = papi_items()
    tok = tiny_tokenizer()
    model = tiny_model("llama", tok, seed=1)
    engine = Engine(model, tok)
    from persona import papi

    subject = papi.load_subjects(limit=1)[0]
    return engine, subject, per_domain(known, 6), per_domain(heldout, 3)


def test_no_change_is_subject_independent_and_cached(tiny_setup):
    engine, subject, known, test = tiny_setup
    method = NoChange(engine)
    method.fit(subject, known)
    assert method.answer(test) is method.answer(test)


def test_pas_test_tuned_protocol_never_worse_than_alpha_zero(tiny_setup):
    engine, subject, known, test = tiny_setup
    acts = contrast_activations(engine, known, PALIGN)
    assert acts.shape == (len(known), 2, 2, 4, 16)
    for convention in ("paper", "corrected"):
        pas = PAS(engine, acts, known, contrast=PALIGN, protocol="test-tuned", test_items=test, convention=convention,
                  k_share=0.5, alphas=(0, 2, 8))
        pas.fit(subject, known)
        few = FewShot(engine, convention)
        few.fit(subject, known)
        base = few.answer(test)
        np.testing.assert_allclose(pas._answers[(tuple(i.number for i in test), 0)].probs, base.probs, atol=1e-9)
        chosen = selection_loss(pas.answer(test), subject, test, convention)
        assert chosen <= selection_loss(base, subject, test, convention) + 1e-12
        assert chosen == min(t["loss"] for t in pas.trace)
        assert [t["alpha"] for t in pas.trace] == [0, 2, 8] and all(t["on"] == "test" for t in pas.trace)


def test_content_contrasts_balance_letters_within_each_class(tiny_setup):
    engine, _, known, _ = tiny_setup
    texts = CONTENT.texts(engine, known[0])
    assert len(texts) == 4 and CONTENT.agree == (True, False, True, False)
    # original order: agree = A, disagree = E; reversed: agree = E, disagree = A; every prompt ends with the cue
    assert [t[-2:] for t in texts] == ["(A", "(E", "(E", "(A"]
    assert contrast_activations(engine, known[:3], CONTENT).shape == (3, 4, 2, 4, 16)


def test_positive_control_moves_the_expected_answer_both_ways(tiny_setup):
    engine, _, known, test = tiny_setup
    acts = contrast_activations(engine, known, CONTENT)
    directions = agree_directions(acts, CONTENT, k=4)
    curve = dose_response(engine, test[:4], directions, alphas=(-8, 0, 8))
    assert set(curve["order"]) == {"original", "reversed", "both"}
    means = curve[curve["order"] == "both"].groupby("alpha")["expected"].mean()
    assert means.loc[-8] != means.loc[0] != means.loc[8]  # the hook reaches the answers


def test_pas_honest_protocol_never_sees_test_items(tiny_setup):
    engine, subject, known, test = tiny_setup
    acts = contrast_activations(engine, known)

    class Recording:
        def __init__(self, inner):
            self.inner, self.users = inner, []

        def label_probs(self, prompts):
            self.users.extend(p.user for p in prompts)
            return self.inner.label_probs(prompts)

    recorder = Recording(engine)
    recorder.model, recorder.tokenizer = engine.model, engine.tokenizer
    pas = PAS(recorder, acts, known, protocol="honest", k_share=0.5, alphas=(0, 4))
    pas.fit(subject, known)
    assert pas.alpha in (0, 4) and [t["alpha"] for t in pas.trace] == [0, 4]
    assert all(t["on"] == "validation" for t in pas.trace) and pas.trace[-1]["wall_s"] >= pas.trace[0]["wall_s"]
    assert recorder.users and not any(item.text.lower() in u for item in test for u in recorder.users)
    answers = pas.answer(test)
    assert answers.info["alpha"] == pas.alpha and answers.probs.shape == (len(test), 5)


def test_pas_with_hooks_leaves_model_unchanged(tiny_setup):
    engine, subject, known, test = tiny_setup
    before = ask_items(engine, test[:3], None).probs
    acts = contrast_activations(engine, known)
    pas = PAS(engine, acts, known, protocol="test-tuned", test_items=test, k_share=0.5, alphas=(0, 8))
    pas.fit(subject, known)
    np.testing.assert_array_equal(ask_items(engine, test[:3], None).probs, before)
    assert isinstance(pas, Method) and isinstance(Answers((), np.zeros((0, 5))).frame(), object)


class ScriptedGenerator:
    """A stub engine whose ``answer`` returns a scripted option identity (or refusal) per prompt."""

    tokenizer = tiny_tokenizer()

    def __init__(self, script):
        self.script = list(script)
        self.model = "base"

    def answer(self, prompts, **kwargs):
        from persona.engine.parsing import GenerationResult

        outcome = [self.script.pop(0) for _ in prompts]
        return GenerationResult(texts=[""] * len(prompts), outcome=outcome)


GENERATION = AnswerMode(kind="generation")


def test_generation_mode_one_hot_answers_and_missing_ones():
    # prompts go order by order: [original: item+, item-], [reversed: item+, item-]
    engine = ScriptedGenerator([1, "refused", 1, "unparseable"])
    answers = ask_items(engine, [ITEM_PLUS, ITEM_MINUS], None, GENERATION)
    np.testing.assert_allclose(answers.probs[0], [0, 1, 0, 0, 0])
    assert answers.agreement[0] == 4  # identity 1 = Moderately Accurate
    assert np.isnan(answers.agreement[1])  # no order gave an option: no answer, not "Very Accurate"
    np.testing.assert_allclose(answers.mass, [1.0, 0.0])


def test_generation_mode_disagreeing_orders_split_the_vote():
    engine = ScriptedGenerator([0, 3])
    answers = ask_items(engine, [ITEM_PLUS], None, GENERATION)
    np.testing.assert_allclose(answers.probs[0], [0.5, 0, 0, 0.5, 0])
    assert answers.expected[0] == pytest.approx((5 + 2) / 2)


def test_every_method_runs_in_generation_mode_on_a_real_tiny_model(tiny_setup):
    """Generation mode on a real engine: greedy text is parsed, PAS steers generation, answers are 1..5 or NaN."""
    engine, subject, known, test = tiny_setup
    generating = AnswerMode(kind="generation", max_new_tokens=3)
    acts = contrast_activations(engine, known)
    methods = [NoChange(engine, generating), FewShot(engine, "corrected", generating),
               PAS(engine, acts, known, protocol="honest", k_share=0.5, alphas=(0, 4), mode=generating)]
    for method in methods:
        method.fit(subject, known)
        answers = method.answer(test)
        assert answers.probs.shape == (len(test), 5)
        values = answers.agreement[~np.isnan(answers.agreement)]
        assert set(values) <= {1, 2, 3, 4, 5}
        assert np.all((answers.mass >= 0) & (answers.mass <= 1))


def _answers_for(items, probs_row):
    return Answers(tuple(i.number for i in items), np.tile(np.asarray(probs_row, float), (len(items), 1)))


def test_an_alpha_whose_answers_are_all_unparseable_is_inadmissible_not_a_perfect_score():
    """The fresh build's subject 223548 got alpha 8 with 30 of 30 test answers unparseable: np.nansum of five
    NaN domain MAEs is 0.0, which beat every real answer. Such a candidate must lose."""
    items = per_domain(papi_items()[1], 3)
    subject = Subject(1, 0, {i.number: (4 if i.sign > 0 else 2) for i in items})  # ticked "Moderately Accurate"
    unreadable = _answers_for(items, [np.nan] * 5)
    perfect_but_one = _answers_for(items, [0, 1, 0, 0, 0])  # always "Moderately Accurate" = the subject's 4
    assert selection_loss(unreadable, subject, items, "corrected") == float("inf")
    assert selection_loss(perfect_but_one, subject, items, "corrected") == pytest.approx(0.0)
    # one domain wholly unreadable is enough to make the candidate inadmissible
    probs = np.tile([0, 1.0, 0, 0, 0], (len(items), 1))
    first_domain = items[0].domain
    probs[[k for k, i in enumerate(items) if i.domain == first_domain]] = np.nan
    partly = Answers(tuple(i.number for i in items), probs)
    assert selection_loss(partly, subject, items, "corrected") == float("inf")
    # a domain the subject never answered (all missing) does not count against a candidate
    silent = Subject(2, 1, {i.number: (0 if i.domain == first_domain else subject.answers[i.number]) for i in items})
    assert selection_loss(partly, silent, items, "corrected") == pytest.approx(0.0)


def test_every_method_declares_the_calls_the_experiment_loop_makes():
    """The loop calls prepare, fit, answer, release, trace and state on any method; a prompt method inherits
    the no-op defaults, and the fit trace stamps each row with the time since the fit started."""
    from persona.papi.methods.base import FitTrace

    method = NoChange(LetterABias())
    for call in ("prepare", "release"):
        assert getattr(method, call)() is None
    assert method.state() is None and method.trace == []
    log = FitTrace()
    log.record(alpha=0)
    log.record(alpha=4)
    assert [r["alpha"] for r in log.rows] == [0, 4] and log.rows[0]["wall_s"] <= log.rows[1]["wall_s"]


def test_steering_range_asks_only_known_items_and_reports_a_range_from_its_grid(tiny_setup):
    from types import SimpleNamespace

    from persona.papi import experiment as ex

    engine, _, known, test = tiny_setup
    asked = []

    class Recording:
        model, tokenizer = engine.model, engine.tokenizer

        def label_probs(self, prompts):
            asked.extend(p.user for p in prompts)
            return engine.label_probs(prompts)

        def __getattr__(self, name):
            return getattr(engine, name)

    acts = contrast_activations(engine, known, CONTENT)
    run = SimpleNamespace(engine=Recording(), total_heads=8, activations=SimpleNamespace(array=lambda c: acts),
                          setup=SimpleNamespace(known=known),
                          settings=SimpleNamespace(contrast="content", k_share=0.5, seed=0))
    shifts, valid = ex.steering_range(run, grid=(0, 2, 8))
    assert set(shifts["alpha"]) == {2, 8} and valid in (0, 2, 8)
    assert shifts["val_items"].iloc[0] + shifts["fit_items"].iloc[0] == len(known)
    asked = [user.lower() for user in asked]
    assert asked and not any(item.text.lower() in user for item in test for user in asked)  # no held-out item
    assert any(item.text.lower() in user for item in known for user in asked)
