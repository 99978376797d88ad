"The train driver, as a user runs it: papermill with default parameters, for each of the three captioners."
import json, re
import pytest
import papermill as pm
from conftest import ROOT
from imgcap2text.models import load_captioner
from imgcap2text.generate import generate_captions
from imgcap2text.train import prepare_splits
from imgcap2text.synth import parse_prompt


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    "One project home for the three runs (they share the mini-DiffusionDB the first one makes)."
    return tmp_path_factory.mktemp('home')


@pytest.mark.parametrize('model', ['blip', 'vit-gpt2', 'clip-gpt2'])
def test_train_driver_defaults(model, home, monkeypatch):
    monkeypatch.setenv('IMGCAP2TEXT_HOME', str(home))
    pm.execute_notebook(str(ROOT/'nbs'/'train.ipynb'), str(home/f'train-{model}.ipynb'), parameters=dict(model=model),
                        cwd=str(ROOT/'nbs'), progress_bar=False)
    run = home/'runs'/f'{model}-tiny'
    summary = json.loads((run/'summary.json').read_text())
    # it learns: validation loss ends far below where it started (the CLIP-prefix model starts at its untrained GPT-2:
    # the map's own training, with GPT-2 frozen, moves the loss only a little; see the run's history)
    start = summary['pretrain']['gpt2'][0]['eval_loss'] if model == 'clip-gpt2' else summary['first_eval_loss']
    assert summary['best_eval_loss'] < 0.5 * start, summary
    assert summary['best_eval_loss'] <= summary['first_eval_loss']
    assert summary['config']['model'] == model and summary['provenance']['packages']['transformers']
    hist = json.loads((run/'history.json').read_text())
    assert len(hist['epochs']) == summary['settings']['epochs'] + 1 and len(hist['steps']) >= len(hist['epochs'])
    split = json.loads((run/'split.json').read_text())
    assert split['leakage']['test_images_with_train_prompt'] == 0 and split['by'] == 'prompt'
    assert (run/'model'/'model.safetensors').exists() and not (run/'checkpoints').exists()
    if model == 'clip-gpt2':
        assert summary['trainable_parameters'] < summary['parameters'] / 10   # only the map learns
        assert (run/'model'/'clip'/'model.safetensors').exists()
    # captions of training images read like their prompts: they describe a whole scene in the prompts' grammar,
    # and share many words with the image's own prompt
    cap = load_captioner(run/'model')
    train = prepare_splits(str(home/'data'/'mini-diffusiondb'))['train'].select(range(8))
    caps = generate_captions(cap, train['image'], progress=False)
    words = lambda t: set(re.findall(r'[a-z]+', t.lower()))
    overlap = [len(words(c['caption']) & words(p)) / max(len(words(c['caption'])), 1) for c, p in zip(caps, train['prompt'])]
    scenes = [parse_prompt(c['caption']) for c in caps]
    complete = [all((s.shape, s.colour, s.position, s.background)) for s in scenes]
    assert sum(complete) >= 6, [c['caption'] for c in caps]
    assert sum(overlap) / len(overlap) > 0.3, list(zip(train['prompt'], [c['caption'] for c in caps]))


def test_unknown_model_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv('IMGCAP2TEXT_HOME', str(tmp_path))
    with pytest.raises(pm.PapermillExecutionError, match='valid choices: blip, vit-gpt2, clip-gpt2'):
        pm.execute_notebook(str(ROOT/'nbs'/'train.ipynb'), str(tmp_path/'bad.ipynb'), parameters=dict(model='blip-2'),
                            cwd=str(ROOT/'nbs'), progress_bar=False)
    assert not (tmp_path/'runs').exists() and not (tmp_path/'data').exists()
