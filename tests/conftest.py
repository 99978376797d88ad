import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/'shared'

# the notebooks' kernel is the `python` on PATH: make it this environment's
os.environ['PATH'] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get('PATH', '')
OFFLINE_VARS = ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_DATASETS_OFFLINE')
for k in OFFLINE_VARS: os.environ[k] = '1'
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ['PYTHONHASHSEED'] = '0'   # the notebooks' kernels: bert-score's batches (a set of sentences) in the same order every run

@pytest.fixture(scope='session')
def mini_db(tmp_path_factory):
    "A small mini-DiffusionDB written by the command line, as a user would."
    import subprocess
    out = tmp_path_factory.mktemp('db')/'mini'
    subprocess.run(['imgcap2text', 'synth', str(out), '--prompts', '60', '--images_per_prompt', '3', '--seed', '1', '--part_size', '70'], check=True)
    return out


def use_replica(monkeypatch, hub, home, offline=False, project=None):
    """This test's processes (papermill's kernels, the CLI) see the hub replica `hub` as the hub, its cache under `home`:
    online unless `offline`; `project`: the IMGCAP2TEXT_HOME they work in."""
    from imgcap2text.hub_replica import replica_env
    for k in OFFLINE_VARS: monkeypatch.delenv(k, raising=False)
    for k, v in replica_env(hub, home).items():
        if os.environ.get(k) != v: monkeypatch.setenv(k, v)
    if project is not None: monkeypatch.setenv('IMGCAP2TEXT_HOME', str(project))
    if offline: monkeypatch.setenv('HF_HUB_OFFLINE', '1')
