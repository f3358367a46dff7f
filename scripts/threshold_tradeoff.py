#!/usr/bin/env python3
"""Threshold trade-offs from a `dfd eval` output folder (plain Python, no packages).

Reads `scores.csv` (every test image's score and conformal p-value per run) and prints,
pooled over categories and runs:
  * the normal-tail rule at several target false-alarm rates a (flag when p_value <= a),
    computed from the stored p-values without refitting;
  * the F1 rule and the test-set oracle from `results.csv` (when eval ran with
    --compare-thresholds);
  * per category and run, the best catch rate any single threshold reaches on the test set
    while flagging at most half as many good images as the F1 rule (an upper bound on what
    a rule meeting the issue's false-alarm target can catch).

Usage: scripts/threshold_tradeoff.py OUT_DIR
"""
import csv
import sys
from collections import defaultdict


def rates(rows, flagged):
    good = [r for r in rows if r["defective"] == "0"]
    bad = [r for r in rows if r["defective"] == "1"]
    fa = sum(flagged(r) for r in good) / len(good)
    catch = sum(flagged(r) for r in bad) / len(bad)
    return fa, catch


def best_catch_at(rows, max_fa):
    """Best catch rate of `score > t` over all t with false-alarm rate <= max_fa."""
    good = sorted(float(r["score"]) for r in rows if r["defective"] == "0")
    bad = [float(r["score"]) for r in rows if r["defective"] == "1"]
    allowed = int(max_fa * len(good) + 1e-9)  # good images that may be flagged
    # Flag everything above the (allowed+1)-th largest good score.
    t = good[len(good) - allowed - 1] if allowed < len(good) else float("-inf")
    return allowed / len(good), sum(s > t for s in bad) / len(bad)


def main(out):
    rows = list(csv.DictReader(open(f"{out}/scores.csv")))
    groups = defaultdict(list)
    for r in rows:
        groups[(r["category"], r["run"])].append(r)
    print(f"{len(rows)} scored images, {len(groups)} category-runs")
    print("\nnormal-tail rule at target a (flag p_value <= a), mean over category-runs:")
    for a in [0.01, 0.05, 0.1, 0.2, 0.3, 0.5]:
        fa, catch = zip(*(rates(g, lambda r: float(r["p_value"]) <= a) for g in groups.values()))
        print(f"  a = {a:<5} false alarms {100 * sum(fa) / len(fa):5.1f} %  caught {100 * sum(catch) / len(catch):5.1f} %")
    try:
        results = list(csv.DictReader(open(f"{out}/results.csv")))
    except FileNotFoundError:
        results = []
    f1 = {(r["category"], r["run"]): r for r in results if r["threshold_rule"] == "f1"}
    for rule in ["normal_tail", "f1", "oracle"]:
        mean = [r for r in results if r["threshold_rule"] == rule and r["category"] == "mean" and r["run"] == "all"]
        if mean:
            m = mean[0]
            print(f"results.csv {rule:<12} false alarms {100 * float(m['false_alarm_rate']):5.1f} %  caught {100 * float(m['catch_rate']):5.1f} %")
    if f1:
        print("\nbest single test-set threshold with at most half the F1 rule's false alarms:")
        bound = []
        for key, g in sorted(groups.items()):
            if key not in f1:
                continue
            half = float(f1[key]["false_alarm_rate"]) / 2
            fa, catch = best_catch_at(g, half)
            target = 0.8 * float(f1[key]["catch_rate"])
            bound.append((catch, target))
            print(f"  {key[0]:<16} run {key[1]}: F1 FA {200 * half:5.1f} %  -> at FA {100 * fa:5.1f} % best catch {100 * catch:5.1f} % (target {100 * target:5.1f} %)")
        c, t = zip(*bound)
        print(f"  mean best catch {100 * sum(c) / len(c):.1f} % vs target {100 * sum(t) / len(t):.1f} %")


if __name__ == "__main__":
    main(sys.argv[1])
