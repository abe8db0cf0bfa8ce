"""CoT-Kinetics (arXiv 2505.13408) at small scale: does hidden-state dynamics flag unsound reasoning?

Two settings, every score from one teacher-forced forward per trace (``fedsim.cot.scorer``):

1. a 4-layer decoder trained here on synthetic multi-step arithmetic (cached under
   ``CoTConfig.cache_dir``), scoring traces it sampled itself at temperature 1, plus constructed
   "right answer through a cancelling wrong step" and "wrong final answer only" variants;
2. the packaged SmolLM2-135M-Instruct scoring its own greedy answers to seeded arithmetic / word
   problems plus the same two kinds of perturbation (``--skip-smollm`` to leave it out).

Tasks (flawed class positive): incorrect answer on the model's own traces; unsound step with the
right answer; wrong final answer only. Each score's orientation is fitted on the validation problems
(30 %), metrics are on the test problems.

Why our energy does not reproduce the paper's direction is studied, not tuned: every combination of
the energy's open choices (positions, normalisation, layer range, gamma, token aggregation) is
computed from the same forward, one variant is picked per task on the VALIDATION problems only and
reported on test, next to the spread of the whole grid on test (a ceiling, not a result). A paired
table shows the within-problem effect of a cancelling wrong step on each score.

The federated use runs through Flower + Ray: one ``fedsim run configs/cot/federated.yaml`` simulation
per selection arm (none, random, CoT-Kinetics, CoT-Kinetics with the validation-picked variant, NLL,
oracle), with held-out answer accuracy per round and what each client removed.

Writes ``benchmarks/results/cot_table.md``. Run (about 35-45 min on 2 busy cores, single seed):

    .venv/bin/python benchmarks/cot_table.py [--config configs/cot/default.yaml] [--skip-smollm]
        [--skip-federated] [--fed-rounds 3] [--fed-arms none,random,cot_kinetics,cot_kinetics*,nll,oracle]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fedsim.cot import arith, smollm
from fedsim.cot.config import CoTConfig, ScorerConfig
from fedsim.cot.metrics import bootstrap_auroc, fast_auroc
from fedsim.cot.scorer import curvature_term, forward_batch, kinetic_term, locate_spans, scores_from_states
from fedsim.cot.tasks import TASKS, Labeled, TaskResult, evaluate, task_labels

RESULTS = Path(__file__).parent / "results"
NAMES = {
    "cot_kinetics": "CoT-Kinetics (spec energy, γ=0.8)",
    "cot_kinetics[picked]": "  └ energy variant picked on validation",
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
BOOTSTRAP = 300


GRID_POSITIONS = ("predict", "self")
GRID_NORMALIZE = ("displacement", "unit", "none")
GRID_LAYERS = {"all": (0, None), "no-embed": (1, None), "no-final": (0, -1), "inner": (1, -1)}
GRID_GAMMA = (0.0, 0.2, 0.5, 0.8, 1.0)
GRID_AGG = ("mean", "median", "max", "last")
GAMMAS = np.array(GRID_GAMMA)
AGG_NP = {"mean": lambda e: e.mean(1), "median": lambda e: np.median(e, 1), "max": lambda e: e.max(1),
          "last": lambda e: e[:, -1]}
SPEC_VARIANT = "predict|displacement|all|g0.8|mean"  # the spec's energy = the "cot_kinetics" row


def energy_grid(hidden: torch.Tensor, spans, cfg: ScorerConfig) -> dict[str, float]:
    """The energy under every combination of the open choices (spec section 3), from one forward."""
    out: dict[str, float] = {}
    for pos in GRID_POSITIONS:
        shift = 1 if pos == "predict" else 0
        h = hidden[:, spans.reasoning.start - shift: spans.reasoning.stop - shift]
        if h.shape[1] == 0:
            continue
        for norm in GRID_NORMALIZE:
            for lname, (start, stop) in GRID_LAYERS.items():
                sub = h[start:stop]
                k = kinetic_term(sub, cfg.eps, norm).numpy()
                u = curvature_term(sub, cfg.eps, norm).numpy()
                e = GAMMAS[:, None] * k[None] + (1 - GAMMAS[:, None]) * u[None]  # [gamma, token]
                for agg in GRID_AGG:
                    for g, value in zip(GRID_GAMMA, AGG_NP[agg](e)):
                        out[f"{pos}|{norm}|{lname}|g{g}|{agg}"] = float(value)
    return out


def score_records(model, tok, records: Sequence[Labeled], cfg: ScorerConfig,
                  batch: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All scores and the energy grid, one (batched) teacher-forced forward per record."""
    spans = [locate_spans(tok, r.sample, cfg.span_method, cfg.max_length) for r in records]
    rows: list[dict[str, float]] = [{} for _ in records]
    grids: list[dict[str, float]] = [{} for _ in records]
    order = sorted(range(len(records)), key=lambda i: len(spans[i].input_ids))
    for b in range(0, len(order), batch):
        chunk = order[b: b + batch]
        for i, (hidden, logits) in zip(chunk, forward_batch(model, [spans[i].input_ids for i in chunk])):
            rows[i] = scores_from_states(hidden, logits, spans[i], cfg)
            grids[i] = energy_grid(hidden, spans[i], cfg)
    scores = {k: np.array([r.get(k, np.nan) for r in rows]) for k in NAMES if any(k in r for r in rows)}
    names = list(grids[0]) if grids else []
    return scores, {k: np.array([g.get(k, np.nan) for g in grids]) for k in names}


def test_arrays(values: np.ndarray, records: Sequence[Labeled], val: set[int],
                task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(validation values, labels, test values, labels) of one score on one task, finite only."""
    idx, lab = task_labels(records, task)
    is_val = np.array([records[i].problem_id in val for i in idx], dtype=bool)
    v = values[idx]
    ok = np.isfinite(v)
    return v[is_val & ok], lab[is_val & ok], v[~is_val & ok], lab[~is_val & ok]


def _both(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < len(y)


def grid_aurocs(grid: dict[str, np.ndarray], records, val, task) -> dict[str, tuple[float, float]]:
    """Per variant: (validation AUROC with the better orientation, test AUROC under that orientation)."""
    out = {}
    for name, values in grid.items():
        v, y, t, yt = test_arrays(values, records, val, task)
        if _both(y) and _both(yt):
            a = fast_auroc(v, y)
            out[name] = (max(a, 1 - a), fast_auroc(t if a >= 0.5 else -t, yt))
    return out


def pick_variant(grid: dict[str, np.ndarray], records, val, task) -> tuple[str, float] | None:
    """The energy variant with the highest AUROC on the VALIDATION problems (first in grid order on ties)."""
    scored = grid_aurocs(grid, records, val, task)
    if not scored:
        return None
    name = max(scored, key=lambda k: scored[k][0])
    return name, scored[name][0]


def ci_of(result: TaskResult, values: np.ndarray, records, val) -> str:
    _, _, t, y = test_arrays(values, records, val, result.task)
    lo, hi = bootstrap_auroc(result.orientation * t, y, n=BOOTSTRAP, seed=0)
    return f"[{lo:.2f}, {hi:.2f}]"


def task_table(results: list[TaskResult], records: Sequence[Labeled], task: str, scores, val) -> list[str]:
    _, lab = task_labels(records, task)
    head = f"#### {TASK_TITLES[task]} — {int(lab.sum())} flawed / {int((1 - lab).sum())} clean traces"
    if not results:
        return [head, "", "_not enough traces of both classes in both splits_", ""]
    d = results[0].test
    lines = [head, f"(test split: {d.n_pos} flawed / {d.n_neg} clean; AUROC 95 % bootstrap interval over "
             "test traces)", "", "| score | sign | AUROC ↑ | AUROC 95 % CI | AUPR ↑ | FPR@95 ↓ |",
             "|---|---|---|---|---|---|"]
    order = {k: i for i, k in enumerate(NAMES)}
    for r in sorted(results, key=lambda r: order[r.score]):
        lines.append(f"| {NAMES[r.score]} | {'+' if r.orientation > 0 else '−'} | {r.test.auroc:.3f} | "
                     f"{ci_of(r, scores[r.score], records, val)} | {r.test.aupr:.3f} | {r.test.fpr95:.3f} |")
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
        picked = f", validation-picked energy variant {got['cot_kinetics[picked]']:.3f}" \
            if "cot_kinetics[picked]" in got else ""
        out.append(f"- {setting}, {TASK_TITLES[task]}: CoT-Kinetics AUROC {ck:.3f}{picked} vs best of "
                   f"MaxProb/PPL/Entropy {best_logit[0]:.3f} ({NAMES[best_logit[1]]}), best CoE "
                   f"{best_coe[0]:.3f} ({NAMES[best_coe[1]]}); best overall {best[0]:.3f} "
                   f"({NAMES[best[1]].strip()}).")
    return out


def study_table(grid, picks: dict[str, tuple[str, float]], results: list[TaskResult], records, val,
                notes: list[str]) -> list[str]:
    """Energy options picked on validation, their test numbers, and the grid's spread on test."""
    lines = [f"Grid: positions {GRID_POSITIONS} × normalisation {GRID_NORMALIZE} × layers {tuple(GRID_LAYERS)} "
             f"× γ {GRID_GAMMA} × token aggregation {GRID_AGG} = {len(grid)} variants. The pick is the "
             "highest validation AUROC (orientation fitted on validation too); 'grid on test' is the spread "
             "of all variants' test AUROCs — its max is a ceiling no honest selection can claim.", "",
             "| task | spec energy (test) | picked variant: positions / norm / layers / γ / aggregation | "
             "val AUROC | test AUROC | test 95 % CI | grid on test: median / max | best MaxProb/PPL/Entropy |",
             "|---|---|---|---|---|---|---|---|"]
    for task, (name, val_auroc) in picks.items():
        got = {r.score: r for r in results if r.task == task}
        spread = [test for _, test in grid_aurocs(grid, records, val, task).values()]
        best_logit = max(got[k].test.auroc for k in LOGIT_BASELINES if k in got)
        p = got["cot_kinetics[picked]"]
        notes.append(f"{TASK_TITLES[task]}: spec energy {got['cot_kinetics'].test.auroc:.3f}, validation pick "
                     f"({name.replace('|', ' / ')}) {p.test.auroc:.3f}, grid max on test {max(spread):.3f}")
        lines.append(f"| {TASK_TITLES[task]} | {got['cot_kinetics'].test.auroc:.3f} | "
                     f"{name.replace('|', ' / ')} | {val_auroc:.3f} | {p.test.auroc:.3f} | "
                     f"{ci_of(p, grid[name], records, val)} | {np.median(spread):.3f} / {max(spread):.3f} | "
                     f"{best_logit:.3f} |")
    return [*lines, ""]


def paired_table(scores: dict[str, np.ndarray], records: Sequence[Labeled], val: set[int],
                 notes: list[str]) -> list[str]:
    """Within-problem effect: an unsound_right variant vs the sound trace it was made from (test split).

    The unpaired AUROC compares traces of different problems. If a score moved consistently within a
    pair but its pair differences were small next to how much it varies between problems, the signal
    would exist but be swamped; if it does not move within pairs either, the score does not see the flaw.
    """
    source = {r.problem_id: i for i, r in enumerate(records)
              if r.kind == "sampled" and r.answer_ok and r.sound is True and r.problem_id not in val}
    pairs = [(source[r.problem_id], i) for i, r in enumerate(records)
             if r.kind == "unsound_right" and r.problem_id in source]
    if len(pairs) < 5:
        return ["_too few test pairs_", ""]
    src, bad = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    lines = [f"{len(pairs)} test pairs (same problem, one written result changed, same final answer).", "",
             "| score | P(unsound variant scores higher) | mean pair difference / SD across sound traces |",
             "|---|---|---|"]
    for name, values in scores.items():
        diff = values[bad] - values[src]
        ok = np.isfinite(diff)
        sd = np.nanstd(values[np.array(sorted(source.values()))])
        win = float(np.mean(diff[ok] > 0) + 0.5 * np.mean(diff[ok] == 0))
        lines.append(f"| {NAMES.get(name, name)} | {win:.2f} | {np.mean(diff[ok]) / max(sd, 1e-12):+.2f} |")
        notes.append(f"{NAMES.get(name, name).strip()} {win:.2f}")
    return [*lines, ""]


def run_setting(name: str, model, tok, records: list[Labeled], val: set[int], cfg: CoTConfig,
                header: list[str], batch: int) -> tuple[list[str], list[TaskResult], dict[str, tuple[str, float]],
                                                    list[str]]:
    t0 = time.perf_counter()
    scores, grid = score_records(model, tok, records, cfg.scorer, batch)
    secs = time.perf_counter() - t0
    results, picks = [], {}
    for task in TASKS:
        results += evaluate(scores, records, val, task)
        pick = pick_variant(grid, records, val, task)
        if pick is not None:
            picks[task] = pick
            scores_t = {"cot_kinetics[picked]": grid[pick[0]]}
            results += evaluate(scores_t, records, val, task)
    lines = [f"### {name}", "", *header, f"- scoring: {len(records)} traces, one batched forward each "
             f"({batch} per batch) giving every score and the {len(grid)}-variant energy grid, {secs:.1f} s", ""]
    for task in TASKS:
        with_picked = {**scores, "cot_kinetics[picked]": grid[picks[task][0]]} if task in picks else scores
        lines += task_table([r for r in results if r.task == task], records, task, with_picked, val)
    study, pairs = [], []
    lines += ["#### Energy options picked on validation, reported on test", "",
              *study_table(grid, picks, results, records, val, study)]
    paired = {k: scores[k] for k in ("cot_kinetics", "coe_mag", "coe_ang", "entropy", "maxprob", "nll")
              if k in scores}
    if "unsound_right" in picks:
        paired["cot_kinetics[picked]"] = grid[picks["unsound_right"][0]]
    lines += ["#### Within-problem effect of a cancelling wrong step (test pairs)", "",
              *paired_table(paired, records, val, pairs)]
    print("\n".join(lines), flush=True)
    short = name.split(":")[0]
    notes = [f"- {short}, energy options (AUROC on test): " + "; ".join(study) + "."]
    if pairs:
        notes.append(f"- {short}, P(a cancelling wrong step raises the score) over test pairs: "
                     + ", ".join(pairs) + ".")
    return lines, results, picks, notes


def arith_records(ev: arith.ArithEvalSet) -> list[Labeled]:
    return [Labeled(t.sample(), t.problem_id, t.kind, t.answer_ok, t.sound) for t in ev.traces]


# --------------------------------------------------------------------------------------------
# Federated use through Flower + Ray (strategy cot_select)
# --------------------------------------------------------------------------------------------

def variant_overrides(variant: str) -> list[str]:
    """``strategy.scorer.*`` overrides that make the federated energy a grid variant."""
    pos, norm, layers, gamma, agg = variant.split("|")
    start, stop = GRID_LAYERS[layers]
    return [f"strategy.scorer.positions={pos}", f"strategy.scorer.normalize={norm}",
            f"strategy.scorer.layer_start={start}", f"strategy.scorer.layer_stop={'null' if stop is None else stop}",
            f"strategy.scorer.gamma={gamma[1:]}", f"strategy.scorer.aggregation={agg}"]


def federated_runs(arms: list[tuple[str, list[str]]], rounds: int, out_dir: Path,
                   notes: list[str]) -> list[str]:
    """One Flower + Ray simulation of configs/cot/federated.yaml per selection arm; a table of them."""
    import fedsim

    config = Path(__file__).parents[1] / "configs/cot/federated.yaml"
    head = [f"| selection | held-out answer accuracy, round 0 → {rounds} | flawed removed (last round) | "
            "clean removed | flawed share of kept | score's validation AUROC | wall s |",
            "|---|---|---|---|---|---|---|"]
    per_client: dict[str, dict[int, dict]] = {}
    lines = []
    for label, overrides in arms:
        t0 = time.perf_counter()
        cfg = fedsim.load_config(config, [f"rounds={rounds}", *overrides])
        res = fedsim.run(cfg, output_dir=out_dir / label.replace(" ", "_").replace("*", "picked"))
        rows = res.metrics
        server = {r["round"]: r for r in rows if r["client"] is None and "heldout_accuracy" in r}
        last = server[max(server)]
        acc = " → ".join(f"{server[r]['heldout_accuracy']:.3f}" for r in sorted(server))
        val = f"{server[0]['orientation_val_auroc']:.3f}" if "orientation_val_auroc" in server[0] else "—"
        lines.append(f"| {label} | {acc} | {last['train_flawed_removed']:.0f}/{last['train_n_flawed']:.0f} | "
                     f"{last['train_clean_removed']:.0f} | {last['train_kept_flawed_share']:.2f} | {val} | "
                     f"{time.perf_counter() - t0:.0f} |")
        notes.append(f"{label} {server[0]['heldout_accuracy']:.3f} → {last['heldout_accuracy']:.3f} "
                     f"({last['train_flawed_removed']:.0f}/{last['train_n_flawed']:.0f} flawed removed)")
        per_client[label] = {r["client"]: r for r in rows if r["client"] is not None and r["round"] == max(server)}
        print(lines[-1], flush=True)
    clients = sorted(next(iter(per_client.values())))
    scored = [label for label in per_client if "local_auroc" in per_client[label][clients[0]]]
    ctab = ["| client | flawed traces | " + " | ".join(f"{s}: flawed removed / local AUROC" for s in scored) + " |",
            "|---|---|" + "---|" * len(scored)]
    for c in clients:
        first = per_client[scored[0]][c] if scored else per_client[arms[0][0]][c]
        cells = [f"{per_client[s][c]['flawed_removed']:.0f} / {per_client[s][c]['local_auroc']:.2f}" for s in scored]
        ctab.append(f"| {c} | {first['n_flawed']:.0f}/{first['n_local']:.0f} | " + " | ".join(cells) + " |")
    return [*head, *lines, "", "Per client, last round:", "", *ctab, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(Path(__file__).parents[1] / "configs/cot/default.yaml"))
    ap.add_argument("--skip-smollm", action="store_true")
    ap.add_argument("--skip-federated", action="store_true")
    ap.add_argument("--fed-rounds", type=int, default=3)
    ap.add_argument("--fed-arms", default="none,random,cot_kinetics,cot_kinetics*,nll,oracle",
                    help="selection scores; cot_kinetics* = the energy variant picked on setting 1's "
                         "unsound-step validation split")
    ap.add_argument("--reuse-federated", action="store_true",
                    help="keep the federated section of the existing results file instead of rerunning it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="traces per scoring forward (SmolLM2: a quarter)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = CoTConfig.from_yaml(args.config)
    reused = previous_federated_section() if args.reuse_federated else None  # before the file is rewritten
    t_all = time.perf_counter()
    out = ["# CoT-Kinetics: detecting incorrect answers and unsound reasoning from hidden-state dynamics",
           "", "Generated by `benchmarks/cot_table.py` (single seed; scores oriented on a 30 % validation "
           "split of problems, metrics on the rest; flawed = positive class; energy options chosen on "
           "validation only).", ""]
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
    lines, res1, picks1, notes1 = run_setting("Setting 1: small decoder trained here on synthetic arithmetic",
                                              model, tok, records, ev.val_problems, cfg, header, args.batch)
    out += lines
    summary += findings(res1, "arith decoder") + notes1
    write_partial(out, "federated runs and SmolLM2 still running")

    if reused:
        out += [*reused, "_(federated section kept from the previous run of this script: `--reuse-federated`)_", ""]
        summary.append("- Federated (Flower + Ray): see its section (kept from the previous run).")
    elif not args.skip_federated:
        arms = []
        for arm in args.fed_arms.split(","):
            if arm == "cot_kinetics*":
                arms.append(("cot_kinetics*", ["strategy.selection.score=cot_kinetics",
                                               *variant_overrides(picks1["unsound_right"][0])]))
            else:
                arms.append((arm, [f"strategy.selection.score={arm}"]))
        fed = cfg_fed_note(picks1)
        stamp, fed_notes = time.strftime("%Y%m%d-%H%M%S"), []
        out += ["### Federated use through Flower + Ray (`configs/cot/federated.yaml`, strategy `cot_select`)", "",
                *fed, *federated_runs(arms, args.fed_rounds, Path("runs") / f"cot_table-{stamp}", fed_notes)]
        summary.append(f"- Federated (Flower + Ray), held-out greedy answer accuracy round 0 → {args.fed_rounds} "
                       "by selection: " + "; ".join(fed_notes) + ".")
        write_partial(out, "SmolLM2 still running")

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
        lines, res2, _, notes2 = run_setting("Setting 2: SmolLM2-135M-Instruct on its own traces", smodel, stok,
                                     sev.records, sev.val_problems, cfg, header, max(1, args.batch // 4))
        out += lines
        summary += findings(res2, "SmolLM2") + notes2
        out += ["<details><summary>two SmolLM2 traces</summary>", "", "```",
                *[t.strip()[:400] for t in sev.texts[:2]], "```", "</details>", ""]

    out += ["### What the numbers show", "", *summary, "",
            f"Total wall time: {time.perf_counter() - t_all:.0f} s on {args.threads} thread(s)."]
    write_partial(out, None)
    print("\n".join(out[-len(summary) - 3:]))


def previous_federated_section() -> list[str] | None:
    """The federated section of the results file as this script last wrote it (None if absent)."""
    path = RESULTS / "cot_table.md"
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("### Federated use")), None)
    if start is None:
        return None
    stop = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("### ")), len(lines))
    return [line for line in lines[start:stop] if not line.startswith("_(federated section kept")]


def write_partial(out: list[str], pending: str | None) -> None:
    """(Re)write the whole results file; a run cut short still leaves its finished sections."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    note = [f"**Partial: {pending}.**", ""] if pending else []
    (RESULTS / "cot_table.md").write_text("\n".join([*out[:4], *note, *out[4:]]) + "\n")


def cfg_fed_note(picks: dict[str, tuple[str, float]]) -> list[str]:
    variant = picks.get("unsound_right", ("—", 0.0))[0].replace("|", " / ")
    return ["Four clients, each with 96 traces of its own seeded problems, 20 / 40 / 60 / 80 % of them flawed "
            "(cancelling wrong step, wrong step carried to a wrong answer, wrong final answer; equal shares). Each "
            "round a client scores its traces with the global decoder, keeps 70 % (`keep_fraction`), trains 30 "
            "AdamW steps, and returns weights + statistics; the server averages by traces kept (FedAvg) and "
            "measures greedy answer accuracy on 200 held-out problems. The decoder starts from setting 1's. "
            "Orientation: fitted once on the server's labelled validation traces with the initial model. "
            f"`cot_kinetics*` uses the energy variant picked on setting 1's unsound-step validation split ({variant}).",
            ""]


if __name__ == "__main__":
    main()
