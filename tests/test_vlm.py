"""Vision-language captioners through the hub, as a Colab user runs them (issue 31): `imgcap2text caption IMAGES --model
<id> --style …` for each named family (JoyCaption, Qwen2.5-VL, Florence-2, BLIP-2, GIT) from the hub replica's tiny
repos under their real ids, then offline from the cache asking the hub nothing; a checkpoint that needs its own code is
refused and its code is never fetched or run; VLM options on another captioner are refused."""
import csv, json, subprocess
from pathlib import Path
import pytest
from imgcap2text.hub_replica import build_replica, serve_replica
from conftest import use_replica
from imgcap2text.vlm_replica import VLM_BUILDERS
from imgcap2text.vlm import CHAT_INSTRUCTIONS
from imgcap2text.synth import render

REMOTE = 'MiaoshouAI/Florence-2-base-PromptGen-v2.0'   # a fine-tune that ships its own modeling code (auto_map)
# each family, a style, and what it must have been asked
ASKED = {'fancyfeast/llama-joycaption-beta-one-hf-llava': ('sd', CHAT_INSTRUCTIONS['sd']),
         'Qwen/Qwen2.5-VL-3B-Instruct': ('tags', CHAT_INSTRUCTIONS['tags']),
         'florence-community/Florence-2-base': ('detailed', '<MORE_DETAILED_CAPTION>'),
         'Salesforce/blip2-opt-2.7b': ('short', f"Question: {CHAT_INSTRUCTIONS['short']} Answer:"),
         'microsoft/git-base-coco': ('sd', '')}


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    root = build_replica(tmp_path_factory.mktemp('replica'), models=list(VLM_BUILDERS), diffusiondb_parts=0)
    d = root/'models'/REMOTE; d.mkdir(parents=True)
    (d/'config.json').write_text(json.dumps({'model_type': 'florence2', 'architectures': ['Florence2ForConditionalGeneration'],
        'auto_map': {'AutoConfig': 'configuration_florence2.Florence2Config', 'AutoModelForCausalLM': 'modeling_florence2.Florence2ForConditionalGeneration'}}))
    # were this code ever run, it would leave a file behind
    (d/'modeling_florence2.py').write_text(f"open({str(root/'REMOTE_CODE_RAN')!r}, 'w').write('ran')\n")
    (d/'configuration_florence2.py').write_text(f"open({str(root/'REMOTE_CODE_RAN')!r}, 'w').write('ran')\n")
    with serve_replica(root) as server: yield server

@pytest.fixture(scope='module')
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp('images')
    render('three red circles, watercolor', seed=1).save(d/'a.png')
    render('a blue square, neon lighting', seed=2).convert('RGBA').save(d/'b.webp')
    render('two yellow stars', seed=3).save(d/'sub.jpg')
    return d

def caption(*args):
    return subprocess.run(['imgcap2text', 'caption', *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize('repo', list(ASKED))
def test_each_family_from_the_hub_then_offline(repo, hub, images, monkeypatch, tmp_path_factory):
    home = tmp_path_factory.mktemp('home')
    style, asked = ASKED[repo]
    use_replica(monkeypatch, hub, home)
    since = len(hub.requests)
    r = caption(images, '--model', repo, '--style', style, '--batch_size', 2, '--max_tokens', 6, '--out', home/'online.csv')
    assert r.returncode == 0, r.stderr[-3000:]
    assert any(p.startswith(f'/{repo}/') for m, p in hub.requests[since:])
    online = list(csv.DictReader(open(home/'online.csv')))
    assert sorted(row['image'] for row in online) == sorted(str(images/n) for n in ('a.png', 'b.webp', 'sub.jpg'))
    assert all(row['instruction'] == asked for row in online), (online[0]['instruction'], asked)   # what it was asked, per row
    assert all(0 < int(row['n_tokens']) <= 6 for row in online)
    prov = json.loads((home/'online.csv.json').read_text())
    assert prov['config']['style'] == style and prov['config']['instruction'] is None
    # offline, from the cache: the same answers, no request
    use_replica(monkeypatch, hub, home, offline=True)
    since = len(hub.requests)
    r = caption(images, '--model', repo, '--style', style, '--batch_size', 3, '--max_tokens', 6, '--out', home/'offline.csv')
    assert r.returncode == 0, r.stderr[-3000:]
    assert hub.requests[since:] == []
    offline = {row['image']: row['caption'] for row in csv.DictReader(open(home/'offline.csv'))}
    assert offline == {row['image']: row['caption'] for row in online}   # batch 2 or 3: the same answers (left padding)
    # another style is another set of answers: the CSV is not continued with them
    other = 'short' if style != 'short' else 'sd'
    r = caption(images, '--model', repo, '--style', other, '--out', home/'offline.csv')
    assert r.returncode != 0 and 'another configuration' in r.stderr


def test_remote_code_is_refused_and_never_fetched(hub, images, monkeypatch, tmp_path):
    use_replica(monkeypatch, hub, tmp_path)
    since = len(hub.requests)
    r = caption(images, '--model', REMOTE, '--out', tmp_path/'x.csv')
    assert r.returncode != 0 and 'trust_remote_code' in r.stderr and 'florence-community/Florence-2-base' in r.stderr, r.stderr[-2000:]
    fetched = [p for m, p in hub.requests[since:]]
    assert not any(p.endswith('.py') for p in fetched), fetched
    assert not (hub.root/'REMOTE_CODE_RAN').exists() and not (tmp_path/'x.csv').exists()


def test_vlm_options_are_refused_for_other_captioners(images, tmp_path):
    r = caption(images, '--model', 'blip', '--style', 'tags', '--out', tmp_path/'x.csv')
    assert r.returncode != 0 and '--style: for a vision-language checkpoint' in r.stderr
    r = caption(images, '--model', 'Salesforce/blip2-opt-2.7b', '--style', 'poem', '--out', tmp_path/'x.csv')
    assert r.returncode != 0 and 'sd, tags, short, detailed' in r.stderr


def test_the_interrogator_starts_from_a_vlms_captions(images, tmp_path):
    "The systems that start from a caption take any captioner (issue 31): CLIP Interrogator's chain from Florence-2's captions, offline."
    from imgcap2text.hub_replica import build_clip
    (tmp_path/'florence').mkdir(); VLM_BUILDERS['florence-community/Florence-2-base'](tmp_path/'florence')
    (tmp_path/'clip').mkdir(); build_clip(tmp_path/'clip')
    (tmp_path/'tables').mkdir()
    for t, words in dict(artists=['greg rutkowski'], flavors=['highly detailed', 'watercolor', 'octane render'], mediums=['a painting'],
                         movements=['art nouveau'], negative=['blurry']).items():
        (tmp_path/'tables'/f'{t}.txt').write_text('\n'.join(words) + '\n')
    r = caption(images, '--system', 'interrogator', '--mode', 'fast', '--model', tmp_path/'florence', '--style', 'short', '--clip', tmp_path/'clip',
                '--tables', tmp_path/'tables', '--max_tokens', 6, '--out', tmp_path/'i.csv')
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path/'i.csv')))
    assert len(rows) == 3 and all(row['instruction'] == '<CAPTION>' for row in rows)   # Florence-2 was asked for its captions
    assert json.loads((tmp_path/'i.csv.json').read_text())['config']['style'] == 'short'
