import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/'shared'

# the notebooks' kernel is the `python` on PATH: make it this environment's
os.environ['PATH'] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get('PATH', '')
for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_DATASETS_OFFLINE'): os.environ[k] = '1'
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ['PYTHONHASHSEED'] = '0'   # the notebooks' kernels: bert-score's batches (a set of sentences) in the same order every run

@pytest.fixture(scope='session')
def mini_db(tmp_path_factory):
    "A small mini-DiffusionDB written by the command line, as a user would."
    import subprocess
    out = tmp_path_factory.mktemp('db')/'mini'
    subprocess.run(['imgcap2text', 'synth', str(out), '--prompts', '60', '--images_per_prompt', '3', '--seed', '1', '--part_size', '70'], check=True)
    return out
