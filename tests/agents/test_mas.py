"""End to end in one process: agents + EPE + protocol + metrics, deterministic model, fake embeddings."""

from __future__ import annotations

import dataclasses

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage

from agents.config import MASConfig
from agents.epe import EPEContext
from agents.llm import ContextAnsweringChat
from agents.mas import MASSystem, build_agent
from agents.protocol import InProcessTransport
from fedsim.errors import ConfigError


def _system(domain="financial", epe="label", **kw):
    cfg = MASConfig.from_dict({"domain": domain, "num_users": 3, "embedder": "fake", "epe": epe, **kw})
    return MASSystem.build(cfg)


@pytest.mark.parametrize("domain, on_flow", [("financial", 17), ("medical", 20)])
def test_epe_on_vs_off(domain, on_flow):
    off, on = _system(domain, "off"), _system(domain, "label")
    r_off, r_on = off.evaluate(off.run()), on.evaluate(on.run())
    f_off, f_on = r_off["final"], r_on["final"]
    assert f_off["leak_rag_macro"] == 1.0 and f_on["leak_rag_macro"] == 0.0
    assert f_off["leak_fwd_macro"] == 1.0 and f_on["leak_fwd_macro"] == 0.0
    assert f_off["rag_fields_per_query"] * 3 == 33 and f_on["flow_fields_per_query"] == on_flow
    assert f_on["over_restriction"] == 0.0 and f_on["probe_protection"] == 1.0 and f_off["probe_protection"] == 0.0
    # utility is kept for questions whose field the answering agent may see, lost for the others
    assert f_on["utility_allowed_field"] == f_off["utility_allowed_field"] == 1.0
    assert f_off["utility_other_field"] == 1.0 and f_on["utility_other_field"] < 0.1


def test_graph_runtime_with_create_agent_matches_the_chat_runtime():
    chat, graph = _system(runtime="chat"), _system(runtime="graph")
    tasks = chat.tasks[:4] + chat.tasks[-2:]
    a, b = chat.run(tasks), graph.run(tasks)
    assert a.answers == b.answers
    t = tasks[0].task_id
    assert (
        a.replies[t]["transaction_execution"]["audit"]["inbox_text"]
        == b.replies[t]["transaction_execution"]["audit"]["inbox_text"]
    )


def test_epe_middleware_in_a_users_own_create_agent():
    sysm = _system()
    agent = sysm.agents["transaction_execution"]
    user = sysm.profiles[0]
    graph = create_agent(ContextAnsweringChat(), tools=[], middleware=[agent.middleware], context_schema=EPEContext)
    leak = f"income {user.fields['annual_income']}, order {user.fields['preferred_order_type']}"
    ctx = EPEContext(user_id=0, inbox=[{"from": "risk_assessment", "text": leak}])
    out = graph.invoke({"messages": [HumanMessage("Write a brief for the auditor agent")]}, context=ctx)
    text = out["messages"][-1].text
    assert str(user.fields["annual_income"]) not in text and user.fields["preferred_order_type"] in text
    assert ctx.audit["rag_fields"] == ["preferred_order_type", "transaction_history"]
    with pytest.raises(ConfigError, match="EPEContext"):
        graph.invoke({"messages": [HumanMessage("x")]})


@pytest.mark.parametrize("spelled", [True, False])
def test_adversarial_upstream_respelling(spelled):
    """Case and number-format changes are always caught; number words and letter-by-letter spellings
    only with the spelled view (``epe.spelled``), which the exposure metric always uses."""
    sysm = _system(num_users=2, epe={"mode": "label", "spelled": spelled})
    base = [t for t in sysm.tasks if t.kind == "utility" and t.field == "annual_income"]
    for style in ("upper", "thousands", "words", "spaced"):
        caught = spelled or style in ("upper", "thousands")
        tasks = [dataclasses.replace(t, instructions=(("risk_assessment", f"respell: {style}"),)) for t in base]
        run = sysm.run(tasks)
        for t in tasks:
            inbox = run.replies[t.task_id]["transaction_execution"]["audit"]["inbox_text"]
            assert ("[annual_income]" in inbox) == caught, (style, inbox)
        leak = sysm.evaluate(run, tasks)["per_agent"]["3"]["leak_fwd_macro"]
        assert (leak == 0.0) == caught, (style, leak)


def test_failed_agent_does_not_stop_a_real_run():
    sysm = _system()
    run = sysm.run(sysm.tasks[:3], transport=InProcessTransport(sysm.agents, fail_roles=["risk_assessment"]))
    assert all(a is not None for a in run.answers.values()) and run.failures[0]["role"] == "risk_assessment"
    assert sysm.evaluate(run, sysm.tasks[:3])["final"]["n_failures"] == 1


def test_config_validation_names_the_bad_key():
    with pytest.raises(ConfigError, match="mas.epe.mode"):
        MASConfig.from_dict({"epe": "everything"})
    with pytest.raises(ConfigError, match="mas.llm.colour"):
        MASConfig.from_dict({"llm": {"colour": 1}})
    with pytest.raises(ConfigError, match="mas.bogus"):
        MASConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="policy_overrides.salary"):
        build_agent(MASConfig(embedder="fake", policy_overrides={"salary": [3]}), "market_data")
    cfg = MASConfig.from_dict({"epe": {"mode": "label+relevance", "top_k": 2}, "llm": {"backend": "smollm2"}})
    assert cfg.epe.relevance and cfg.epe.top_k == 2 and cfg.llm.backend == "smollm2"
