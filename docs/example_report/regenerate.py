"""Regenerates this folder from the default digits audit:

    python docs/example_report/regenerate.py            # runs (or resumes) the audit, ~45-75 min
    python docs/example_report/regenerate.py --from runs/audit/default   # a finished audit

Copies the audit's report.md and its key figures here; the report's other figures are named in
the text instead of linked (the full set is in the audit's own directory).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, os.pardir))

KEY_FIGURES = ("accuracy_vs_tpr.png", "accuracy_vs_epsilon.png", "attack_vs_shadows.png",
               "roc_real.png", "roc_random_subset_10.png", "roc_condense_dm_10_real.png",
               "roc_dpsgd_4_1_1e_05.png", "nearest_condense_dm_10_real.png",
               "exposed_condense_dm_10_real.png")


def copy_report(audit_dir: str, dest: str = HERE, note: str = "") -> list[str]:
  """report.md (with ``note`` above it) and report_appendix.md of ``audit_dir`` and its key
  figures into ``dest``; returns the figures copied."""
  with open(os.path.join(audit_dir, "report.md")) as f:
    report = f.read()
  shutil.copyfile(os.path.join(audit_dir, "report_appendix.md"),
                  os.path.join(dest, "report_appendix.md"))
  copied = []

  def keep_or_name(m):
    target = m.group(2)
    name = os.path.basename(target)
    if name in KEY_FIGURES and os.path.exists(os.path.join(audit_dir, target)):
      shutil.copyfile(os.path.join(audit_dir, target), os.path.join(dest, name))
      copied.append(name)
      return f"![{m.group(1)}]({name})"
    return f"(figure `{name}` in the audit's directory)"

  report = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", keep_or_name, report)
  with open(os.path.join(dest, "report.md"), "w") as f:
    f.write((f"> {note}\n\n" if note else "") + report)
  return copied


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--from", dest="source", default=None, metavar="DIR",
                 help="a finished default audit's directory (default: run it into --out)")
  p.add_argument("--out", default="runs/audit/default",
                 help="where the audit runs when --from is not given")
  p.add_argument("--note", default="", help="a line above the report (where its runs come from)")
  args = p.parse_args(argv)
  source = args.source
  if source is None:
    from experiments import audit  # pylint: disable=import-outside-toplevel
    audit.main(["--out", args.out, "--quiet"])
    source = args.out
  print("copied", copy_report(source, note=args.note))


if __name__ == "__main__":
  main()
