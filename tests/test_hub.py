"""The Colab path, run as a Colab user runs it, against the hub replica on 127.0.0.1 (`imgcap2text.hub_replica`):
the train driver with the paper preset on a DiffusionDB hub subset for the three captioners, the evaluate driver with
the paper metric preset (BERTScore roberta-large, CLIP ViT-B/16), `imgcap2text caption` on a paper run, and a second
run offline from the warm cache. `HF_HUB_OFFLINE` is unset and every process is guarded: a connection to anything but
127.0.0.1 is refused and logged, and the log must stay empty."""
import csv, json, subprocess, sys, tempfile, zipfile
from pathlib import Path
import pytest
import papermill as pm
from conftest import ROOT, use_replica as use_hub_replica
from imgcap2text.hub_replica import build_replica, serve_replica

# small and short: the code path, not the quality (the replica's weights are random)
PAPER_RUN = dict(preset='paper', source='2m_first_1k', n=24, epochs=1, batch_size=4, grad_accum=1)


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    root = build_replica(tmp_path_factory.mktemp('replica'))
    with serve_replica(root) as server: yield server

@pytest.fixture(scope='module')
def home(tmp_path_factory): return tmp_path_factory.mktemp('colab')

def use_replica(monkeypatch, hub, home, offline=False):
    "As conftest's, the project in `home/'project'`."
    use_hub_replica(monkeypatch, hub, home, offline, project=home/'project')

def run_driver(name, home, out, **parameters):
    pm.execute_notebook(str(ROOT/'nbs'/f'{name}.ipynb'), str(home/out), parameters=parameters, cwd=str(ROOT/'nbs'), progress_bar=False)

def fetched(hub, since=0) -> set[str]:
    "Paths of the files the hub served (GET) since request number `since`."
    return {p.split('?')[0] for m, p in hub.requests[since:] if m == 'GET' and '/resolve/' in p}

def guard_log(home) -> str: return (home/'guard.log').read_text() if (home/'guard.log').exists() else ''


@pytest.mark.parametrize('model', ['blip', 'vit-gpt2', 'clip-gpt2'])
def test_train_driver_paper_preset(model, hub, home, monkeypatch):
    use_replica(monkeypatch, hub, home)
    since = len(hub.requests)
    run_driver('train', home, f'train-{model}.ipynb', model=model, **PAPER_RUN)
    run = home/'project'/'runs'/f'{model}-paper'
    s = json.loads((run/'summary.json').read_text())
    assert s['config']['preset'] == 'paper' and s['config']['source'] == '2m_first_1k'
    assert s['n_train'] + s['n_validation'] + s['n_test'] == 24 and s['settings']['epochs'] == 1
    assert json.loads((run/'split.json').read_text())['leakage']['test_images_with_train_prompt'] == 0
    got = fetched(hub, since)
    # the part was downloaded (by this run or, cached, by an earlier one), and only the part the subset needs
    parts = {p for p in fetched(hub) if p.startswith('/datasets/poloclub/diffusiondb/resolve/')}
    assert len(parts) == 1 and parts.pop().endswith('/images/part-000001.zip')
    if model == 'blip': assert any(p.endswith('/pytorch_model.bin') and 'Salesforce/blip-image-captioning-base' in p for p in got)
    if model == 'vit-gpt2': assert any(p.endswith('/pytorch_model.bin') and 'nlpconnect/vit-gpt2-image-captioning' in p for p in got)
    if model == 'clip-gpt2':
        assert any(p.startswith('/openai/clip-vit-base-patch16/') and p.endswith('/model.safetensors') for p in got)
        assert any(p.startswith('/gpt2/') and p.endswith('/model.safetensors') for p in got)
        assert s['architecture']['freeze_gpt2'] is True          # the report's frozen GPT-2
    # the decoding was chosen with the paper preset's BERTScore (roberta-large, from the hub)
    assert s['decoding']['candidates'] and any('roberta-large' in p for p in fetched(hub))
    assert guard_log(home) == ''


def test_evaluate_driver_paper_metrics(hub, home, monkeypatch):
    use_replica(monkeypatch, hub, home)
    run_driver('evaluate', home, 'evaluate-blip.ipynb', model='blip', preset='paper', n_boot=50)
    m = json.loads((home/'project'/'results'/'blip-paper'/'metrics.json').read_text())
    assert m['config']['metric_preset'] == 'paper'
    assert m['settings']['bertscore']['model'] == 'roberta-large' and m['settings']['clip']['model'] == 'openai/clip-vit-base-patch16'
    assert {'prior', 'nearest neighbour', 'pre-trained', 'fine-tuned', 'retrieval', 'regression', 'interrogator'} <= set(m['systems'])
    # the practitioners' systems' paper variant: fitted with CLIP ViT-B/16 from the hub, the interrogator on the real BLIP's captions
    systems = json.loads((home/'project'/'runs'/'blip-paper'/'systems'/'systems.json').read_text())
    assert systems['clip'] == 'openai/clip-vit-base-patch16' and systems['regressor']['d_in'] == 512   # ViT-B/16's projection width
    for system in m['systems'].values(): assert -1 <= system['combined']['mean'] <= 1
    assert any(p.startswith('/openai/clip-vit-base-patch16/') for p in fetched(hub))
    assert guard_log(home) == ''


def test_caption_cli_with_a_paper_run(hub, home, monkeypatch, tmp_path):
    use_replica(monkeypatch, hub, home)
    with zipfile.ZipFile(hub.root/'datasets/poloclub/diffusiondb/images/part-000002.zip') as z:
        for name in [n for n in z.namelist() if n.endswith('.png')][:3]: z.extract(name, tmp_path/'images')
    out = tmp_path/'captions.csv'
    r = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'images'), '--model', str(home/'project'/'runs'/'blip-paper'),
                        '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 3 and all('caption' in row for row in rows)
    # the interrogator of the paper run: real BLIP's caption, phrases chosen by CLIP ViT-B/16, both from the hub (cached)
    r = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'images'), '--model', str(home/'project'/'runs'/'blip-paper'),
                        '--system', 'interrogator', '--tables', 'run', '--out', str(tmp_path/'prompts.csv')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    chained = {row['image']: row['caption'] for row in csv.DictReader(open(tmp_path/'prompts.csv'))}
    assert all(chained[row['image']].startswith(row['caption']) for row in rows)
    assert guard_log(home) == ''


def test_streaming_from_the_hub(hub, home, monkeypatch, tmp_path):
    """A hub subset as a stream (issue 23): the train driver's paper preset trains by steps on it, keeping its held-out
    images; `caption` reads a subset as a stream; each part is fetched from the hub and none is left behind."""
    use_replica(monkeypatch, hub, home)
    temp = lambda: set(Path(tempfile.gettempdir()).glob('imgcap2text-stream-*'))
    parts = lambda: {p.relative_to(home/'hf') for p in (home/'hf').rglob('part-*.zip')}
    temp_before, parts_before, since = temp(), parts(), len(hub.requests)
    run_driver('train', home, 'train-blip-stream.ipynb', model='blip', preset='paper', source='2m_first_1k', streaming=True, steps=3,
               batch_size=4, grad_accum=1, n_eval=4)
    run = home/'project'/'runs'/'blip-paper-stream'
    s = json.loads((run/'summary.json').read_text())
    assert s['config']['streaming'] is True and s['config']['steps'] == 3 and s['n_train'] is None and s['train_images_drawn'] == 12
    assert (s['n_validation'], s['n_test']) == (4, 4) and s['decoding']['candidates']
    hist = json.loads((run/'history.json').read_text())
    assert len(hist['steps']) == 3 and [e['epoch'] for e in hist['epochs']] == [0, 1]   # three steps, validated before and after
    split = json.loads((run/'split.json').read_text())
    assert split['stream']['fractions'] == [0.6, 0.2, 0.2] and split['counts'] == {'validation': 4, 'test': 4}
    assert split['leakage'] == {'validation_images_with_train_prompt': 0.0, 'test_images_with_train_prompt': 0.0}
    out = tmp_path/'stream.csv'
    r = subprocess.run(['imgcap2text', 'caption', '2m_first_1k', '--model', str(run), '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(out)))
    with zipfile.ZipFile(hub.root/'datasets/poloclub/diffusiondb/images/part-000001.zip') as z: names = {n for n in z.namelist() if n.endswith('.png')}
    assert {row['image'] for row in rows} == {f'2m_first_1k::part-000001.zip::{n}' for n in names} and all(row['caption'] for row in rows)
    # each stream asked the hub for the part (GET, or HEAD when huggingface_hub copies it from a cache an earlier test
    # filled) and deleted it once read: nothing new in the hub cache or the temp folder
    assert sum(p.endswith('/images/part-000001.zip') for m, p in hub.requests[since:] if m in ('GET', 'HEAD')) >= 2
    assert parts() == parts_before and temp() == temp_before and guard_log(home) == ''


def test_zero_shot_from_the_hub_then_offline(hub, home, monkeypatch, tmp_path):
    """No training run (issue 21): CLIP Interrogator's captioner (BLIP large) and SD 1.x's CLIP (ViT-L/14) from the hub,
    and retrieval from DiffusionDB's metadata.parquet; then the same offline from the cache, asking the hub nothing."""
    use_replica(monkeypatch, hub, home)
    monkeypatch.setenv('IMGCAP2TEXT_CACHE', str(home/'cache'))
    with zipfile.ZipFile(hub.root/'datasets/poloclub/diffusiondb/images/part-000001.zip') as z:
        for name in [n for n in z.namelist() if n.endswith('.png')][:2]: z.extract(name, tmp_path/'images')
    commands = dict(interrogator=['--model', 'Salesforce/blip-image-captioning-large', '--system', 'interrogator', '--clip', 'sd1'],
                    retrieval=['--system', 'retrieval', '--bank', 'diffusiondb', '--clip', 'sd1'])
    def run(name, suffix):
        r = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'images'), *commands[name], '--out', str(tmp_path/f'{name}{suffix}.csv')],
                           capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr[-2000:])
        return [row['caption'] for row in csv.DictReader(open(tmp_path/f'{name}{suffix}.csv'))]
    since = len(hub.requests)
    online = {name: run(name, '') for name in commands}
    got = fetched(hub, since)
    assert any(p.startswith('/Salesforce/blip-image-captioning-large/') and p.endswith('/model.safetensors') for p in got)
    assert any(p.startswith('/openai/clip-vit-large-patch14/') and p.endswith('/model.safetensors') for p in got)
    assert any(p.startswith('/datasets/poloclub/diffusiondb/') and p.endswith('/metadata.parquet') for p in got)
    import pandas as pd
    bank = set(pd.read_parquet(hub.root/'datasets/poloclub/diffusiondb/metadata.parquet').prompt)
    assert len(online['retrieval']) == 2 and set(online['retrieval']) <= bank and all(online['interrogator'])
    use_replica(monkeypatch, hub, home, offline=True)
    since = len(hub.requests)
    assert {name: run(name, '-offline') for name in commands} == online
    assert hub.requests[since:] == [] and guard_log(home) == ''


def test_wd_tagger_from_the_hub_then_offline(hub, home, monkeypatch, tmp_path):
    """`--system tagger` with SmilingWolf's repo id (issue 32): its model.onnx and selected_tags.csv from the hub, run with
    onnxruntime on the provider it names, the repo's categories honoured; then offline from the cache, asking the hub nothing."""
    use_replica(monkeypatch, hub, home)
    with zipfile.ZipFile(hub.root/'datasets/poloclub/diffusiondb/images/part-000001.zip') as z:
        for name in [n for n in z.namelist() if n.endswith('.png')][:3]: z.extract(name, tmp_path/'images')
    def run(suffix, *extra):
        r = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'images'), '--system', 'tagger', '--model', 'SmilingWolf/wd-eva02-large-tagger-v3',
                            '--general-threshold', '0', '--character-threshold', '1.1', '--rating', '--out', str(tmp_path/f'tags{suffix}.csv'), *extra],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert 'CPUExecutionProvider' in r.stdout or 'CUDAExecutionProvider' in r.stdout, r.stdout   # it says where it runs
        return [row['caption'] for row in csv.DictReader(open(tmp_path/f'tags{suffix}.csv'))]
    since = len(hub.requests)
    online = run('')
    assert {p.rsplit('/', 1)[1] for p in fetched(hub, since) if p.startswith('/SmilingWolf/wd-eva02-large-tagger-v3/')} == {'model.onnx', 'selected_tags.csv'}
    for caption in online:
        tags = caption.split(', ')
        # threshold 0: every general tag, underscores as spaces but the kaomoji's; no character (threshold over 1); one rating, last
        assert {'long hair', 'white background', '^_^'} <= set(tags) and 'hatsune miku' not in tags, tags
        assert tags[-1] in {'general', 'sensitive', 'questionable', 'explicit'} and len(tags) == 10 + 1
    use_replica(monkeypatch, hub, home, offline=True)
    since = len(hub.requests)
    assert run('-offline') == online
    assert hub.requests[since:] == [] and guard_log(home) == ''


def test_second_run_offline_from_the_cache(hub, home, monkeypatch):
    "HF_HUB_OFFLINE=1 with the cache the first runs filled: the paper preset trains again and asks the hub nothing."
    use_replica(monkeypatch, hub, home, offline=True)
    since = len(hub.requests)
    run_driver('train', home, 'train-vit-gpt2-offline.ipynb', model='vit-gpt2', force=True, **PAPER_RUN)
    assert json.loads((home/'project'/'runs'/'vit-gpt2-paper'/'summary.json').read_text())['config']['preset'] == 'paper'
    assert hub.requests[since:] == [] and guard_log(home) == ''


def test_offline_with_a_cold_cache_says_what_to_do(hub, home, monkeypatch, tmp_path):
    use_replica(monkeypatch, hub, home, offline=True)
    monkeypatch.setenv('HF_HOME', str(tmp_path/'empty-cache'))
    r = subprocess.run(['imgcap2text', 'train', '--model', 'blip', '--preset', 'paper', '--source', '2m_first_1k'],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert 'cache does not hold it' in r.stderr and 'mini-DiffusionDB' in r.stderr
