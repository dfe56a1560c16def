"""mailproc's throughput and memory benchmark (see bench/README.md).

    .venv/bin/python bench/run.py [--mails 2000] [--rss-mails 20000]

One run, one Dovecot mailbox, one SMTP catcher, the same generated corpus:
1. the reference loop (shared/bench/reference_loop.py --mode ack, unchanged):
   fetch in batches, parse with mail-parser, one SQLite row per message, one
   short acknowledgement per new message with aiosmtplib; the ceiling for any
   Python consumer of this mailbox;
2. `mailproc run --once` on the same mailbox (fresh storage), as a subprocess;
3. a second `mailproc run --once`: the re-poll of an unchanged mailbox;
4. peak RSS of `mailproc run --once` with --rss-mails mails waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
import corpus  # noqa: E402

from mailproc.testing import free_port, write_config  # noqa: E402
from mailproc.testing.dovecot import Dovecot  # noqa: E402


class SmtpSink:
    """aiosmtpd in a process of its own, so that neither contender shares its CPU (or GIL) with it."""

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{self.host}:{self.port}",
                                      "-c", "aiosmtpd.handlers.Sink"])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "reference_loop.py"


def reference_loop(script: Path, dovecot: Dovecot, user: str, smtp: SmtpSink, workdir: Path,
                   round_: int = 0) -> dict:
    """The project's reference program, run unchanged as a command of its own.

    Its own figure (`msgs_per_s`, timed from its start to its end, after
    imports) is the baseline; the whole command's wall time is kept too."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(script), "--mode", "ack", "--host", dovecot.host,
                          "--port", str(dovecot.port), "--user", user, "--password", "bench",
                          "--smtp-port", str(smtp.port), "--db", str(workdir / f"reference{round_}.sqlite3")],
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return {"rate": report["msgs_per_s"], "seconds": report["seconds"], "wall_seconds": round(wall, 2),
            "acks": report["acks_sent"], "messages": report["messages"]}


def sent_count(config: Path) -> int:
    """Acknowledgements mailproc recorded as accepted by the SMTP server."""
    out = subprocess.run([sys.executable, "-c", (
        "import sys; from mailproc import config, db; from mailproc.models import Outbox; "
        "db.open_database(config.load(sys.argv[1]).database); "
        "print(Outbox.select().where(Outbox.state == 'sent').count())"), str(config)],
        capture_output=True, text=True, check=True)
    return int(out.stdout)


def _hwm_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def run_mailproc(config: Path, mails: int) -> tuple[float, dict[str, float]]:
    """Run `mailproc run --once`; return (seconds, peak RSS in MB of the main process and of its
    largest child, the sender).

    Peak memory is sampled from /proc (VmHWM) while it runs: ru_maxrss from
    wait4() would count the pages the child shared with this (large)
    benchmark process between fork and exec.

    The clock stands just after the corpus's last mail (its dates are in the past): on the
    real clock the workflow's timers would be due for every case at once ("still looking"
    notes, SLA warnings), and this measures intake.
    """
    log = config.parent / "mailproc.log"
    peaks: dict[int, int] = {}
    start = time.perf_counter()
    with open(log, "a") as err:
        now = corpus.T0 + timedelta(seconds=mails + 60)
        proc = subprocess.Popen([sys.executable, "-m", "mailproc", "--config", str(config), "--log-level", "warning",
                                 "--now", now.isoformat(), "run", "--once"], stderr=err)
        while proc.poll() is None:
            for pid in [proc.pid, *_children(proc.pid)]:
                peaks[pid] = max(peaks.get(pid, 0), _hwm_kib(pid))
            time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"mailproc failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    main_peak = peaks.pop(proc.pid, 0)
    child_peak = max(peaks.values(), default=0)
    return elapsed, {"main": round(main_peak / 1024, 1), "largest_child": round(child_peak / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--rss-mails", type=int, default=20000, help="0 to skip the memory run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each contender")
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help="the reference loop (default: shared/bench/reference_loop.py beside the repository)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailproc-bench-"))
    os.chmod(work, 0o755)
    dovecot = Dovecot(work / "dovecot")
    dovecot.start()
    smtp = SmtpSink()
    results: dict[str, object] = {"mails": args.mails}
    try:
        mails = corpus.generate(args.mails)
        dovecot.add_user("bench", "bench")
        dovecot.load("bench", mails, corpus.T0)

        box = dict(name="support", host=dovecot.host, port=dovecot.port, username="bench", password="bench",
                   address="support@bench.example")
        # This machine's speed wanders from minute to minute (a shared VM), so the two
        # contenders take turns, several rounds, and the medians are compared.
        if not args.reference.is_file():
            raise SystemExit(f"reference loop not found: {args.reference} (pass --reference PATH)")
        reference_runs, mailproc_runs = [], []
        for round_ in range(args.rounds):
            reference_runs.append(reference_loop(args.reference, dovecot, "bench", smtp, work, round_))
            config = write_config(work / f"site{round_}", mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port))
            seconds, rss = run_mailproc(config, args.mails)
            mailproc_runs.append({"rate": round(args.mails / seconds, 1), "seconds": round(seconds, 2),
                                  "peak_rss_mb": rss, "acks": sent_count(config)})
        results["reference_loop"] = {"median_rate": statistics.median(r["rate"] for r in reference_runs),
                                   "runs": reference_runs}
        results["mailproc"] = {"median_rate": statistics.median(r["rate"] for r in mailproc_runs),
                               "runs": mailproc_runs}
        results["ratio_of_medians"] = round(results["mailproc"]["median_rate"]
                                            / results["reference_loop"]["median_rate"], 2)
        results["ratio_per_round"] = [round(m["rate"] / n["rate"], 2) for m, n in zip(mailproc_runs, reference_runs)]
        results["repoll_seconds"] = [round(run_mailproc(config, args.mails)[0], 2) for _ in range(3)]

        if args.rss_mails:
            dovecot.add_user("big", "bench")
            dovecot.load("big", corpus.generate(args.rss_mails, seed=11), corpus.T0)
            box_big = dict(box, username="big")
            config_big = write_config(work / "site-big", mailboxes=[box_big], smtp=dict(host=smtp.host, port=smtp.port))
            seconds, rss = run_mailproc(config_big, args.rss_mails)
            results["rss_run"] = {"mails": args.rss_mails, "seconds": round(seconds, 1),
                                  "rate": round(args.rss_mails / seconds, 1), "peak_rss_mb": rss}
    finally:
        smtp.stop()
        dovecot.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
