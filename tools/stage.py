"""The demo's stages, timed: `make demo` runs each stage through this script, which records its wall and CPU time in
runs/timings/<stage>.json; `summary` prints the demo's stage line (and writes runs/timings/summary.md), so that a
newcomer and the next profile both see where the time goes.

    python tools/stage.py run NAME -- COMMAND ...      # run COMMAND as stage NAME (its exit status is returned)
    python tools/stage.py summary [--t0 EPOCH]         # the stage line; --t0: when `make demo` started (install included)
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ROOT/'runs'/'timings'


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(name: str, cmd: list[str]) -> int:
    "Run `cmd` as stage `name`; record start, end and CPU seconds (its processes', children included)."
    TIMINGS.mkdir(parents=True, exist_ok=True)
    start, cpu0 = time.time(), cpu_seconds()
    rc = subprocess.call(cmd)
    end = time.time()
    if rc == 0:   # a failed stage leaves no record: its rerun is timed again
        (TIMINGS/f'{name}.json').write_text(json.dumps(dict(stage=name, start=start, end=end, wall=end - start,
                                                                cpu=cpu_seconds() - cpu0), indent=1) + '\n')
    return rc


def summary(t0: float | None = None, folder: Path = TIMINGS) -> str:
    "The stage line: the demo's wall time, then each stage's (start, wall, CPU), in the order they started."
    stages = sorted((json.loads(p.read_text()) for p in folder.glob('*.json')), key=lambda s: s['start'])
    if not stages: return 'no timed stage in ' + str(folder)
    t0 = t0 if t0 is not None else stages[0]['start']
    end = max(s['end'] for s in stages)
    cpu = sum(s['cpu'] for s in stages)
    line = (f'demo: {end - t0:.0f} s wall ({cpu:.0f} CPU-s in stages; first stage at {stages[0]["start"] - t0:.0f} s) | '
            + ' | '.join(f'{s["stage"]} {s["start"] - t0:.0f}+{s["wall"]:.0f} s' for s in stages))
    rows = ['| stage | start (s) | wall (s) | CPU (s) | end (s) |', '|:--|--:|--:|--:|--:|']
    rows += [f'| {s["stage"]} | {s["start"] - t0:.0f} | {s["wall"]:.0f} | {s["cpu"]:.0f} | {s["end"] - t0:.0f} |' for s in stages]
    rows.append(f'| **demo** | 0 | **{end - t0:.0f}** | {cpu:.0f} | {end - t0:.0f} |')
    (folder/'summary.md').write_text('\n'.join(rows) + '\n')
    return line


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='what', required=True)
    r = sub.add_parser('run'); r.add_argument('name'); r.add_argument('cmd', nargs=argparse.REMAINDER)
    s = sub.add_parser('summary'); s.add_argument('--t0', type=float, default=None)
    a = ap.parse_args()
    if a.what == 'run':
        cmd = a.cmd[1:] if a.cmd[:1] == ['--'] else a.cmd
        sys.exit(run(a.name, cmd))
    print(summary(a.t0))
