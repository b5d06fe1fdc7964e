"""The privacy audit of dataset condensation ("Privacy for Free" held to "No Free Lunch").

    python -m experiments.audit                       # default preset on the bundled digits
    python -m experiments.audit --preset quick        # a 2-minute smoke run of everything
    python -m experiments.audit --preset cifar10_ipc10 --runs 128   # paper scale, accelerator

Runs every recipe (real data, a random real subset of ipc images per class, the init images
alone, DM and DSA with real and with noise init) over the same balanced membership runs,
attacks each with the loss attack and LiRA (online / offline, per-example / fixed variance),
stratified by init images / other members / all members; then the visual-privacy analysis of
the released synthetic sets (nearest real image by L2 and SSIM, a distance attack) and the
linear-DM theory. Writes report.md, results.json and figures to --out; an interrupted run
resumes from its stages. Every field of the preset can be overridden by its flag, and every
field of a condenser's config by --<method>.<field> (--dm.iterations 500, --mtt.syn_steps 20),
on top of the preset's condenser settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os

from dcjax import cli, distributed, io, logs
from dcjax.audit import PRESETS, AuditConfig, get_preset, run_audit
from dcjax.audit import imported
from dcjax.audit.study import study_identity
from dcjax.audit.config import PRESET_SUMMARIES
from dcjax.condense import settings as settings_lib
from dcjax.data.loaders import TFDS_NAMES
from experiments import prepare_data
from dcjax.condense import condenser_names
from dcjax.runs import recipe_kinds
from dcjax.data.canaries import CANARY_KINDS
from dcjax.mia import ATTACKS
from dcjax.nets import NET_NAMES
from dcjax.nets.layers import INITS as NET_INITS
from dcjax.train.config import COMPUTE_DTYPES

_HELP = {
    "dataset": "dataset whose training split is the pool",
    "ipc": "images per class of every non-real recipe",
    "runs": "runs per recipe (even); each example is IN for half of them",
    "pool_size": "pool examples drawn from the training split (None: all of it)",
    "seed": "seed of pool, masks, runs and training",
    "recipes": ("comma-separated recipes of kinds " + ", ".join(recipe_kinds()) +
                ", e.g. condense(dm,init=real) (ipc: --ipc where left out; methods: " +
                ", ".join(condenser_names()) + ")"),
    "attacks": "comma-separated membership attacks",
    "primary_attack": "attack of the verdict table and the summary figure",
    "net": "network trained in every run (None: ConvNet, ConvNetD2 for 8x8 images)",
    "epochs": "training epochs on synthetic-size training sets",
    "real_epochs": "training epochs of the real recipe",
    "batch_size": "training batch size", "lr": "training SGD learning rate",
    "train_augment": "non-Siamese DSA while training each run's network",
    "cond_net": "network of the condensers (None: as for net)",
    "init_scheme": "initialisation of every run's network: torch (the reference's) or flax",
    "real_augment": "non-Siamese DSA while training the real recipe's networks",
    "train_compute_dtype": "float32, or bfloat16 for mixed-precision training (GPU/TPU)",
    "canary_kind": "mislabeled (a pool image with a wrong label) or ood (uniform pixel noise)",
    "ssim_shortlist": "SSIM neighbours searched among this many L2-nearest images",
    "theory_iterations": "iterations of the linear-DM closed-form check",
    "dp_epochs": "training epochs of DP-SGD recipes", "dp_lr": "DP-SGD's learning rate",
    "dp_batch_size": "DP-SGD's expected Poisson batch (None: --batch-size)",
    "canaries": "mislabeled (or OOD) canaries planted in the pool, IN for half of the runs",
}


def _preset_table() -> str:
  lines = ["presets (flags override their fields):"]
  default = AuditConfig()
  for name, cfg in PRESETS.items():
    diff = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if getattr(cfg, f.name) != getattr(default, f.name)}
    lines.append(f"  {name:<20} {PRESET_SUMMARIES[name]}")
    lines.append(" " * 23 + (", ".join(f"{k}={v}" for k, v in diff.items())
                             or "(the AuditConfig defaults)"))
  return "\n".join(lines)


def build_parser(prog: str = "python -m experiments.audit", description: str = __doc__,
                 membership_only: bool = False) -> argparse.ArgumentParser:
  p = cli.ArgumentParser(prog=prog, description=description,
                              epilog=_preset_table(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", default="default", choices=list(PRESETS),
                 help="named configuration (default: %(default)s)")
  p.add_argument("--out", default=None,
                 help="output directory (default: runs/audit/<preset>, or "
                 "runs/audit/<preset>-<digest of the changed fields>); new, empty or holding the "
                 "same study (a directory that dcjax did not write is refused)")
  p.add_argument("--data-dir", default=None, help="tfds data_dir (default: tfds's)")
  p.add_argument("--download", action=argparse.BooleanOptionalAction, default=False,
                 help="prepare a tfds dataset first where it is not (experiments.prepare_data: "
                 "needs network access)")
  p.add_argument("--recompute", action=argparse.BooleanOptionalAction, default=False,
                 help="discard what dcjax wrote in --out (stages, results, report, figures) "
                 "and start over; other files there are kept")
  p.add_argument("--quiet", action=argparse.BooleanOptionalAction, default=False,
                 help="no progress bars")
  p.add_argument("--distributed", action=argparse.BooleanOptionalAction, default=False,
                 help="one process per host on jax.distributed: each computes its share of the "
                 "runs into --out (a filesystem all hosts see), process 0 writes the report; "
                 "the cluster from the environment (TPU pod, SLURM, MPI) or DCJAX_COORDINATOR, "
                 "DCJAX_NUM_PROCESSES, DCJAX_PROCESS_ID")
  p.add_argument("--tensorboard", default=None, metavar="DIR",
                 help="write condensation losses, accuracies per run, AUCs and stage "
                 "throughput as TensorBoard event files to DIR (needs tensorboardX: the "
                 "tensorboard extra)")
  if membership_only:
    p.add_argument("--from-logits", default=None, metavar="DIR",
                   help="attack runs trained elsewhere, read from DIR in the LiRA reference "
                   "layout (y_train.npy, experiment-<r>_<M>/keep.npy and logits/<epoch>.npy; "
                   "dcjax.mia.lira_layout), instead of training any; honours --attacks, "
                   "--primary-attack, --seed and --out")
    p.add_argument("--export-lira", default=None, metavar="DIR",
                   help="after the study, write every recipe's runs to DIR/<recipe>/ in the "
                   "LiRA reference layout (with the test split's logits as RMIA's population)")
  cli.add_config_flags(p, AuditConfig, docs=_HELP, preset_defaults=True, choices={
      "canary_kind": CANARY_KINDS, "init_scheme": NET_INITS,
      "net": (*NET_NAMES, None), "cond_net": (*NET_NAMES, None),
      "train_compute_dtype": COMPUTE_DTYPES, "primary_attack": ATTACKS,
      "dataset": None})
  cli.add_condenser_flags(p)  # --<method>.<field>, over the preset's condenser settings
  return p


def default_out(name: str, preset: str, cfg: AuditConfig) -> str:
  """runs/<name>/<preset>, or runs/<name>/<preset>-<digest> when flags changed a field that
  defines the runs (the analysis fields do not), so that another study gets its own directory
  instead of a "different configuration" refusal."""
  identity = study_identity(cfg)
  if identity == study_identity(get_preset(preset)):
    return os.path.join("runs", name, preset)
  digest = hashlib.sha256(json.dumps(io.to_jsonable(identity), sort_keys=True).encode())
  return os.path.join("runs", name, f"{preset}-{digest.hexdigest()[:8]}")


def main(argv: list[str] | None = None, membership_only: bool = False) -> dict:
  """``membership_only``: the runs and attacks alone (``experiments.mia``)."""
  name = "mia" if membership_only else "audit"
  parser = build_parser(f"python -m experiments.{name}",
                        _MIA_DOC if membership_only else __doc__, membership_only)
  args = parser.parse_args(argv)
  if getattr(args, "from_logits", None):
    logs.setup()
    defaults = get_preset(args.preset)
    return imported.audit_logits(
        args.from_logits, args.out or os.path.join("runs", "mia", "from_logits"),
        attacks=(tuple(a.strip() for a in args.attacks.split(",") if a.strip())
                 if hasattr(args, "attacks") else None),
        primary=getattr(args, "primary_attack", defaults.primary_attack),
        seed=getattr(args, "seed", defaults.seed))
  if args.distributed:
    distributed.initialize()  # before any computation
  overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(AuditConfig)
               if hasattr(args, f.name)}
  cfg = dataclasses.replace(get_preset(args.preset), **overrides)
  if args.download and cfg.dataset in TFDS_NAMES:
    prepare_data.prepare(cfg.dataset, args.data_dir)
  cfg = dataclasses.replace(cfg, condensers=settings_lib.merge(cfg.condensers,
                                                               cli.condenser_settings(args)))
  out = args.out or default_out(name, args.preset, cfg)
  logs.setup()
  with logs.metrics_writer(args.tensorboard) as writer:
    results = run_audit(cfg, out, data_dir=args.data_dir, recompute=args.recompute,
                        progress=not args.quiet, preset=args.preset,
                        membership_only=membership_only, writer=writer)
  if results is None:  # another process than 0 of a study on several hosts: its runs are done
    return {}
  if getattr(args, "export_lira", None):
    imported.export_audit(cfg, out, args.export_lira, data_dir=args.data_dir)
  violations = results.get("bound_violations") or []
  if violations:
    first = violations[0]
    raise SystemExit(
        f"BUG: {len(violations)} attack result(s) beat a proven DP bound, e.g. {first['recipe']} "
        f"{first['where']} TPR {first['tpr']:.4f} (lower end {first['tpr_low']:.4f}) > bound "
        f"{first['bound']:.4f} at FPR {first['fpr']:g}; see {out}/report.md.")
  return results


_MIA_DOC = """Membership inference alone: the audit's runs and attacks (every recipe, every attack,
stratified by init images / other members / all members, compared with the random-subset
baseline), without the released-set analysis and the theory.

    python -m experiments.mia --preset quick
    python -m experiments.mia --recipes "real,random_subset,condense(dm,init=real)" --runs 32

Same flags, presets and output layout as experiments.audit (default --out runs/mia/<preset>).
"""


def run() -> None:
  """The command line (``python -m experiments.audit``, the console script ``dcjax-audit``)."""
  cli.entry_point(main, prog="experiments.audit")


if __name__ == "__main__":
  run()
