r"""Compares every metric two runs wrote: ``python scripts/compare_results.py OLD_WORKDIR NEW_WORKDIR``.

Reads all ``eval/*.json`` (recursively, incl. sub-runs such as ``baseline/eval``) of both
workdirs, flattens them to ``file:key.path -> number``, maps OLD names onto NEW names with
:data:`RENAMES` (the results layout moved in the architecture redesign), and reports every
number of OLD that is missing in NEW or differs at all (bit-equality: ``==`` on the parsed
JSON floats). Keys that only NEW has (e.g. the ``checkpoint`` record) are listed, not failed.
Exit status 1 when a number differs or is missing.

``--ignore REGEX`` skips OLD keys matching it (e.g. timings: ``--ignore 'wall_s|cpu_s'``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

# (regex on OLD "relative/file.json:key.path", replacement) applied in order.
RENAMES: list[tuple[str, str]] = [
  # fan: eval/fan_{ytf,blur,ijb}.json lost their single top-level key (one file per evaluator)
  (r"^eval/fan_(ytf|blur|ijb)\.json:(ytf|blur|ijb)\.", r"eval/fan_\1.json:"),
  # explain: the Table I analog is one still_images result per run (ours, baseline/)
  (r"^eval/recognition\.json:ArcFace \(plain\)\.", r"baseline/eval/recognition.json:"),
  (r"^eval/recognition\.json:Ours \(max pool \+ decoder\)\.", r"eval/recognition.json:"),
  # interpretable: one results file per variant and evaluator (jfr.methods.interpretable)
  (
    r"^eval/interpretable\.json:results\.(\w+)\.recognition\.(\w+)\.tar@far=(.+)$",
    r"\1/eval/recognition.json:\2.verification.tar_at_far.\3",
  ),
  (
    r"^eval/interpretable\.json:results\.(\w+)\.recognition\.(\w+)\.verification_accuracy$",
    r"\1/eval/recognition.json:\2.verification.accuracy",
  ),
  (
    r"^eval/interpretable\.json:results\.(\w+)\.recognition\.(\w+)\.(rank\d+)$",
    r"\1/eval/recognition.json:\2.identification.cmc.\3",
  ),
  (r"^eval/interpretable\.json:results\.(\w+)\.peaks\.", r"\1/eval/peak_spread.json:"),
  (
    r"^eval/interpretable\.json:results\.(\w+)\.differences\.",
    r"\1/eval/feature_difference.json:",
  ),
  (
    r"^eval/interpretable\.json:results\.(\w+)\.retrieval\.",
    r"\1/eval/partial_retrieval.json:",
  ),
  (
    r"^eval/interpretable\.json:results\.(\w+)\.figure_filters",
    r"eval/interpretable.json:figure_filters.\1",
  ),
]


def flatten(obj, prefix: str, out: dict) -> dict:
  if isinstance(obj, dict):
    for k, v in obj.items():
      flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
  elif isinstance(obj, list):
    for i, v in enumerate(obj):
      flatten(v, f"{prefix}[{i}]", out)
  elif isinstance(obj, bool) or obj is None or isinstance(obj, (int, float, str)):
    out[prefix] = obj
  return out


def load(workdir: Path) -> dict:
  out = {}
  for path in sorted(workdir.rglob("eval/*.json")):
    rel = path.relative_to(workdir).as_posix()
    flatten(json.loads(path.read_text()), f"{rel}:", out)
  return {k.replace(":.", ":"): v for k, v in out.items()}


def rename(key: str) -> str:
  for pattern, repl in RENAMES:
    key = re.sub(pattern, repl, key)
  return key


def same(a, b) -> bool:
  if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
    return True
  return a == b and type(a) is type(b) or (a == b and not isinstance(a, str))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("old", type=Path)
  parser.add_argument("new", type=Path)
  parser.add_argument("--ignore", default=None, help="regex of OLD keys to skip")
  args = parser.parse_args(argv)
  old, new = load(args.old), load(args.new)
  if not old:
    print(f"no eval/*.json under {args.old}")
    return 1
  ignore = re.compile(args.ignore) if args.ignore else None
  bad, checked, used = [], 0, set()
  for key, value in old.items():
    if ignore and ignore.search(key):
      continue
    if isinstance(value, str):
      continue  # labels and paths are not metrics
    target = rename(key)
    used.add(target)
    checked += 1
    if target not in new:
      bad.append(f"missing  {key} -> {target}")
    elif not same(value, new[target]):
      bad.append(f"differs  {key}: {value!r} -> {new[target]!r}")
  extra = sorted(k for k in new if k not in used and not isinstance(new[k], str))
  print(f"{checked} numbers of {args.old} compared with {args.new}: {len(bad)} differ or missing")
  for line in bad[:200]:
    print("  " + line)
  if extra:
    print(f"{len(extra)} numbers only in {args.new} (first 20):")
    for k in extra[:20]:
      print("  " + k)
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
