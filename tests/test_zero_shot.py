"""Prompt recovery with no training run, through the command line as a user runs it (issue 21): a pretrained checkpoint
folder captions zero-shot; the interrogator runs CLIP Interrogator's method over its real tables; retrieval answers
from a prompt file. Tiny untrained models: the code paths and the caches, not the quality."""
import json, os, subprocess
import pandas as pd
import pytest
from imgcap2text.models import build_captioner
from imgcap2text.synth import PromptGrammar, render


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('zero')
    g = PromptGrammar(3); prompts = [g() for _ in range(300)]
    build_captioner('blip', train_prompts=prompts).save_pretrained(d/'blip')
    pre = build_captioner('blip', train_prompts=prompts, sizes={'stem': None}).save_pretrained(d/'pretrained')
    (pre/'captioner.json').unlink()                         # a plain transformers checkpoint, as the hub's
    cfg = json.loads((pre/'generation_config.json').read_text())
    (pre/'generation_config.json').write_text(json.dumps(cfg | dict(max_length=6, num_beams=2)))   # the checkpoint's own decoding
    build_captioner('clip-gpt2', train_prompts=prompts).save_pretrained(d/'cg')
    (d/'imgs').mkdir()
    for i in range(3): render(prompts[i], i).save(d/'imgs'/f'{i}.png')
    (d/'imgs'/'broken.png').write_bytes(b'not a png')
    (d/'corpus.txt').write_text('\n'.join(prompts[100:]) + '\n')
    return d, prompts


def run(d, *args):
    env = dict(os.environ, IMGCAP2TEXT_CACHE=str(d/'cache'), HF_HUB_OFFLINE='1')
    return subprocess.run(['imgcap2text', 'caption', str(d/'imgs'), *args], capture_output=True, text=True, env=env, cwd=d)


def test_pretrained_checkpoint_captions_zero_shot(setup):
    d, _ = setup
    r = run(d, '--model', str(d/'pretrained'), '--out', str(d/'pre.csv'))
    assert r.returncode == 0, r.stderr[-2000:]
    caps = pd.read_csv(d/'pre.csv')
    assert len(caps) == 3 and (caps.n_tokens <= 6).all()       # decoding from the checkpoint's generation config
    assert 'skipped' in r.stdout and '0x' not in r.stdout       # the broken file, with a reason that names no address


def test_unknown_hub_checkpoint_offline_is_one_line(setup):
    d, _ = setup
    r = run(d, '--model', 'Salesforce/blip-image-captioning-large', '--out', str(d/'x.csv'))
    assert r.returncode == 2 and 'needs the Hugging Face Hub' in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (d/'x.csv').exists()
    r = run(d, '--model', str(d/'blip'), '--system', 'interrogator', '--mode', 'slow', '--out', str(d/'x.csv'))
    assert r.returncode == 2 and 'valid choices: best, classic, fast, negative' in r.stderr   # --mode, not read as --model


def test_interrogator_over_the_real_tables(setup, monkeypatch, capsys):
    from imgcap2text.cli import main
    d, _ = setup
    r = run(d, '--model', str(d/'blip'), '--system', 'interrogator', '--clip', str(d/'cg'/'clip'), '--out', str(d/'best.csv'))
    assert r.returncode == 0, r.stderr[-2000:]
    tables = sorted((d/'cache'/'tables').glob('*.safetensors'))
    assert {t.name.split('-')[0] for t in tables} == {'artists', 'flavors', 'mediums', 'movements', 'negative', 'trending'}
    best = pd.read_csv(d/'best.csv')
    assert len(best) == 3 and (best.n_tokens <= 64 - 1).all()    # the tiny CLIP holds 64 tokens, its end token included
    stamps = {t: t.stat().st_mtime_ns for t in tables}
    monkeypatch.setenv('IMGCAP2TEXT_CACHE', str(d/'cache'))
    for mode in ('fast', 'classic', 'negative'):                      # in this process: no start-up to wait for
        assert main(['caption', str(d/'imgs'), '--model', str(d/'blip'), '--system', 'interrogator', '--mode', mode,
                     '--clip', str(d/'cg'/'clip'), '--out', str(d/f'{mode}.csv')]) == 0, mode
        assert 'embedding flavors' not in capsys.readouterr().err       # read from the cache
        got = pd.read_csv(d/f'{mode}.csv', keep_default_na=False)
        assert len(got) == 3 and (got.caption.str.len() > 0).all()
        assert (got.mean_entropy == '').all() == (mode == 'negative')   # no caption in negative mode
    assert {t: t.stat().st_mtime_ns for t in tables} == stamps


def test_retrieval_from_a_prompt_file(setup):
    d, prompts = setup
    args = ('--system', 'retrieval', '--bank', str(d/'corpus.txt'), '--clip', str(d/'cg'/'clip'))
    r = run(d, *args, '--out', str(d/'ret.csv'))
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(d/'ret.csv')
    assert len(got) == 3 and set(got.caption) <= set(prompts[100:])
    banks = list((d/'cache'/'banks').glob('*/bank.json'))
    assert len(banks) == 1 and json.loads(banks[0].read_text())['index'] == 'exact'
    stamp = (banks[0].parent/'clip.f16.npy').stat().st_mtime_ns
    r = run(d, *args, '--out', str(d/'ret2.csv'))
    assert r.returncode == 0 and pd.read_csv(d/'ret2.csv').caption.tolist() == got.caption.tolist()
    assert (banks[0].parent/'clip.f16.npy').stat().st_mtime_ns == stamp   # opened, not built again
    r = run(d, '--system', 'retrieval', '--bank', str(d/'missing.txt'), '--clip', str(d/'cg'/'clip'), '--out', str(d/'x.csv'))
    assert r.returncode == 2 and 'no prompt corpus' in r.stderr


def test_pez_from_random_tokens_and_from_a_bank(setup):
    "PEZ (issue 33): answers of the asked length with no run, a bank's best prompt as the start, settings in the provenance."
    d, prompts = setup
    clip = ('--clip', str(d/'cg'/'clip'))
    r = run(d, '--system', 'pez', *clip, '--pez', 'small', '--pez-steps', '30', '--pez-tokens', '5', '--out', str(d/'pez.csv'))
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(d/'pez.csv', keep_default_na=False)
    assert len(got) == 3 and got.caption.str.len().gt(0).all() and got.n_tokens.between(1, 10).all()   # 5 tokens, re-tokenized
    cfg = json.loads((d/'pez.csv.json').read_text())['config']
    assert cfg['system'] == 'pez' and cfg['pez'] | {} == dict(prompt_len=5, iters=30, lr=0.1, weight_decay=0.1, batch_size=64, seed=0)
    # a rerun on the CSV resumes: nothing left to do
    r = run(d, '--system', 'pez', *clip, '--pez', 'small', '--pez-steps', '30', '--pez-tokens', '5', '--out', str(d/'pez.csv'))
    assert r.returncode == 0 and '0 captioned, 3 already' in r.stdout, r.stdout + r.stderr[-2000:]
    # other settings are other answers: the CSV is not continued with them
    r = run(d, '--system', 'pez', *clip, '--pez', 'small', '--pez-steps', '31', '--pez-tokens', '5', '--out', str(d/'pez.csv'))
    assert r.returncode != 0 and 'pez' in (r.stderr + r.stdout).lower()
    # PEZ + bank: one step from the bank's best prompt keeps most of its tokens
    r = run(d, '--system', 'pez', *clip, '--bank', str(d/'corpus.txt'), '--pez', 'small', '--pez-steps', '1', '--pez-tokens', '40', '--out', str(d/'pezb.csv'))
    assert r.returncode == 0, r.stderr[-2000:]
    start = pd.read_csv(d/'pezb.csv', keep_default_na=False).caption.tolist()
    assert all(any(s.startswith(p[:20]) for p in prompts[100:]) for s in start), start   # a bank prompt, then the optimised tokens
    # bad settings fail before anything loads, naming the valid ones
    r = run(d, '--system', 'pez', *clip, '--pez', 'fast', '--out', str(d/'x.csv'))
    assert r.returncode == 2 and 'paper, small' in r.stderr and not (d/'x.csv').exists()
    r = run(d, '--system', 'retrieval', '--pez', 'small', *clip, '--bank', str(d/'corpus.txt'), '--out', str(d/'x.csv'))
    assert r.returncode == 2 and 'for --system pez' in r.stderr
