"""`make notebooks`: execute the module notebooks in place, so that they are read with their outputs (on GitHub, Colab
and the docs site), and keep those outputs deterministic: a second run leaves no diff.

What would differ between runs is dropped or normalised: stderr (progress bars, warnings, log lines with timings),
widget and progress outputs, stdout lines that report speed or run time, absolute paths (the repository becomes `.`,
temporary folders `<tmp>`), object addresses, the ports a local server was given. Execution counts and metadata are then cleaned by `nbdev_clean`.
The driver notebooks (data, train, evaluate, analyse, report) stay as templates without outputs: their executed
copies are what `make demo` writes into runs/, and the docs site shows those.

    python tools/run_notebooks.py [NOTEBOOK ...] [--check]     # --check: fail if a notebook has no output or is too big
"""
import os, re, sys, copy, json, tempfile, argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
MAX_BYTES = 1_000_000          # a notebook with its outputs stays well under this
# stdout lines that change from run to run (Trainer's run-time report, speeds, progress counters)
VOLATILE = re.compile(r"train_runtime|samples_per_second|steps_per_second|\d+(\.\d+)?\s*(it/s|s/it)|\b\d+:\d\d(:\d\d)?<")
ADDRESS = re.compile(r'\bat 0x[0-9a-fA-F]{6,}')
PORT = re.compile(r'\b(127\.0\.0\.1:|localhost:|running on port: )\d{2,5}\b')   # a local server's (the app's), free when it started
DROP_MIME = ('application/vnd.jupyter.widget-view+json',)
# cells nbdev_test skips unless asked (settings.ini tst_flags), and cells marked not to run
SEED_ALL = 'import random, numpy, torch\nrandom.seed(0); numpy.random.seed(0); torch.manual_seed(0)'
SKIP = re.compile(r'^#\|\s*(hub|gpu|slow|eval:\s*false)\s*$', re.M)


def module_notebooks() -> list[Path]:
    "The course's notebooks, in order: `NN_name.ipynb` (the drivers and index are not executed here)."
    return sorted(p for p in NBS.glob('[0-9][0-9]*.ipynb'))


def _paths(text: str) -> str:
    tmp = re.escape(os.path.realpath(tempfile.gettempdir()))
    text = re.sub(tmp + r'/[^\s\'",)\]}]*', '<tmp>', text)
    text = re.sub(r'(?<![\w/])/tmp/[^\s\'",)\]}]*', '<tmp>', text)
    text = text.replace(str(ROOT) + '/', '').replace(str(ROOT), '.')
    return PORT.sub(r'\1<port>', ADDRESS.sub('at 0x…', text))


def scrub(nb: dict) -> dict:
    "Drop and normalise what differs between runs (see the module's docstring); returns the notebook."
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        outs = []
        for o in c.get('outputs', []):
            if o['output_type'] == 'stream':
                if o['name'] == 'stderr': continue
                text = ''.join(o['text']) if isinstance(o['text'], list) else o['text']
                text = '\n'.join(l for l in text.split('\n') if not VOLATILE.search(l) and '\r' not in l)
                if not text.strip(): continue
                o['text'] = _paths(text)
            elif o['output_type'] in ('execute_result', 'display_data'):
                data = {k: v for k, v in o['data'].items() if k not in DROP_MIME}
                if not data: continue
                for k, v in data.items():
                    if k.startswith('text/'): data[k] = _paths(''.join(v) if isinstance(v, list) else v)
                o['data'] = data
            elif o['output_type'] == 'error':
                raise RuntimeError(f"a cell failed: {o.get('ename')}: {o.get('evalue')}")
            outs.append(o)
        c['outputs'] = outs
    return nb


def kernel_env() -> dict:
    "Offline, figures inline, progress bars off, a fixed hash seed (bert-score batches a set)."
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_DATASETS_OFFLINE='1', TOKENIZERS_PARALLELISM='false',
               PYTHONHASHSEED='0', TQDM_DISABLE='1', HF_DATASETS_DISABLE_PROGRESS_BARS='1', IMGCAP2TEXT_PROGRESS='0',
               MPLBACKEND='module://matplotlib_inline.backend_inline')
    return env


def execute(path: Path, timeout: int = 1800) -> dict:
    "Run one notebook top to bottom in a fresh kernel (cwd nbs/), as `nbdev_test` does, and return it with its outputs."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    run = copy.deepcopy(nb)                           # what the kernel runs; `nb` keeps the cells as written
    skipped = [i for i, c in enumerate(run.cells) if c.cell_type == 'code' and SKIP.search(c.source)]
    for i in skipped: run.cells[i].source = ''        # as nbdev_test: hub, GPU and slow cells run only when asked for
    # every random number generator seeded before the first cell: a cell that builds an untrained model without a seed
    # of its own then draws the same weights on every run (the cell is run, not saved)
    run.cells.insert(0, nbformat.v4.new_code_cell(SEED_ALL))
    old = dict(os.environ); os.environ.update(kernel_env())   # the kernel inherits this process's environment
    try: NotebookClient(run, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(NBS)}}).execute()
    finally: os.environ.clear(); os.environ.update(old)
    run.cells.pop(0)
    for i, (c, r) in enumerate(zip(nb.cells, run.cells)):
        if c.cell_type == 'code': c.outputs = [] if i in skipped else r.outputs
    return scrub(json.loads(nbformat.writes(nb)))


def check(paths) -> list[str]:
    "What is wrong with the committed notebooks: none without an output, none over `MAX_BYTES`."
    problems = []
    for p in paths:
        nb = json.loads(p.read_text())
        if not any(c.get('outputs') for c in nb['cells'] if c['cell_type'] == 'code'): problems.append(f'{p.name}: no outputs (run make notebooks)')
        if p.stat().st_size > MAX_BYTES: problems.append(f'{p.name}: {p.stat().st_size:,} bytes, over {MAX_BYTES:,}')
    return problems


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to run (default: every module notebook)')
    ap.add_argument('--check', action='store_true', help='only check outputs and sizes')
    a = ap.parse_args()
    paths = [Path(p).resolve() for p in a.notebooks] or module_notebooks()
    if not a.check:
        for p in paths:
            print(f'running {p.name}', flush=True)
            p.write_text(json.dumps(execute(p), indent=1, ensure_ascii=False) + '\n')
    problems = check(paths)
    if problems: sys.exit('\n'.join(problems))
    print(f'{len(paths)} notebooks have their outputs, each under {MAX_BYTES:,} bytes')
