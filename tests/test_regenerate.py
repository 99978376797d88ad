"""`imgcap2text regenerate` through the hub replica's `CompVis/stable-diffusion-v1-4` (issue 33): each recovered prompt
rendered again with its image's DiffusionDB seed, steps, CFG and sampler (read from the replica's part, by a local part
zip or a streamed hub subset's key), scored by CLIP-I with the CLIP named; then offline from the cache, the same images
and no request."""
import csv, json, re, subprocess, zipfile
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from imgcap2text.hub_replica import build_replica, serve_replica
from conftest import use_replica
from imgcap2text.regenerate import sampler_name

SD, CLIP = 'CompVis/stable-diffusion-v1-4', 'openai/clip-vit-base-patch16'


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    root = build_replica(tmp_path_factory.mktemp('replica'), models=[SD, CLIP], diffusiondb_parts=1, images_per_part=6)
    with serve_replica(root) as server: yield server


def test_regenerate_through_the_replicas_sd_with_diffusiondb_settings(hub, monkeypatch, tmp_path):
    use_replica(monkeypatch, hub, tmp_path)
    part = hub.root/'datasets/poloclub/diffusiondb/images/part-000001.zip'
    local = tmp_path/'part-000001.zip'; local.write_bytes(part.read_bytes())
    with zipfile.ZipFile(local) as z:
        names = sorted(n for n in z.namelist() if n.endswith('.png'))
        meta = json.loads(z.read(next(n for n in z.namelist() if n.endswith('.json'))))
    # a caption CSV as `caption` writes it: two images of a local part zip, one of the streamed hub subset, one from elsewhere
    keys = [f'{local}::{names[0]}', f'{local}::{names[1]}', f'2m_first_1k::part-000001.zip::{names[2]}', str(tmp_path/'other.png')]
    Image.new('RGB', (64, 64), (200, 30, 30)).save(tmp_path/'other.png')
    with open(tmp_path/'captions.csv', 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['image', 'caption'])
        for k in keys: w.writerow([k, meta.get(k.rsplit('::', 1)[-1], {}).get('p', 'a red square')])
    since = len(hub.requests)
    r = subprocess.run(['imgcap2text', 'regenerate', str(tmp_path/'captions.csv'), '--pipeline', SD, '--clip', CLIP, '--out', str(tmp_path/'online'),
                        '--batch-size', '2'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    got = {re.split(r'/resolve/[^/]+/', p.split('?')[0], maxsplit=1)[-1] for m, p in hub.requests[since:] if m == 'GET' and f'/{SD}/resolve/' in p}
    assert {'model_index.json', 'unet/config.json', 'vae/config.json', 'text_encoder/config.json', 'scheduler/scheduler_config.json'} <= got
    assert not any(p.startswith('safety_checker/') for p in got)
    rows = list(csv.DictReader(open(tmp_path/'online'/'regenerated.csv')))
    assert [row['settings_from'] for row in rows] == ['diffusiondb'] * 3 + ['stated defaults']
    for row, name in zip(rows[:3], names[:3]):   # the part's own settings, its sampler by diffusers' scheduler name
        m = meta[name]
        assert (int(row['seed']), int(row['step']), float(row['cfg']), row['sampler']) == (m['se'], m['st'], m['c'], sampler_name(m['sa']))
        assert -1 <= float(row['clip_i']) <= 1 and (tmp_path/'online'/row['regenerated']).exists()
    prov = json.loads((tmp_path/'online'/'regenerated.json').read_text())
    assert prov['config']['pipeline'] == SD and prov['config']['clip'] == CLIP and prov['summary']['n'] == 4
    assert (tmp_path/'online'/'pairs.png').stat().st_size > 5_000 and 'CLIP-I' in r.stdout
    # offline, from the cache: the same images, no request
    use_replica(monkeypatch, hub, tmp_path, offline=True)
    since = len(hub.requests)
    r = subprocess.run(['imgcap2text', 'regenerate', str(tmp_path/'captions.csv'), '--pipeline', SD, '--clip', CLIP, '--out', str(tmp_path/'offline'),
                        '--batch-size', '4'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert hub.requests[since:] == []
    for row in rows:
        a, b = (np.asarray(Image.open(tmp_path/d/row['regenerated']), float) for d in ('online', 'offline'))
        assert np.abs(a - b).max() <= 2   # batches of 2 or 4: the same images, within float rounding


def test_a_pipeline_with_code_of_its_own_is_refused(tmp_path):
    (tmp_path/'p').mkdir(); (tmp_path/'p'/'model_index.json').write_text('{"_class_name": ["pipeline", "MyPipeline"]}')
    (tmp_path/'c.csv').write_text('image,caption\nx.png,a cat\n')
    r = subprocess.run(['imgcap2text', 'regenerate', str(tmp_path/'c.csv'), '--pipeline', str(tmp_path/'p')], capture_output=True, text=True)
    assert r.returncode != 0 and 'code of its own' in r.stderr
