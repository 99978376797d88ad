"""The web app (`imgcap2text app`) as a user meets it: served by the command line on a free port, behind the loopback
guard, driven in headless Chromium (Debian's chromium + chromium-driver, as test_docs.py) and called with
`gradio_client`. Tiny untrained models: the code paths, and answers equal to the command line's, not their quality."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request, zipfile
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT
from imgcap2text.models import build_captioner
from imgcap2text.synth import PromptGrammar, render
from imgcap2text.hub_replica import guard_dir



def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp('app')
    g = PromptGrammar(3); prompts = [g() for _ in range(300)]
    build_captioner('blip', train_prompts=prompts).save_pretrained(d/'blip')
    build_captioner('clip-gpt2', train_prompts=prompts).save_pretrained(d/'cg')
    (d/'imgs').mkdir()
    for i in range(2): render(prompts[i], i, size=96).save(d/'imgs'/f'{i}.png')
    (d/'broken.png').write_bytes(b'not a png')
    (d/'corpus.txt').write_text('\n'.join(prompts[100:]) + '\n')
    (d/'tables').mkdir()
    for t, labels in dict(artists=['by an artist'], flavors=['highly detailed', 'pixel art', 'soft light'], mediums=['a photo'],
                          movements=['minimalism'], negative=['blurry']).items():
        (d/'tables'/f'{t}.txt').write_text('\n'.join(labels) + '\n')
    return d, prompts


@pytest.fixture(scope='module')
def server(world):
    "`imgcap2text app` in its own process, guarded: any connection it tries beyond 127.0.0.1 is refused and logged."
    d, _ = world
    port, log = free_port(), d/'guard.log'
    env = dict(os.environ, IMGCAP2TEXT_CACHE=str(d/'cache'), IMGCAP2TEXT_HOME=str(d), HF_HUB_OFFLINE='1', IMGCAP2TEXT_GUARD_LOG=str(log),
               PYTHONPATH=os.pathsep.join([str(guard_dir(d/'guard')), os.environ.get('PYTHONPATH', '')]))
    env.pop('GRADIO_ANALYTICS_ENABLED', None)   # the app turns analytics off itself
    p = subprocess.Popen(['imgcap2text', 'app', '--port', str(port), '--model', str(d/'blip'), '--bank', f'corpus={d/"corpus.txt"}',
                          '--clip', str(d/'cg'/'clip'), '--tables', str(d/'tables')], env=env, cwd=d, stdout=open(d/'app.log', 'w'), stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    for _ in range(240):
        try: urllib.request.urlopen(url, timeout=2); break
        except OSError:
            assert p.poll() is None, (d/'app.log').read_text()[-3000:]
            time.sleep(0.5)
    else: pytest.fail('the app did not start: ' + (d/'app.log').read_text()[-3000:])
    yield url, log
    p.terminate(); p.wait(30)
    assert not log.exists() or not log.read_text().strip(), f'the app tried to reach beyond this machine: {log.read_text()}'


def cli_captions(d, system, *extra) -> dict:
    "The command line's answers for the two images, by file name."
    from imgcap2text.cli import main
    out = d/f'cli-{system}.csv'
    assert main(['caption', str(d/'imgs'), '--model', str(d/'blip'), '--system', system, '--clip', str(d/'cg'/'clip'), *extra, '--out', str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    return dict(zip(df.image.map(lambda p: Path(p).name), df.caption))


@pytest.fixture(scope='module')
def browser():
    webdriver = pytest.importorskip('selenium.webdriver')
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which('chromium') or shutil.which('chromium-browser'), shutil.which('chromedriver')
    if not (chromium and driver): pytest.fail('headless Chromium is missing: sudo apt-get install chromium chromium-driver (make docs does it as root)')
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    # any name but the loopback's fails to resolve: a request beyond this machine would show as an error and in the log
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,1500',
              '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
    b = webdriver.Chrome(service=Service(driver), options=opts)
    b.set_page_load_timeout(60)
    yield b
    b.quit()


def wait_for(b, css, text, timeout=180):
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(b, timeout).until(lambda b: any(text in e.text for e in b.find_elements('css selector', css)))


def test_page_recovers_two_systems_reports_the_corrupt_file_and_downloads_the_csv(world, server, browser):
    from selenium.webdriver.common.keys import Keys
    d, prompts = world
    url, _ = server
    b = browser
    b.get(url)
    wait_for(b, '#i2t-go', 'Recover prompts', 60)
    b.find_element('css selector', '#i2t-files input[type=file]').send_keys('\n'.join(str(p) for p in (d/'imgs'/'0.png', d/'imgs'/'1.png', d/'broken.png')))
    wait_for(b, '#i2t-files', 'broken', 60)   # its name, shown as stem and extension
    b.find_element('xpath', "//*[@id='i2t-systems']//label[contains(., 'retrieval')]").click()
    bank = b.find_element('css selector', '#i2t-bank input')   # a menu of the banks the launcher offered, by name
    bank.click(); bank.send_keys(Keys.CONTROL, 'a'); bank.send_keys('corpus', Keys.ENTER)
    b.find_element('css selector', '#i2t-go').click()
    wait_for(b, '#i2t-status', 'answered')
    # every chosen system's answer, per image, equals the command line's
    cards = {c.get_attribute('data-image'): {r.get_attribute('data-system'): r.find_element('css selector', '.i2t-prompt').text
                                             for r in c.find_elements('css selector', 'tr.i2t-answer')}
             for c in b.find_elements('css selector', '.i2t-card')}
    want = dict(captioner=cli_captions(d, 'captioner'), retrieval=cli_captions(d, 'retrieval', '--bank', str(d/'corpus.txt')))
    assert set(cards) == {'0.png', '1.png'}, cards
    for name, answers in cards.items():
        assert set(answers) == {'captioner', 'retrieval'}
        for s, text in answers.items(): assert text == want[s][name], (name, s, text, want[s][name])
    assert all(c.text.startswith('CLIP ') for c in b.find_elements('css selector', '.i2t-clip'))
    status = b.find_element('css selector', '#i2t-status').text
    assert '2 images answered' in status and 'broken.png' in status and 'cannot identify image file' in status, status
    # the copy button says it copied
    b.find_element('css selector', 'button.i2t-copy').click()
    wait_for(b, 'button.i2t-copy', 'copied', 10)
    # the download: the CSV the command line writes, one per system
    links = {Path(a.get_attribute('href').split('?')[0]).name: a.get_attribute('href') for a in b.find_elements('css selector', '#i2t-csv a[href]')}
    assert {'prompts-captioner.csv', 'prompts-retrieval.csv'} <= set(links), links
    for s in ('captioner', 'retrieval'):
        got = pd.read_csv(urllib.request.urlopen(links[f'prompts-{s}.csv'], timeout=30), keep_default_na=False)
        assert list(got.columns) == ['image', 'caption', 'n_tokens', 'mean_entropy', 'clip_tokens', 'text', 'instruction']
        assert dict(zip(got.image, got.caption)) == want[s]
    assert b.find_elements('css selector', '#i2t-regen img'), 'the regenerated view shows images'
    b.save_screenshot(str(d/'page.png')); assert (d/'page.png').stat().st_size > 10_000   # it renders (the README's picture: make screenshot)
    # the captioner menu takes only what the launcher offered: a typed path does not stay, and the offered run answers
    model = b.find_element('css selector', '#i2t-model input')
    model.click(); model.send_keys(Keys.CONTROL, 'a'); model.send_keys('/etc/passwd', Keys.ENTER); model.send_keys(Keys.TAB)
    time.sleep(1)
    assert model.get_attribute('value') == 'blip', model.get_attribute('value')
    b.find_element('xpath', "//*[@id='i2t-systems']//label[contains(., 'retrieval')]").click()   # the captioner alone
    b.find_element('css selector', '#i2t-go').click()
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(b, 180).until(lambda b: not b.find_elements('css selector', "tr.i2t-answer[data-system='retrieval']"))
    assert [r.text for r in b.find_elements('css selector', "tr.i2t-answer[data-system='captioner'] .i2t-prompt")] == [want['captioner'][n] for n in ('0.png', '1.png')]
    # nothing beyond this machine: no request, and no error in the console
    errors = [e for e in b.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, errors
    urls = [json.loads(e['message'])['message'].get('params', {}).get('request', {}).get('url', '') for e in b.get_log('performance')]
    outside = [u for u in urls if u and not u.startswith(('http://127.0.0.1', 'data:', 'blob:'))]
    assert not outside and any(u.startswith(url) for u in urls), outside


def test_api_answers_as_the_command_line(world, server):
    from gradio_client import Client, handle_file
    d, _ = world
    url, _ = server
    client = Client(url, verbose=False)
    want = cli_captions(d, 'captioner')
    assert client.predict(handle_file(str(d/'imgs'/'0.png')), api_name='/recover') == want['0.png']   # the defaults: the run, the captioner
    got = client.predict(handle_file(str(d/'imgs'/'1.png')), 'blip', 'retrieval', 'best', 'corpus', api_name='/recover')
    assert got == cli_captions(d, 'retrieval', '--bank', str(d/'corpus.txt'))['1.png']
    # bad input: a message, not a hang
    for args, message in [((handle_file(str(d/'broken.png')),), 'cannot identify image file'),
                          ((handle_file(str(d/'imgs'/'0.png')), 'Salesforce/blip-image-captioning-large'), 'not in the list of choices'),
                          ((handle_file(str(d/'imgs'/'0.png')), 'blip', 'oracle'), 'not in the list of choices')]:
        with pytest.raises(Exception, match=message): client.predict(*args, api_name='/recover')
    # a 10000 x 10000 image is shrunk as it is decoded and answered
    from PIL import Image
    Image.new('RGB', (10_000, 10_000), (200, 30, 30)).save(d/'huge.png')
    assert isinstance(client.predict(handle_file(str(d/'huge.png')), api_name='/recover'), str)
