"""CoT-Kinetics (arXiv 2505.13408) at small scale: does hidden-state dynamics flag unsound reasoning?

Two settings, every score from one teacher-forced forward per trace (``fedsim.cot.scorer``):

1. a 4-layer decoder trained here on synthetic multi-step arithmetic (cached under
   ``CoTConfig.cache_dir``), scoring traces it sampled itself at temperature 1, plus constructed
   "right answer through a cancelling wrong step" and "wrong final answer only" variants;
2. the packaged SmolLM2-135M-Instruct scoring its own greedy answers to seeded arithmetic / word
   problems plus the same two kinds of perturbation (``--skip-smollm`` to leave it out).

Tasks (flawed class positive): incorrect answer on the model's own traces; unsound step with the
right answer; wrong final answer only. Each score's orientation is fitted on the validation problems
(30 %), metrics are on the test problems. A last table shows the federated use: four clients with
differently noisy local pools run ``score_and_select`` (keep 80 %) and report what they dropped.

Writes ``benchmarks/results/cot_table.md``. Run (about 10-15 min on 2 busy cores, single seed):

    .venv/bin/python benchmarks/cot_table.py [--config configs/cot/default.yaml] [--skip-smollm]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fedsim.cot import arith, smollm
from fedsim.cot.config import CoTConfig, ScorerConfig
from fedsim.cot.scorer import forward_states, locate_spans, scores_from_states
from fedsim.cot.selection import score_and_select
from fedsim.cot.tasks import TASKS, Labeled, TaskResult, evaluate, task_labels

RESULTS = Path(__file__).parent / "results"
NAMES = {
    "cot_kinetics": "CoT-Kinetics (ours, γ=0.8)", "cot_kinetics[K]": "  └ kinetic term only (γ=1)",
    "cot_kinetics[U]": "  └ curvature term only (γ=0)", "cot_kinetics[self]": "  └ token's own states",
    "cot_kinetics[max]": "  └ max over tokens",
    "coe_mag": "CoE-Mag", "coe_ang": "CoE-Ang", "coe_r": "CoE-R", "coe_c": "CoE-C",
    "maxprob": "MaxProb", "ppl": "PPL (CoE: −log max-prob)", "entropy": "Entropy",
    "nll": "NLL of written tokens", "maxprob@answer": "MaxProb, answer only",
    "ppl@answer": "PPL, answer only", "entropy@answer": "Entropy, answer only",
    "nll@answer": "NLL, answer only",
}
TASK_TITLES = {"incorrect_answer": "incorrect final answer (model's own traces)",
               "unsound_right": "unsound step, right final answer",
               "wrong_answer_only": "wrong final answer only (sound steps)"}
LOGIT_BASELINES = ("maxprob", "ppl", "entropy")


def score_records(model, tok, records: Sequence[Labeled], cfg: ScorerConfig) -> dict[str, np.ndarray]:
    """All scores plus energy ablations (single terms, positions, aggregation), one forward per record."""
    ablations = {"[K]": dataclasses.replace(cfg, gamma=1.0), "[U]": dataclasses.replace(cfg, gamma=0.0),
                 "[self]": dataclasses.replace(cfg, positions="self"),
                 "[max]": dataclasses.replace(cfg, aggregation="max")}
    rows = []
    for r in records:
        spans = locate_spans(tok, r.sample, cfg.span_method, cfg.max_length)
        hidden, logits = forward_states(model, spans.input_ids)
        row = scores_from_states(hidden, logits, spans, cfg)
        for tag, acfg in ablations.items():
            row["cot_kinetics" + tag] = scores_from_states(hidden, logits, spans, acfg)["cot_kinetics"]
        rows.append(row)
    return {k: np.array([row.get(k, np.nan) for row in rows]) for k in NAMES if any(k in r for r in rows)}


def task_table(results: list[TaskResult], records: Sequence[Labeled], task: str) -> list[str]:
    _, lab = task_labels(records, task)
    head = f"#### {TASK_TITLES[task]} — {int(lab.sum())} flawed / {int((1 - lab).sum())} clean traces"
    if not results:
        return [head, "", "_not enough traces of both classes in both splits_", ""]
    d = results[0].test
    lines = [head, f"(test split: {d.n_pos} flawed / {d.n_neg} clean)", "",
             "| score | sign | AUROC ↑ | AUPR ↑ | FPR@95 ↓ |", "|---|---|---|---|---|"]
    order = {k: i for i, k in enumerate(NAMES)}
    for r in sorted(results, key=lambda r: order[r.score]):
        lines.append(f"| {NAMES[r.score]} | {'+' if r.orientation > 0 else '−'} | {r.test.auroc:.3f} | "
                     f"{r.test.aupr:.3f} | {r.test.fpr95:.3f} |")
    return [*lines, ""]


def findings(results: list[TaskResult], setting: str) -> list[str]:
    """Plain statements computed from the numbers (no interpretation beyond the comparison)."""
    out = []
    for task in TASKS:
        got = {r.score: r.test.auroc for r in results if r.task == task}
        if "cot_kinetics" not in got:
            continue
        ck = got["cot_kinetics"]
        best_logit = max((got[k], k) for k in LOGIT_BASELINES if k in got)
        best_coe = max((got[k], k) for k in got if k.startswith("coe_"))
        best = max((v, k) for k, v in got.items())
        out.append(f"- {setting}, {TASK_TITLES[task]}: CoT-Kinetics AUROC {ck:.3f} vs best of "
                   f"MaxProb/PPL/Entropy {best_logit[0]:.3f} ({NAMES[best_logit[1]]}), best CoE "
                   f"{best_coe[0]:.3f} ({NAMES[best_coe[1]]}); best overall {best[0]:.3f} "
                   f"({NAMES[best[1]].strip()}).")
    return out


def run_setting(name: str, model, tok, records: list[Labeled], val: set[int], cfg: CoTConfig,
                header: list[str]) -> tuple[list[str], list[TaskResult], dict[str, np.ndarray]]:
    t0 = time.perf_counter()
    scores = score_records(model, tok, records, cfg.scorer)
    secs = time.perf_counter() - t0
    results = [r for task in TASKS for r in evaluate(scores, records, val, task)]
    lines = [f"### {name}", "", *header, f"- scoring: {len(records)} traces, one forward each, "
             f"{secs:.1f} s ({1000 * secs / max(1, len(records)):.0f} ms/trace)", ""]
    for task in TASKS:
        lines += task_table([r for r in results if r.task == task], records, task)
    print("\n".join(lines), flush=True)
    return lines, results, scores


def arith_records(ev: arith.ArithEvalSet) -> list[Labeled]:
    return [Labeled(t.sample(), t.problem_id, t.kind, t.answer_ok, t.sound) for t in ev.traces]


def federated_selection(model, tok, records: list[Labeled], val: set[int], signs: dict[str, int],
                        cfg: CoTConfig, n_clients: int = 4, pool: int = 40) -> list[str]:
    """Clients with 10-40 % flawed local traces run score_and_select (keep 80 %) before local training."""
    clean = [r for r in records if r.problem_id not in val and r.kind == "sampled" and r.answer_ok
             and r.sound is True]
    flawed = [r for r in records if r.problem_id not in val and r.kind == "unsound_right"]
    rng = np.random.default_rng(cfg.seed + 21)
    lines = ["| client | local traces | flawed before | flawed dropped, CoT-Kinetics | flawed dropped, NLL "
             "| seconds (CoT-Kinetics) |", "|---|---|---|---|---|---|"]
    for c in range(n_clients):
        n_bad = int(round(pool * (0.1 + 0.1 * c)))
        local = [clean[i] for i in rng.choice(len(clean), pool - n_bad, replace=False)]
        local += [flawed[i] for i in rng.choice(len(flawed), n_bad, replace=False)]
        bad = {id(r.sample) for r in local if r.kind != "sampled"}
        cells, secs = [], 0.0
        for score in ("cot_kinetics", "nll"):
            scfg = dataclasses.replace(cfg, scorer=dataclasses.replace(cfg.scorer, orientation=signs[score]),
                                       selection=dataclasses.replace(cfg.selection, score=score))
            kept, _, report = score_and_select(model, tok, [r.sample for r in local], scfg)
            cells.append(f"{n_bad - sum(id(s) in bad for s in kept)}/{n_bad}")
            secs = secs or report["seconds"]
        lines.append(f"| {c} | {len(local)} | {n_bad / len(local):.0%} | {cells[0]} | {cells[1]} "
                     f"| {secs:.1f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(Path(__file__).parents[1] / "configs/cot/default.yaml"))
    ap.add_argument("--skip-smollm", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = CoTConfig.from_yaml(args.config)
    t_all = time.perf_counter()
    out = ["# CoT-Kinetics: detecting incorrect answers and unsound reasoning from hidden-state dynamics",
           "", "Generated by `benchmarks/cot_table.py` (single seed; scores oriented on a 30 % validation "
           "split of problems, metrics on the rest; flawed = positive class).", ""]
    summary: list[str] = []

    t0 = time.perf_counter()
    model, tok, info = arith.load_or_train(cfg)
    ev = arith.build_eval_set(model, tok, cfg)
    records = arith_records(ev)
    a = cfg.arith
    header = [f"- decoder: LlamaForCausalLM, {a.n_layers} layers, d={a.d_model}, "
              f"{info['n_params']:,} params, "
              f"{info['train_steps']} steps, trained in {info['train_seconds']:.0f} s"
              f"{' (loaded from cache)' if info['cached'] else ''}",
              f"- own traces on {a.n_eval_problems} problems at T={a.sample_temperature}: answer accuracy "
              f"{ev.answer_accuracy:.1%}, all steps sound {ev.sound_rate:.1%}, malformed {ev.malformed}; "
              f"setup {time.perf_counter() - t0:.0f} s"]
    lines, res1, _ = run_setting("Setting 1: small decoder trained here on synthetic arithmetic", model, tok,
                                 records, ev.val_problems, cfg, header)
    out += lines
    summary += findings(res1, "arith decoder")
    signs = {r.score: r.orientation for r in res1 if r.task == "unsound_right"}
    out += ["#### Federated use: per-client selection before local training (setting 1, keep 80 %)", "",
            "Each client holds 40 test-split traces: its model's own sound, right traces plus 'unsound step, "
            "right answer' ones; it keeps the 32 with the lowest oriented score (`score_and_select`, "
            "orientation from the validation split). 'flawed dropped' counts how many flawed traces the "
            "client removed (a random 20 % drop removes 20 % of them on average).", "",
            *federated_selection(model, tok, records, ev.val_problems, signs, cfg), ""]

    if not args.skip_smollm:
        t0 = time.perf_counter()
        smodel, stok = smollm.load_smollm(cfg.smollm)
        load_s = time.perf_counter() - t0
        sev = smollm.build_eval_set(smodel, stok, cfg)
        m = cfg.smollm
        header = [f"- SmolLM2-135M-Instruct (GGUF {m.gguf_file}, float32), loaded in {load_s:.0f} s",
                  f"- own greedy answers to {m.n_problems} problems (max {m.max_new_tokens} new tokens, "
                  f"{sev.generate_seconds:.0f} s): answer accuracy {sev.answer_accuracy:.1%}, all written "
                  f"equations right {sev.sound_rate:.1%}, unparsable {sev.dropped}"]
        lines, res2, _ = run_setting("Setting 2: SmolLM2-135M-Instruct on its own traces", smodel, stok,
                                     sev.records, sev.val_problems, cfg, header)
        out += lines
        summary += findings(res2, "SmolLM2")
        out += ["<details><summary>two SmolLM2 traces</summary>", "", "```",
                *[t.strip()[:400] for t in sev.texts[:2]], "```", "</details>", ""]

    out += ["### What the numbers show", "", *summary, "",
            f"Total wall time: {time.perf_counter() - t_all:.0f} s on {args.threads} thread(s)."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cot_table.md").write_text("\n".join(out) + "\n")
    print("\n".join(out[-len(summary) - 3:]))


if __name__ == "__main__":
    main()
