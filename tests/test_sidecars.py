"""A folder captioned for training, as a LoRA trainer does it with the command line (issue #32): a caption file beside
each image of a nested folder of PNG, JPEG and WebP images, trigger words, a rerun that writes nothing and loads no
model, append without repeats, a mirror folder, and metadata.jsonl that Hugging Face `datasets` reads."""
import json, subprocess
from pathlib import Path
import pandas as pd
import pytest
from imgcap2text.models import build_captioner
from imgcap2text.synth import PromptGrammar, render


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    g = PromptGrammar(0)
    return build_captioner('blip', train_prompts=[g() for _ in range(50)]).save_pretrained(tmp_path_factory.mktemp('model')/'model')


def folder(d: Path) -> list[Path]:
    "A nested folder: PNG, JPEG and WebP images at two depths, a text file that is not a caption, and a caption from another tool."
    g = PromptGrammar(1)
    files = [d/'a.png', d/'b.jpg', d/'sub'/'c.webp', d/'sub'/'deeper'/'d.png', d/'sub'/'e.jpeg']
    for i, f in enumerate(files):
        f.parent.mkdir(parents=True, exist_ok=True); render(g(), i, size=64).save(f)
    (d/'notes.md').write_text('not an image')
    return files


def caption(*args, cwd, env=None, check=True):
    r = subprocess.run(['imgcap2text', 'caption', *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)
    if check: assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    return r


def test_sidecars_beside_each_image_with_a_trigger_then_a_rerun_loads_nothing(tmp_path, model_dir):
    files = folder(tmp_path/'data')
    out = tmp_path/'captions.csv'
    r = caption(tmp_path/'data', '--model', model_dir, '--out', out, '--sidecar', 'txt', '--prepend', 'trigger, ', '--batch-size', '2', cwd=tmp_path)
    assert '5 captioned' in r.stdout, r.stdout
    df = pd.read_csv(out, keep_default_na=False)
    for f in files:
        text = f.with_suffix('.txt').read_text()
        assert text.endswith('\n') and text.startswith('trigger, ') and len(text) > len('trigger, \n')
        row = df[df.image == str(f)].iloc[0]
        assert text.strip() == row.text == 'trigger, ' + row.caption
        assert row.clip_tokens >= 2
    assert not (tmp_path/'data'/'notes.txt').exists() and not list((tmp_path/'data').rglob('*.tmp'))
    # a rerun writes nothing and loads no model (a model that cannot load proves it); the files keep their times
    times = {f: f.with_suffix('.txt').stat().st_mtime_ns for f in files}
    r = caption(tmp_path/'data', '--model', tmp_path/'no-such-model', '--out', out, '--sidecar', 'txt', '--prepend', 'trigger, ', cwd=tmp_path, check=False)
    assert r.returncode == 2 and 'another configuration' in r.stderr, r.stderr   # another model on the same CSV: refused, never mixed
    r = caption(tmp_path/'data', '--model', tmp_path/'no-such-model', '--out', tmp_path/'again.csv', '--sidecar', 'txt', cwd=tmp_path)
    assert '0 captioned' in r.stdout and '5 kept' in r.stdout, r.stdout
    assert times == {f: f.with_suffix('.txt').stat().st_mtime_ns for f in files}


def test_existing_captions_append_without_repeats_and_skip_by_default(tmp_path, model_dir):
    files = folder(tmp_path/'data')
    files[0].with_suffix('.txt').write_text('1girl, solo\n')            # another tool's tags
    caption(tmp_path/'data', '--model', model_dir, '--out', tmp_path/'skip.csv', '--sidecar', 'txt', cwd=tmp_path)
    assert files[0].with_suffix('.txt').read_text() == '1girl, solo\n'                           # skip: left alone
    caption(tmp_path/'data', '--model', model_dir, '--out', tmp_path/'append.csv', '--sidecar', 'txt', '--existing', 'append',
            '--append', ', trigger', cwd=tmp_path)
    first = files[0].with_suffix('.txt').read_text().strip()
    tags = [t.strip() for t in first.split(',')]
    assert tags[:2] == ['1girl', 'solo'] and tags[-1] == 'trigger' and len(tags) == len(set(t.lower() for t in tags)), first
    # appending the same again (a second pass, another CSV) adds nothing
    caption(tmp_path/'data', '--model', model_dir, '--out', tmp_path/'append2.csv', '--sidecar', 'txt', '--existing', 'append',
            '--append', ', trigger', cwd=tmp_path)
    assert files[0].with_suffix('.txt').read_text().strip() == first


def test_mirror_folder_and_caption_extension(tmp_path, model_dir):
    files = folder(tmp_path/'data')
    caption(tmp_path/'data', '--model', model_dir, '--out', tmp_path/'c.csv', '--sidecar', 'caption', '--out-dir', tmp_path/'mirror', cwd=tmp_path)
    want = {f.relative_to(tmp_path/'data').with_suffix('.caption').as_posix() for f in files}
    assert {p.relative_to(tmp_path/'mirror').as_posix() for p in (tmp_path/'mirror').rglob('*.caption')} == want
    assert not list((tmp_path/'data').rglob('*.caption'))


def test_metadata_jsonl_loads_with_datasets(tmp_path, model_dir):
    import datasets
    files = folder(tmp_path/'data')
    (tmp_path/'data'/'notes.md').unlink()
    files[1].with_suffix('.txt').write_text('kept caption\n')              # kept (skip), and still in metadata.jsonl
    caption(tmp_path/'data', '--model', model_dir, '--out', tmp_path/'c.csv', '--sidecar', 'txt', '--format', 'metadata.jsonl',
            '--prepend', 'trigger, ', cwd=tmp_path)
    meta = [json.loads(l) for l in (tmp_path/'data'/'metadata.jsonl').read_text().splitlines()]
    assert sorted(m['file_name'] for m in meta) == sorted(f.relative_to(tmp_path/'data').as_posix() for f in files)
    ds = datasets.load_dataset('imagefolder', data_dir=str(tmp_path/'data'), split='train')
    assert len(ds) == len(files) and set(ds.column_names) >= {'image', 'text'}
    texts = dict(zip([Path(m['file_name']).name for m in meta], [m['text'] for m in meta]))
    assert texts['b.jpg'] == 'kept caption' and all(t.startswith('trigger, ') for n, t in texts.items() if n != 'b.jpg')
    assert sorted(ds['text']) == sorted(texts.values())
    caption(tmp_path/'data', '--model', model_dir, '--out', tmp_path/'c.csv', '--sidecar', 'txt', '--format', 'jsonl', '--prepend', 'trigger, ', cwd=tmp_path)
    rows = {Path(r['image']).name: r for r in map(json.loads, (tmp_path/'c.jsonl').read_text().splitlines())}
    assert len(rows) == len(files) and rows['b.jpg']['text'] == 'kept caption' and rows['a.png']['text'] == texts['a.png']   # the CSV's rows and the kept image


def test_long_captions_are_flagged(tmp_path, model_dir):
    files = folder(tmp_path/'data')
    r = caption(files[0], '--model', model_dir, '--out', tmp_path/'c.csv', '--append', ', highly detailed' * 40, cwd=tmp_path)
    assert "past CLIP's 77 tokens" in r.stdout and "past SDXL's 2x77" in r.stdout, r.stdout
    assert pd.read_csv(tmp_path/'c.csv').clip_tokens.iloc[0] > 154
