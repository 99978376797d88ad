"The caption command on a corpus of bad inputs, as a user runs it: each is captioned or skipped with a reason."
import io, json, subprocess, zipfile
import numpy as np, pandas as pd, pytest
from PIL import Image
from imgcap2text.models import build_captioner
from imgcap2text.synth import render


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('model')
    return build_captioner('blip', train_prompts=['a red circle on the left, on a white background, at night'] * 20).save_pretrained(d/'model')


def bad_corpus(d):
    "Every kind of awkward input the issue lists, plus two good images. Returns {file: expected outcome}."
    good = render('a red circle on the left, on a white background', 0, size=64)
    d.mkdir(parents=True, exist_ok=True)
    (d/'zero.png').write_bytes(b'')
    buf = io.BytesIO(); good.save(buf, 'PNG'); (d/'truncated.png').write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    (d/'text.png').write_text('this is not an image')
    Image.new('RGB', (1, 1), 'red').save(d/'one_pixel.png')
    huge = Image.new('L', (10000, 10000)); huge.paste(255, (0, 0, 5000, 5000)); huge.save(d/'huge.png', compress_level=1)   # an upscale: captioned
    Image.new('L', (14000, 14000)).save(d/'bomb.png', compress_level=1)     # past PIL's decompression-bomb limit: skipped
    good.convert('CMYK').save(d/'cmyk.jpg')
    Image.fromarray((np.asarray(good.convert('L'), np.uint16) * 257)).save(d/'sixteen_bit.png')
    frames = [good, render('a blue star', 1, size=64)]
    frames[0].save(d/'animated.gif', save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(d/'animated.webp', save_all=True, append_images=frames[1:], duration=100)
    ex = Image.Exif(); ex[0x0112] = 6                       # EXIF orientation: rotate 90°
    good.save(d/'rotated.jpg', exif=ex.tobytes())
    good.convert('RGBA').save(d/'rgba.png')
    good.convert('P', palette=Image.ADAPTIVE).save(d/'palette.png')
    good.save(d/'good.png'); good.save(d/'good.jpg')
    skip = {'zero.png': 'empty file', 'truncated.png': 'unreadable', 'text.png': 'unreadable', 'one_pixel.png': 'too small',
            'bomb.png': "too large (over PIL's decompression-bomb limit"}
    return {f.name: skip.get(f.name, 'captioned') for f in d.iterdir()}


def test_bad_inputs_through_the_command(tmp_path, model_dir):
    expected = bad_corpus(tmp_path/'in')
    out = tmp_path/'captions.csv'
    r = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'in'), '--model', str(model_dir), '--out', str(out),
                        '--batch-size', '4', '--max-tokens', '8'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    caps = pd.read_csv(out)
    captioned = {p.split('/')[-1] for p in caps.image}
    assert captioned == {f for f, e in expected.items() if e == 'captioned'}, (captioned, r.stdout)
    assert caps.caption.str.len().min() > 0 and (caps.n_tokens <= 8).all()
    skipped = pd.read_csv(str(out) + '.skipped.csv')
    reasons = {p.split('/')[-1]: why for p, why in zip(skipped.input, skipped.reason)}
    for f, e in expected.items():
        if e != 'captioned': assert e in reasons[f], (f, reasons.get(f))
    assert f"skipped {tmp_path/'in'/'zero.png'}: empty file" in r.stdout
    # rerun on the same output: nothing captioned twice, the CSV unchanged
    r2 = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'in'), '--model', str(model_dir), '--out', str(out)], capture_output=True, text=True)
    assert r2.returncode == 0 and r2.stdout.startswith('0 captioned')
    assert pd.read_csv(out).equals(caps)


def test_nothing_readable_is_an_error(tmp_path, model_dir):
    (tmp_path/'zero.png').write_bytes(b'')
    r = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'zero.png'), str(tmp_path/'missing'), '--model', str(model_dir),
                        '--out', str(tmp_path/'c.csv')], capture_output=True, text=True)
    assert r.returncode == 1 and 'no such file or folder' in r.stdout and not (tmp_path/'c.csv').exists()


def test_part_zip_and_glob(tmp_path, model_dir):
    good = render('a green square', 2)
    with zipfile.ZipFile(tmp_path/'part-000001.zip', 'w') as z:
        for i in range(3):
            b = io.BytesIO(); good.save(b, 'PNG'); z.writestr(f'{i}.png', b.getvalue())
        z.writestr('part-000001.json', json.dumps({}))
    good.save(tmp_path/'a.webp')
    r = subprocess.run(['imgcap2text', 'caption', str(tmp_path/'part-*.zip'), str(tmp_path/'*.webp'), '--model', str(model_dir),
                        '--out', str(tmp_path/'c.csv')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1500:]
    assert len(pd.read_csv(tmp_path/'c.csv')) == 4
