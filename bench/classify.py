"""How well the shipped rules classify the labelled set (tests/labelled/, issue 9).

    .venv/bin/python bench/classify.py [--split dev|heldout|all] [--misses N]

Each mail of the set is parsed as intake parses it, its sender looked up in the
set's own customer directory (imported into a throwaway SQLite database), and
classified by `stages.classify.decide` with the shipped rules — what a new
case would get, nothing stored. It prints, per part of the set: type
agreement (the label's type), priority agreement (the classifier's priority
is one the label allows), both by language, the type confusion matrix, and
the mean time per mail of lookup + decide. By default the mails are classified
as shipped: the rules and the starter model beside them (`--model none`: the
rules alone); the starter model is trained on the dev part, so only the
held-out part says what it adds. `--misses N` lists N mails whose
type was missed, with what the rules said (dev part only: nobody tunes rules
on the held-out part).
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mailproc import db, directory, learned
from mailproc.config import LearnConfig
from mailproc.models import CASE_TYPES
from mailproc.parse import parse
from mailproc.rules import load_rules
from mailproc.stages.classify import decide, facts_of

SET = Path(__file__).resolve().parent.parent / "tests" / "labelled"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Label:
    file: str
    type: str
    priorities: tuple[str, ...]
    language: str
    why: str

    @property
    def split(self) -> str:
        return self.file.split("/", 1)[0]


def labels() -> list[Label]:
    found = []
    for path in sorted(SET.glob("labels-*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                found.append(Label(row["file"].strip(), row["type"].strip(), tuple(row["priority"].split()),
                                   row["language"].strip(), row.get("why", "").strip()))
    return found


def classify(rules, mail, models=None) -> tuple[str, str, dict[str, str]]:
    """(type, priority, the rules that decided) for one parsed mail, as intake would decide them."""
    box = "billing" if any("billing@" in a.lower() for a in mail.to) else "support"
    fields, by = decide(rules, facts_of(mail, box), NOW, None, models)
    return fields["type"], fields["priority"], by


def report(name: str, rows: list[tuple[Label, str, str, dict]], seconds: float, misses: int,
           priority_misses: int = 0) -> None:
    n = len(rows)
    if not n:
        print(f"{name}: no mails")
        return
    type_ok = sum(label.type == got for label, got, _, _ in rows)
    prio_ok = sum(prio in label.priorities for label, _, prio, _ in rows)
    print(f"\n{name}: {n} mails — type {100 * type_ok / n:.1f} %, priority {100 * prio_ok / n:.1f} %, "
          f"{1000 * seconds / n:.2f} ms a mail (directory lookup, text, rules, model)")
    by_lang: dict[str, list] = defaultdict(list)
    for row in rows:
        by_lang[row[0].language].append(row)
    for lang, group in sorted(by_lang.items()):
        k = len(group)
        t = 100 * sum(label.type == got for label, got, _, _ in group) / k
        p = 100 * sum(prio in label.priorities for label, _, prio, _ in group) / k
        print(f"  {lang:6} {k:4} mails  type {t:5.1f} %  priority {p:5.1f} %")
    confusion = Counter((label.type, got) for label, got, _, _ in rows)
    print("  type confusion (rows: label, columns: rules)")
    print("  " + " " * 12 + "".join(f"{t:>12}" for t in CASE_TYPES))
    for want in CASE_TYPES:
        print("  " + f"{want:12}" + "".join(f"{confusion[(want, got)]:12d}" for got in CASE_TYPES))
    if misses and name == "dev":
        print(f"  first {misses} type misses:")
        for label, got, prio, by in [r for r in rows if r[0].type != r[1]][:misses]:
            print(f"    {label.file}: label {label.type} {'/'.join(label.priorities)}, rules {got} {prio} "
                  f"({by['type']}, {by['priority']}) evidence: {by.get('evidence', '-')}")
    if priority_misses and name == "dev":
        print(f"  first {priority_misses} priority misses (type right):")
        wrong = [r for r in rows if r[0].type == r[1] and r[2] not in r[0].priorities]
        for label, _got, prio, by in wrong[:priority_misses]:
            print(f"    {label.file}: label {label.type} {'/'.join(label.priorities)}, rules {prio} "
                  f"({by['priority']}) — {label.why}")


def shipped_models(choice: str) -> learned.InUse | None:
    """The models weighed beside the rules, with the shipped [learn] weights."""
    if choice == "none":
        return None
    found = learned.starter_models() if choice == "starter" else learned.read_starter(Path(choice).read_text())
    cfg = LearnConfig()
    return learned.InUse(found.get("type"), found.get("priority"), cfg.weight, cfg.priority_probability)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="all")
    parser.add_argument("--misses", type=int, default=0)
    parser.add_argument("--rules", type=Path, help="a directory of rule files replacing the shipped ones of the "
                                                   "same name (as [mailproc] rules does)")
    parser.add_argument("--priority-misses", type=int, default=0, help="list N dev mails whose priority was missed")
    parser.add_argument("--match", default="", help="only the mails whose file name this regex finds (e.g. 'es2-')")
    parser.add_argument("--model", default="starter",
                        help="'starter' (as shipped: the rules and the starter model), 'none' (the rules alone), "
                             "or a starter-model file (scripts/train-starter-model --out)")
    parser.add_argument("--skip", default="", help="leave out the mails whose file name this regex finds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db.open_database(f"sqlite:///{tmp}/labelled.sqlite3")
        try:
            directory.import_csv(SET / "directory.csv")
            rules = load_rules(args.rules)
            models = shipped_models(args.model)
            results: dict[str, list] = defaultdict(list)
            spent: Counter = Counter()
            for label in labels():
                if ((args.split != "all" and label.split != args.split) or not re.search(args.match, label.file)
                        or (args.skip and re.search(args.skip, label.file))):
                    continue
                mail = parse((SET / label.file).read_bytes())  # intake parses every mail anyway
                start = time.perf_counter()
                got, prio, by = classify(rules, mail, models)
                spent[label.split] += time.perf_counter() - start
                results[label.split].append((label, got, prio, by))
            for split in ("dev", "heldout"):
                if split in results:
                    report(split, results[split], spent[split], args.misses, args.priority_misses)
        finally:
            db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
