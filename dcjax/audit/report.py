"""report.md from results.json: tables, the verdict against the baseline, theory, figures.

Pure formatting: every number comes from the results dict, nothing is computed here except
percentages; the metrics are read through the typed results of ``dcjax.mia.results``.
"""

from __future__ import annotations

from dcjax.mia.results import STRATA, StratumMetrics


def _metrics(m: dict | None) -> StratumMetrics | None:
  return None if m is None else StratumMetrics.from_json(m)


def _pct(x: float | None, digits: int = 2) -> str:
  return "—" if x is None else f"{100 * x:.{digits}f}%"


def _ci(ci, pct: bool = True) -> str:
  if pct:
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
  return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _tpr1(m: dict | None) -> str:
  """TPR at 1% FPR of a stratum's metrics, or a dash where the stratum is empty."""
  return "—" if m is None else _pct(_metrics(m).at(0.01).tpr)


def recipe_line(name: str, summary: dict, attack: str) -> str:
  """One console line per recipe: accuracy and the primary attack per stratum."""
  acc = summary["test_accuracy"]
  parts = [f"  {name}: accuracy {100 * acc['mean']:.2f} +- {100 * acc['std']:.2f}%"]
  for stratum in STRATA:
    m = _metrics(summary["attacks"][attack][stratum])
    if m is not None:
      parts.append(f"{stratum} AUC {m.auc:.3f} TPR@0.1% {_pct(m.at(0.001).tpr)} "
                   f"TPR@1% {_pct(m.at(0.01).tpr)}")
  return " | ".join(parts)


def _metrics_row(name: str, attack: str, stratum: str, m: StratumMetrics) -> str:
  t01, t1 = m.at(0.001), m.at(0.01)
  boot = t1.tpr_ci95_bootstrap
  return (f"| {name} | {attack} | {stratum.replace('_', ' ')} | {m.auc:.3f} "
          f"{_ci(m.auc_ci95, pct=False)} | {m.balanced_accuracy:.3f} | "
          f"{_pct(t01.tpr)} {_ci(t01.tpr_ci95)} | {_pct(t1.tpr)} {_ci(t1.tpr_ci95)} "
          f"| {_ci(boot) if boot is not None else '—'} "
          f"| {m.positives} / {m.negatives} |")


_METRICS_HEAD = ("| recipe | attack | members | AUC [95%] | bal. acc. | TPR@0.1% FPR [95% CP] | "
                 "TPR@1% FPR [95% CP] | TPR@1% [95% bootstrap] | trials +/− |\n"
                 "|---|---|---|---|---|---|---|---|---|")


def render(results: dict) -> str:
  cfg = results["config"]
  attack = results["primary_attack"]
  rec = results["recipes"]
  machine = results["machine"]
  lines = [
      f"# Privacy audit of dataset condensation on `{results['dataset']}`", "",
      f"Preset `{results['preset']}`; {results['runs']} runs per recipe over a pool of "
      f"{results['pool_size']} training examples, each example a member (IN) of exactly half "
      f"of the runs; ipc {cfg['ipc']}; test set {results['test_size']} images; seed "
      f"{cfg['seed']}. Every recipe is trained, queried and attacked by the same code. Compute "
      f"time {sum(results['stage_seconds'].values()) / 60:.1f} min (sum of the stages; this "
      f"invocation took {results['wall_seconds'] / 60:.1f} min"
      + (f", resuming {len(results['resumed_recipes'])} finished recipes"
         if results["resumed_recipes"] else "") + f") on {machine.get('backend')} "
      f"({machine.get('cpu_count')} CPU cores, {machine.get('platform')}), code "
      f"`{results['code_version']}`.", "",
      "Membership is attacked with every run serving once as the target (leave-one-out), and "
      "each metric is stratified by the target run's **init images** (the real images the "
      "synthetic set started from), its **other members**, and **all members**, always against "
      "the same non-members. Intervals are 95%: cluster bootstrap over pool examples for the "
      "AUC, Clopper-Pearson for TPRs. A TPR interval is only as tight as its trial count "
      "allows; the smallest measurable FPR is 1 / (non-member trials).", "",
      _guarantee_sentence(results), "",
      *_violation_lines(results),
      "## Summary", "",
      f"Primary attack: `{attack}`. Accuracy is the final test accuracy of each run's network "
      "(mean ± std over runs).", "",
      "| recipe | training set | test accuracy | AUC all members | TPR@0.1% all members | "
      "TPR@1% init images | TPR@1% other members |", "|---|---|---|---|---|---|---|",
  ]
  for name, r in rec.items():
    m = r["attacks"][attack]
    every = _metrics(m["all_members"])
    acc = r["test_accuracy"]
    lines.append(
        f"| {name} | {r['training_set_size']} | {100 * acc['mean']:.2f} ± "
        f"{100 * acc['std']:.2f}% | {every.auc:.3f} | {_pct(every.at(0.001).tpr)} | "
        f"{_tpr1(m['init_images'])} | {_tpr1(m['other_members'])} |")
  lines += ["", f"![accuracy vs TPR]({results['figures']['accuracy_vs_tpr']})", ""]
  lines += _verdict(results)
  lines += _dp(results)
  lines += ["## Every attack, every stratum", "",
            f"The table of every attack, stratum and recipe is in [{APPENDIX}]({APPENDIX}). "
            "ROC curves (log-log; one panel per stratum; dashed diagonal = chance; the shaded "
            "region lies below the smallest measurable FPR, 1 / non-member trials):", ""]
  for name, r in rec.items():
    lines.append(f"![ROC {name}]({r['figures']['roc']})")
  lines += [""]
  lines += _shadow_budget(results) + _exposure(results)
  if not results.get("membership_only"):
    lines += _visual(results) + _theory(results)
  lines += _setup(results)
  return "\n".join(lines) + "\n"


APPENDIX = "report_appendix.md"


def render_appendix(results: dict) -> str:
  """Every attack, stratum and recipe with intervals and trial counts (report.md links it)."""
  lines = [f"# Every attack, every stratum: `{results['dataset']}`", "",
           "Appendix of [report.md](report.md): for each recipe, attack and group of members, "
           "the metrics against the same non-members, pooled over targets (leave-one-out).", "",
           _METRICS_HEAD]
  attacks = [a for a in results["config"]["attacks"].split(",") if a]
  return "\n".join(lines + _every_metric_row(results["recipes"], attacks)) + "\n"


def _every_metric_row(recipes: dict, attacks) -> list[str]:
  """A table row per recipe, attack and stratum with members."""
  return [_metrics_row(name, a, stratum, _metrics(r["attacks"][a][stratum]))
          for name, r in recipes.items() for a in attacks for stratum in STRATA
          if r["attacks"][a][stratum] is not None]


def render_imported(results: dict) -> str:
  """The report of runs read from the LiRA layout (``dcjax.audit.imported``): every attack and
  stratum, the shadow-budget curve and the exposure; no accuracy, released set or theory."""
  lines = [f"# Membership attacks on runs from `{results['source']}`", "",
           "Runs trained elsewhere, read in the LiRA reference layout; every run serves once as "
           "the target (leave-one-out). Intervals are 95% (cluster bootstrap over examples for "
           f"the AUC, Clopper-Pearson for TPRs). Primary attack `{results['primary_attack']}`; "
           f"code `{results['code_version']}`.", "", "| set | runs | examples |", "|---|---|---|"]
  lines += [f"| {n} | {r['runs']} | {r['examples']} |" for n, r in results["recipes"].items()]
  lines += ["", "## Every attack, every stratum", "", _METRICS_HEAD,
            *_every_metric_row(results["recipes"], results["attacks"])]
  lines += [""] + [f"![ROC {n}]({r['figures']['roc']})" for n, r in results["recipes"].items()]
  lines += [""] + _shadow_budget(results) + _exposure(results)
  return "\n".join(lines) + "\n"


def _shadow_budget(results: dict) -> list[str]:
  """How many reference runs each attack needs: AUC and TPR at 0.1% FPR per budget k."""
  rec = {n: r for n, r in results["recipes"].items() if r.get("shadow_budget")}
  if not rec:
    return []
  ks = sorted({row["k"] for r in rec.values() for rows in r["shadow_budget"].values()
               for row in rows})
  lines = ["## Attacks against the number of reference runs", "",
           "Each target run attacked with k reference runs drawn from the others (a key per "
           "target and k), metrics on all members pooled over targets; a cell is AUC / TPR at "
           "0.1% FPR. Online attacks need IN and OUT references and start at k = 2. "
           "`rmia_offline` tunes a on a pair of runs; at k = 1 the pair takes one run beyond "
           "the budget.", "", "| recipe | attack | " + " | ".join(f"k={k}" for k in ks) + " |",
           "|---|---|" + "---|" * len(ks)]
  for name, r in rec.items():
    for attack, rows in r["shadow_budget"].items():
      by_k = {row["k"]: row for row in rows}
      cells = [f"{by_k[k]['auc']:.3f} / {_pct(by_k[k]['tpr'])}" if k in by_k else "—"
               for k in ks]
      lines.append(f"| {name} | {attack} | " + " | ".join(cells) + " |")
  figure = results.get("figures", {}).get("attack_vs_shadows")
  if figure:
    lines += ["", f"![attacks against reference runs]({figure})"]
  details = [(n, a, d) for n, r in rec.items()
             for a, d in (r.get("attack_details") or {}).items()]
  if details:
    n, _, d = details[0]
    lines += ["", f"RMIA's population: the {d['population']} ({d['population_size']} examples, "
              f"no run trained on them); gamma {d['gamma']}, softmax temperature "
              f"{d['temperature']}. Offline a per recipe (median over targets): " + ", ".join(
                  f"{n} {d['offline_a']['median']:.1f}" for n, a, d in details
                  if "offline_a" in d) + "."]
  return lines + [""]


def _exposure(results: dict) -> list[str]:
  rec = {n: r for n, r in results["recipes"].items() if r.get("exposure")}
  if not rec:
    return []
  first = next(iter(rec.values()))["exposure"]
  lines = ["## Per-example exposure", "",
           f"An example's exposure is its TPR at {first['fpr']:.0%} FPR (`{first['attack']}`) "
           "over the runs where it is a member. Every attack's (M, N) scores, the keep masks "
           "and every exposure are in `scores.npz`.", "",
           "| recipe | mean exposure | most exposed (index: exposure) |", "|---|---|---|"]
  for name, r in rec.items():
    e = r["exposure"]
    top = ", ".join(f"{t['index']}: {t['exposure']:.2f}" + (" (canary)" if t["canary"] else "")
                    for t in e["most_exposed"][:5])
    lines.append(f"| {name} | {e['mean']:.3f} | {top} |")
  lines += [""] + [f"![most exposed {n}]({r['figures']['exposed']})" for n, r in rec.items()
                   if r.get("figures", {}).get("exposed")]
  return lines + [""]


def _guarantee_sentence(results: dict) -> str:
  dp = [n for n, r in results["recipes"].items() if r.get("privacy")]
  if not dp:
    return ("**No recipe here carries a differential-privacy guarantee.** A condensed set is a "
            "deterministic function of its real inputs plus noise that nobody calibrated; the "
            "numbers below are the strength of particular attacks, i.e. lower bounds on "
            "leakage.")
  return (f"**Only {', '.join(f'`{n}`' for n in dp)} carry a differential-privacy guarantee** "
          "(accounted with dp-accounting's PLD accountant; its trade-off curve is drawn in red on "
          "their ROC panels and checked against every attack). For every other recipe the "
          "numbers below are the strength of particular attacks, i.e. lower bounds on leakage.")


def _violation_lines(results: dict) -> list[str]:
  violations = results.get("bound_violations") or []
  if not violations:
    return []
  # a GitHub alert: red on GitHub, a quoted block wherever Markdown is read (HTML is stripped)
  lines = ["> [!CAUTION]",
           "> **BUG: an attack beat a proven differential-privacy bound.** With 95% confidence "
           "these TPRs lie above the largest TPR that the recipe's accounted mechanism allows at "
           "that FPR, so the mechanism, its accounting or the audit's bookkeeping is wrong. The "
           "audit exits with a non-zero status.", "",
           "| recipe | attack / members | FPR | TPR | TPR lower end | bound |",
           "|---|---|---|---|---|---|"]
  for v in violations:
    lines.append(f"| **BUG** {v['recipe']} | {v['where']} | "
                 f"{_pct(v['fpr'], 1)} | {_pct(v['tpr'])} | {_pct(v['tpr_low'])} | "
                 f"{_pct(v['bound'])} |")
  return lines + [""]


def _or_dash(x: float | None) -> str:
  return "—" if x is None else f"{x}"


def _eps(x: float | None) -> str:
  return "—" if x is None else f"{x:.2f}"


def _dp(results: dict) -> list[str]:
  rows = results.get("epsilon_table") or []
  if not any(r["epsilon_lb"] is not None or r["epsilon_proven"] is not None for r in rows):
    return []
  cfg = results["config"]
  lines = [
      "## Differential privacy as the yardstick", "",
      "Proven epsilon: the PLD accountant's epsilon at the recipe's delta for the accounted "
      "mechanism (one mechanism for every run: its rate, normaliser and steps come from public "
      f"sizes). Empirical lower bound: from the {cfg.get('canaries', 0)} "
      f"{cfg.get('canary_kind', '')} canaries planted in the pool (each IN for half of the "
      "runs, independently of the others), the one-run test of Steinke, Nasr & Jagielski "
      "(2023, with delta) on every run's own canaries scored by that run's network alone, at "
      "significance 5%/M per run; the largest of the M bounds holds with 95% confidence "
      "whatever the dependence between runs (union bound). Heuristic: the split-half "
      "Clopper-Pearson figure of the primary attack, whose 95% treats the trials of one run "
      "and of one canary as independent (they are not); not a bound. A lower bound of 0 says "
      "this audit found nothing with these canaries, not that the recipe is private.",
      "", "| recipe | test accuracy | TPR@0.1% all members | TPR@1% init images | "
      "eps lower bound (one-run, 95%) | heuristic (split-half) | proven eps |",
      "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['recipe']} | {100 * r['accuracy']:.2f} ± {100 * r['accuracy_std']:.2f}% | "
        f"{_pct(r['tpr_at_0.1pct_all'])} | {_pct(r['tpr_at_1pct_init'])} | "
        f"{_eps(r['epsilon_lb'])} | {_eps(r['epsilon_lb_heuristic'])} | "
        f"{_eps(r['epsilon_proven'])} |")
  if "accuracy_vs_epsilon" in results["figures"]:
    lines += ["", f"![accuracy vs epsilon]({results['figures']['accuracy_vs_epsilon']})"]
  lines.append("")
  for p in results.get("dp_comparison") or []:
    more = "more" if p["tpr"] > p["dpsgd_tpr"] else "less" if p["tpr"] < p["dpsgd_tpr"] else (
        "as much")
    lines.append(
        f"- **{p['recipe']}** ({100 * p['accuracy']:.2f}% accuracy) against the DP-SGD recipe "
        f"of nearest accuracy, **{p['dpsgd']}** ({100 * p['dpsgd_accuracy']:.2f}%, proven eps "
        f"{_eps(p['dpsgd_epsilon'])}): TPR at 0.1% FPR on all members {_pct(p['tpr'])} vs "
        f"{_pct(p['dpsgd_tpr'])} ({more} leakage measured), canary lower bound "
        f"{_eps(p['epsilon_lb'])} vs {_eps(p['dpsgd_epsilon_lb'])}. Only the DP-SGD figure is "
        "a guarantee.")
  checked = [n for n, r in results["recipes"].items() if r.get("privacy")]
  if checked:
    bad = {v["recipe"] for v in results.get("bound_violations") or []}
    lines += ["", "Bound check: every attack's TPR at 0.1%, 1% and 10% FPR (every stratum, the "
              "canaries and the released-set distance attacks; lower end of its 95% interval) "
              "against the proven trade-off curve "
              "of " + ", ".join(f"`{n}`" for n in checked) + ": "
              + ("no violation." if not bad else
                 "**BUG: VIOLATED by " + ", ".join(sorted(bad)) + "** (see the caution above).")]
  return lines + [""]


def _verdict(results: dict) -> list[str]:
  rows = results["comparison"]
  lines = ["## Against the random-subset baseline", "",
           f"Each recipe is compared with `{results['baseline']}` (the same number of real "
           "images, no condensation) under the primary attack. Two recipes are called "
           "distinguishable at a stratum when the 95% intervals of the AUC or of the TPR at 1% "
           "FPR do not overlap; otherwise this audit cannot tell them apart at its size. Both "
           "intervals here are cluster bootstraps over pool examples (trials of one example "
           "across runs are correlated; Clopper-Pearson intervals, listed further below, "
           "assume they are not and are too narrow for comparisons).", "",
           "| recipe | members | AUC [95%] | baseline AUC [95%] | TPR@1% [95%] | "
           "baseline TPR@1% [95%] | verdict |", "|---|---|---|---|---|---|---|"]
  for row in rows:
    lines.append(
        f"| {row['recipe']} | {row['stratum'].replace('_', ' ')} | {row['auc']:.3f} "
        f"{_ci(row['auc_ci95'], False)} | {row['baseline_auc']:.3f} "
        f"{_ci(row['baseline_auc_ci95'], False)} | {_pct(row['tpr_at_1pct'])} "
        f"{_ci(row['tpr_ci95'])} | {_pct(row['baseline_tpr_at_1pct'])} "
        f"{_ci(row['baseline_tpr_ci95'])} | {row['verdict']} |")
  lines.append("")
  by_recipe: dict[str, list] = {}
  for row in rows:
    by_recipe.setdefault(row["recipe"], []).append(row)
  for name, rs in by_recipe.items():
    differ = [f"{r['stratum'].replace('_', ' ')} ({r['verdict']})" for r in rs
              if r["verdict"] != "not distinguishable"]
    acc = rs[0]
    acc_txt = (f"accuracy {100 * acc['accuracy_difference']:+.2f} points "
               f"{_ci(acc['accuracy_difference_ci95'])} vs the baseline")
    if differ:
      lines.append(f"- **{name}** is distinguishable from the baseline for: "
                   f"{', '.join(differ)}; {acc_txt}.")
    else:
      lines.append(f"- **{name}** is not distinguishable from the baseline in any stratum at "
                   f"this size; {acc_txt}.")
  names = {r["recipe"] for r in rows}
  control = next((n for n in names if n.startswith("init_only")), None)
  if control is not None:
    verdicts = sorted({r["verdict"] for r in by_recipe[control]})
    lines += ["", f"Negative control: `{control}` and `{results['baseline']}` are the same "
              "procedure (ipc random real IN images per class) under different keys, so the "
              "rule should find them not distinguishable; here it says: "
              f"{', '.join(verdicts)}."]
  lines += ["", f"{len(rows)} comparisons at 95% each: about {0.05 * len(rows):.1f} false "
            "'distinguishable' are expected by chance alone. Not distinguishable is not the "
            "same as private either: it says the intervals of this many runs overlap. Init "
            "images of real-initialised sets are the stratum to watch (No Free Lunch, Carlini "
            "et al. 2022).", ""]
  return lines


def _visual(results: dict) -> list[str]:
  lines = ["## Visual privacy: the released synthetic set", "",
           "For every synthetic image, its nearest pool image by L2 (pixels) and by SSIM "
           "(reported as 1 − SSIM). If the synthetic set itself is released, the distance of a "
           "candidate to the nearest synthetic image is a membership score; it is evaluated "
           "below with the same strata and intervals (no shadow runs needed).", "",
           "| recipe | metric | nearest real is own init image | nearest real is a member | "
           "median distance: init / other members / non-members | AUC all members | "
           "TPR@1% init images | TPR@1% other members |", "|---|---|---|---|---|---|---|---|"]
  figures = []
  for name, r in results["recipes"].items():
    rs = r["released_set"]
    if rs is None:
      continue
    for metric, v in rs.items():
      med = v["median_distance_to_synthetic"]
      att = v["attack"]
      lines.append(
          f"| {name} | {metric} | {_pct(v['own_init_fraction'], 1)} | "
          f"{_pct(v['member_fraction'], 1)} | "
          + " / ".join("—" if med[g] is None else f"{med[g]:.3f}"
                       for g in ("init images", "other members", "non-members"))
          + f" | {_metrics(att['all_members']).auc:.3f} | {_tpr1(att['init_images'])} | "
          f"{_tpr1(att['other_members'])} |")
    figs = r["figures"]
    figures.append(f"**{name}**: ![distances]({figs['distances']}) "
                   f"![nearest real]({figs['nearest_real']})"
                   + (f" ![init]({figs['init']})" if "init" in figs else ""))
  lines += ["", *[f"{f}\n" for f in figures]]
  return lines


def _theory(results: dict) -> list[str]:
  th = results["theory"]
  c = th["closed_form_check"]
  inf = th["one_example_influence"]
  lines = [
      "## Theory: linear DM", "",
      "(a) **Closed form on this run's data.** DM with a linear extractor psi(x) = theta x "
      "(Gaussian theta, no augmentation) was run by the library's DM code on run 0's members "
      f"({c['members_per_class']} per class, every batch the whole class), ipc {c['ipc']}, "
      f"{c['iterations']} iterations. Predicted: s_j* = s_j0 − mean(s0) + mean(x). Largest "
      f"per-image error {c['max_error']:.2e} (mean {c['mean_error']:.2e}) against a mean image "
      f"norm of {c['mean_image_norm']:.3f}, while the images moved {c['mean_shift_from_init']:.3f}"
      " on average from their init: each synthetic image is its init image plus one shift "
      "shared by its class.", "",
      "(b) **The O(m/n) quantity.** Under linear DM, adding one non-init example x' to the n_c "
      "members of its class moves every synthetic image of that class by (x' − mean)/(n_c + 1). "
      f"On run 0 the mean such shift is {inf['mean_shift']:.4f} against a mean image norm of "
      f"{inf['mean_image_norm']:.3f} ({100 * inf['shift_over_norm']:.2f}%).", "",
      "| setting | n (members) | m (synthetic) | m/n | 1/n per class |", "|---|---|---|---|---|"]
  for row in th["m_over_n"]:
    lines.append(f"| {row['setting']} | {row['n']} | {row['m']} | {row['m_over_n']:.4f} | "
                 f"{row['one_over_n_per_class']:.5f} |")
  lines += ["", f"Measured beside it ({results['primary_attack']}, TPR at 0.1% / 1% FPR):", ""]
  for row in th["empirical_dm"]:
    parts = [f"{s.replace('_', ' ')} {_pct(v['0.001'])} / {_pct(v['0.01'])}"
             for s, v in row.items() if s != "recipe"]
    lines.append(f"- {row['recipe']}: " + "; ".join(parts))
  measured = [r for r in results.get("epsilon_table") or [] if r["epsilon_lb"] is not None]
  if measured:
    lines += ["", "Beside the O(m/n) quantity, the measured canary lower bounds on epsilon "
              "(which the quantity does not bound: it is an average over non-init examples, the "
              "canaries are worst cases): "
              + "; ".join(f"{r['recipe']} {r['epsilon_lb']:.2f}" for r in measured) + "."]
  lines += ["", f"Caveat: {th['caveat']} With real init, the init images are in effect "
            "published (part (a)), whatever m/n is.", ""]
  return lines


def _setup(results: dict) -> list[str]:
  cfg = results["config"]
  lines = ["## Configuration and cost", "", "| field | value |", "|---|---|"]
  lines += [f"| {k} | `{v}` |" for k, v in cfg.items()]
  compiled = results.get("compile_seconds", {})
  lines += ["", "| stage | seconds | of which compiling |", "|---|---|---|"]
  lines += [f"| {k} | {v} | {_or_dash(compiled.get(k))} |"
            for k, v in results["stage_seconds"].items()]
  lines += ["", "Stages (training sets, parameters, logits) are Orbax checkpoints under "
            "`stages/`; re-running the same command resumes and recomputes nothing that is "
            "finished.", ""]
  return lines
