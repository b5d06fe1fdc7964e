"""The README's notebook example runs as written (the block after the `tested` marker)."""

import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
MARKER = "<!-- tested by tests/test_readme.py -->"


def test_notebook_example_runs_as_written(tmp_path, monkeypatch, capsys):
  with open(README) as f:
    text = f.read()
  assert MARKER in text, "the README lost its tested notebook example"
  block = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S).group(1)
  monkeypatch.chdir(tmp_path)  # the example writes its stages under the working directory
  namespace = {}
  exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  metrics = namespace["metrics"]
  init = metrics["lira_offline_fixed"]["init_images"]
  assert init.positives == 4 * 5 * 10  # 4 runs x ipc 5 x 10 classes
  assert "TPR@1%" in capsys.readouterr().out
