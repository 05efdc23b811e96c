"""Every benchmark in one run, then one table of their headline figures beside their in-run baselines.

    python -m bench                 # the figures the README shows (hours on two cores: two 100,000-recipient
                                    # campaigns, the SES one beside the mock vendor's)
    python -m bench --quick         # the same benchmarks at a small scale, to check they still run (all but the
                                    # SES ones: the campaign beside the mock vendor's takes two stacks, and the
                                    # sandbox a minute for its first scheduled roll-up, minutes of CI even small)
    python -m bench --mongo-uri URI # against an existing MongoDB (also MONGO_URI), not a fresh SecantusDB; the
                                    # preview benchmark keeps its own SecantusDB (it measures that server's plans)
"""
from __future__ import annotations

import argparse
import os
import platform
import time

from bench import backfill, clicks, cold_init, fanout, ingest, load, plan_work, preview, write_floor
from bench._stack import add_mongo_option
from bench._table import print_table

FULL = {"ingest": [], "cold init": [], "preview": ["--repeats", "1"], "plan work": [], "write floor": [], "fan-out": [],
        "fan-out by channel": ["--channel", "ses", "--recipients", "100000"], "SES sandbox": ["--sandbox"],
        "load": [], "clicks": [], "backfill": []}
# Not the clicks benchmark: its last counts wait for the scheduled roll-up, a minute of CI for figures no test reads.
# The fan-out's completion waits for a roll-up tick too: its schedules run six times faster (a tick every 10 s).
QUICK = {"ingest": ["--customers", "2000"], "cold init": ["--runs", "1"],
         "preview": ["--customers", "3000", "--orders", "6000", "--repeats", "1"],
         "plan work": ["--customers", "3000", "--orders", "6000"], "write floor": ["--logs", "2000"],
         "fan-out": ["--recipients", "1000", "--time-scale", "6"], "load": ["--clients", "4", "--rounds", "5"],
         "backfill": ["--customers", "300"]}
RUNS = {"ingest": ingest.run, "cold init": cold_init.run, "preview": preview.run, "plan work": plan_work.run,
        "write floor": write_floor.run, "fan-out": fanout.run, "fan-out by channel": fanout.run,
        "SES sandbox": fanout.run, "load": load.run, "clicks": clicks.run, "backfill": backfill.run}
TAKES_MONGO_URI = {"ingest", "cold init", "write floor", "fan-out", "fan-out by channel", "SES sandbox", "load",
                   "clicks", "backfill"}


def machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({platform.machine()}), {memory_gib:.0f} GiB, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=list(RUNS), help="run only these")
    add_mongo_option(parser)
    args = parser.parse_args()
    arguments = QUICK if args.quick else FULL
    rows, started = [], time.perf_counter()
    for name, run in RUNS.items():
        if (args.only and name not in args.only) or name not in arguments:
            continue
        print(f"\n== {name}: {' '.join(arguments[name]) or 'defaults'}", flush=True)
        mongo = ["--mongo-uri", args.mongo_uri] if args.mongo_uri and name in TAKES_MONGO_URI else []
        rows += run(arguments[name] + mongo)
    print(f"\n== all benchmarks, {time.perf_counter() - started:,.0f} s on {machine()}")
    print_table(rows)


if __name__ == "__main__":
    main()
