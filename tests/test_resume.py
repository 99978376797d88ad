"""Reliability of training (issue 6): a run killed mid-epoch and started again resumes from its last checkpoint and
ends where an uninterrupted run ends; and the same seed and split give the same numbers in separate processes.

Tolerance: validation and training losses within 1e-5 (absolute), final weights within 1e-5. On a CPU both runs do
the same float operations in the same order, so we expect (and have measured) exact equality; the tolerance only
leaves room for a BLAS that reorders sums."""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from imgcap2text.models import load_captioner
from imgcap2text.generate import generate_captions
from imgcap2text.train import prepare_splits

TOL = 1e-5
EPOCHS = 4
VISION_EPOCHS = 5   # the tagging before captioning, shortened (the preset's 30): what is tested is the captioning's resume

def train_command(mini_db):
    return ['imgcap2text', 'train', '--model', 'blip', '--source', str(mini_db), '--epochs', str(EPOCHS), '--vision_epochs', str(VISION_EPOCHS)]

def env_for(home):
    return dict(os.environ, IMGCAP2TEXT_HOME=str(home))

def history(run):
    return json.loads((run/'history.json').read_text())

def kill_tree(p):
    """SIGKILL a process and every process below it. Its process group is not enough: torchrun starts each worker in a
    session of its own, so killing torchrun's group left both workers training on, racing the resumed run (what made
    test_distributed's resume flaky: histories from two runs, and ranks of different runs waiting for each other)."""
    import psutil
    try: procs = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
    except psutil.NoSuchProcess: procs = []
    for q in procs:
        try: q.kill()
        except psutil.NoSuchProcess: pass
    gone, alive = psutil.wait_procs(procs, timeout=30); p.wait()
    assert not alive, f'still running after SIGKILL: {alive}'

def kill_mid_epoch(cmd, home, run, timeout=600):
    "Start training; once a checkpoint exists and the run is part-way through a later epoch, SIGKILL it and all its processes. Returns the epoch it was in."
    p = subprocess.Popen(cmd, env=env_for(home), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if p.poll() is not None: pytest.fail(f'training finished (exit {p.returncode}) before it could be killed')
            ckpts = list((run/'checkpoints').glob('checkpoint-*')) if (run/'checkpoints').exists() else []
            try: epoch = max((s['epoch'] for s in history(run)['steps']), default=0)
            except (FileNotFoundError, json.JSONDecodeError, KeyError): epoch = 0   # not written yet, or mid-write
            if ckpts and 1 < epoch < EPOCHS - 0.5 and epoch != int(epoch):
                kill_tree(p)
                return epoch
            time.sleep(0.02)
        pytest.fail('timed out waiting for a mid-epoch moment')
    finally:
        if p.poll() is None: kill_tree(p)


@pytest.fixture(scope='module')
def two_runs(mini_db, tmp_path_factory):
    "The same training twice, each in its own project and processes: once straight through, once killed mid-epoch and restarted."
    straight, killed = tmp_path_factory.mktemp('straight'), tmp_path_factory.mktemp('killed')
    cmd = train_command(mini_db)
    subprocess.run(cmd, env=env_for(straight), check=True, capture_output=True)
    run = killed/'runs'/'blip-tiny'
    at = kill_mid_epoch(cmd, killed, run)
    assert not (run/'summary.json').exists() and list((run/'checkpoints').glob('checkpoint-*'))
    steps_before = len(history(run)['steps'])
    subprocess.run(cmd, env=env_for(killed), check=True, capture_output=True)   # the same command again: it resumes
    return straight/'runs'/'blip-tiny', run, at, steps_before


def test_killed_run_resumes_to_the_same_result(two_runs):
    straight, resumed, killed_at, steps_before = two_runs
    assert 1 < killed_at < EPOCHS
    a, b = history(straight), history(resumed)
    # every epoch's validation loss (epoch 0 = before training) and every step's training loss agree
    assert [e['epoch'] for e in a['epochs']] == [e['epoch'] for e in b['epochs']] == list(range(EPOCHS + 1))
    for ea, eb in zip(a['epochs'], b['epochs']): assert abs(ea['eval_loss'] - eb['eval_loss']) <= TOL, (ea, eb)
    assert len(a['steps']) == len(b['steps'])
    for sa, sb in zip(a['steps'], b['steps']): assert sa['step'] == sb['step'] and abs(sa['loss'] - sb['loss']) <= TOL, (sa, sb)
    sa, sb = (json.loads((r/'summary.json').read_text()) for r in (straight, resumed))
    assert abs(sa['best_eval_loss'] - sb['best_eval_loss']) <= TOL
    assert not (resumed/'checkpoints').exists()          # resume states are removed once the run is complete
    # the final models: the same weights and the same captions
    ma, mb = (load_captioner(r/'model') for r in (straight, resumed))
    wa, wb = ma.model.state_dict(), mb.model.state_dict()
    assert wa.keys() == wb.keys()
    assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) <= TOL
    test = prepare_splits(sa['config']['source'])['test'].select(range(6))['image']
    ca, cb = (generate_captions(m, test, progress=False) for m in (ma, mb))
    assert [c['caption'] for c in ca] == [c['caption'] for c in cb]


def test_same_seed_same_split_same_numbers(two_runs):
    "Two processes, same seed: the same split and the same tokenizer (so the same token ids and losses)."
    straight, resumed, *_ = two_runs
    assert json.loads((straight/'split.json').read_text()) == json.loads((resumed/'split.json').read_text())
    assert (straight/'model'/'tokenizer.json').read_text() == (resumed/'model'/'tokenizer.json').read_text()
    assert (straight/'initial'/'model.safetensors').read_bytes() == (resumed/'initial'/'model.safetensors').read_bytes()


def test_run_folders_hold_only_safetensors_weights(two_runs):
    "Weights are written as safetensors only; no pickled model file is left in a finished run."
    for run in two_runs[:2]:
        files = [p for p in run.rglob('*') if p.is_file()]
        assert any(p.name == 'model.safetensors' for p in files)
        assert not [p for p in files if p.suffix in ('.bin', '.pt', '.pth', '.pkl', '.ckpt')], files
