"The data stage as a user drives it: the command line, the reader, the splits, the papermill driver."
import json, zipfile
from collections import Counter
from pathlib import Path
import numpy as np
import pandas as pd
import papermill as pm
from conftest import ROOT, SHARED
from imgcap2text.data import load_diffusiondb, split_dataset, leakage, split_manifest, apply_split_manifest, normalise_prompt, column
from imgcap2text.synth import render, parse_prompt, PromptGrammar, renderer_words


def test_synth_layout_is_diffusiondb(mini_db):
    zips = sorted((mini_db/'images').glob('part-*.zip'))
    assert [z.name for z in zips] == ['part-000001.zip', 'part-000002.zip', 'part-000003.zip']  # 180 images, 70 a part
    with zipfile.ZipFile(zips[0]) as zf:
        meta = json.loads(zf.read('part-000001.json'))
        pngs = [n for n in zf.namelist() if n.endswith('.png')]
    assert len(pngs) == 70 and set(meta) == set(pngs)
    assert set(next(iter(meta.values()))) == {'p', 'se', 'c', 'st', 'sa'}
    md = pd.read_parquet(mini_db/'metadata.parquet')
    assert len(md) == 180 and {'image_name', 'prompt', 'part_id', 'seed', 'step', 'cfg', 'sampler', 'width', 'height'} <= set(md.columns)


def test_roundtrip_split_by_prompt_never_leaks(mini_db):
    skips = Counter()
    ds = load_diffusiondb(mini_db, skips=skips)
    assert len(ds) == 180 and sum(skips.values()) == 0
    dsd = split_dataset(ds, by='prompt', seed=3)
    prompts = {s: {normalise_prompt(p) for p in column(d, 'prompt')} for s, d in dsd.items()}
    assert not prompts['train'] & prompts['test'] and not prompts['train'] & prompts['validation'] and not prompts['validation'] & prompts['test']
    assert sum(len(d) for d in dsd.values()) == 180
    assert abs(len(dsd['train']) - 108) <= 3          # 60 % of the images, to within one prompt's images
    leaky = leakage(split_dataset(ds, by='image', seed=3))
    assert leaky['test_images_with_train_prompt'] > 0.5  # three images a prompt: the random split leaks most of test
    m = split_manifest(dsd, by='prompt', seed=3)
    again = apply_split_manifest(load_diffusiondb(mini_db), m)
    assert {s: column(d, 'image_name') for s, d in again.items()} == {s: column(d, 'image_name') for s, d in dsd.items()}


def test_images_are_their_prompts_rendered(mini_db):
    ds = load_diffusiondb(mini_db, n=5, seed=0)
    for r in ds:
        assert np.array_equal(np.asarray(r['image']), np.asarray(render(r['prompt'], r['seed'], 64, r['cfg'], r['step'])))


def test_renderer_separates_visible_content():
    "At a glance (8x8 block means), another colour changes an image far more than another seed: the content is learnable."
    from PIL import Image
    def img(p, s): return np.asarray(render(p, s).resize((8, 8), Image.BOX), float)
    same = np.abs(img('a red circle in the center, on a white background, photo', 1) - img('a red circle in the center, on a white background, photo', 2)).mean()
    other = np.abs(img('a red circle in the center, on a white background, photo', 1) - img('a blue circle in the center, on a white background, photo', 1)).mean()
    assert other > 2 * same


def test_grammar_matches_real_prompt_vocabulary():
    real = SHARED/'data'/'diffusiondb_prompts.csv'
    g = PromptGrammar(seed=0)
    prompts = [g() for _ in range(1000)]
    words = [len(p.split()) for p in prompts]
    assert 12 < np.mean(words) < 30                   # real DiffusionDB: mean 22, median 18
    if real.exists():
        real_words = pd.read_csv(real).prompt.astype(str).str.split().str.len()
        assert abs(np.median(words) - real_words.median()) < 8
    mods = {m for p in prompts for m in p.split(', ')[2:]}
    assert 'trending on artstation' in mods or 'highly detailed' in mods
    assert all(parse_prompt(p).shape for p in prompts)


def test_data_driver_through_papermill(tmp_path, mini_db, monkeypatch):
    monkeypatch.setenv('IMGCAP2TEXT_HOME', str(tmp_path))   # results and figures go to tmp_path, not the clone
    ROOT_OUT = tmp_path
    out = tmp_path/'data.ipynb'
    pm.execute_notebook(str(ROOT/'nbs'/'data.ipynb'), str(out), parameters=dict(source=str(mini_db), seed=7), cwd=str(ROOT/'nbs'), progress_bar=False)
    summary = json.loads((ROOT_OUT/'results'/'data'/'summary.json').read_text())
    assert summary['images'] == 180 and summary['prompts'] == 60
    assert summary['leakage']['prompt']['test_images_with_train_prompt'] == 0
    assert summary['leakage']['image']['test_images_with_train_prompt'] > 0.5
    assert summary['provenance']['config']['seed'] == 7
    manifest = json.loads((ROOT_OUT/'results'/'data'/'split_prompt.json').read_text())
    assert sum(manifest['counts'].values()) == 180 and len(manifest['sha256']) == 64
    assert (ROOT_OUT/'figures'/'prompt_lengths.pdf').exists()
    dat = (ROOT_OUT/'figures'/'data'/'prompt_lengths.dat').read_text().splitlines()
    assert dat[0] == 'length count' and sum(int(l.split()[1]) for l in dat[1:]) == 180
