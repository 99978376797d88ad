"""The docs site (`make docs`) in a real browser: headless Chromium opens the home page and three module pages, every
figure loads, and no page shows an error (a failed cell, a broken script, a missing file).

Needs Debian's `chromium` and `chromium-driver` (`make docs` installs them when run as root, else names them) and the
site built (`make test` builds it first). Without them the test fails and says what to do: a site nobody checked is
not a site."""
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT/'build'/'docs'/'html'
PAGES = ['index.html', 'nbs/02_synth.html', 'nbs/04_train.html', 'nbs/09_plots.html', 'api/train.html']


@pytest.fixture(scope='module')
def browser():
    webdriver = pytest.importorskip('selenium.webdriver', reason='selenium is installed by make docs')
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which('chromium') or shutil.which('chromium-browser'), shutil.which('chromedriver')
    if not (chromium and driver):
        pytest.fail('headless Chromium is missing: sudo apt-get install chromium chromium-driver (make docs does it as root)')
    if not (HTML/'index.html').exists():
        subprocess.run([sys.executable, str(ROOT/'tools'/'docs.py')], check=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--allow-file-access-from-files'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    b = webdriver.Chrome(service=Service(driver), options=opts)
    b.set_page_load_timeout(60)
    yield b
    b.quit()


@pytest.mark.parametrize('page', PAGES)
def test_page_loads_with_its_figures(browser, page):
    path = HTML/page
    assert path.exists(), f'{page} is not in the site'
    browser.get(path.as_uri())
    browser.execute_async_script("""const done = arguments[arguments.length - 1];
        Promise.all([...document.images].map(i => i.complete ? 1 : new Promise(r => { i.onload = i.onerror = r; }))).then(done);""")
    images = browser.execute_script("return [...document.images].map(i => [i.currentSrc || i.src, i.naturalWidth])")
    images = [(src, w) for src, w in images if not src.startswith('http')]   # the Colab badge: offline here, not ours
    broken = [src for src, w in images if w == 0]
    assert not broken, f'{page}: images that did not load: {broken}'
    if page.startswith('nbs/'):   # a module page shows its outputs: at least one figure, and its API
        assert any(w > 0 for _, w in images), f'{page}: no figure (run make notebooks, commit their outputs)'
    errors = [e for e in browser.get_log('browser') if e['level'] == 'SEVERE' and 'colab' not in e['message']]
    assert not errors, f'{page}: browser errors: {errors}'
    text = browser.find_element('tag name', 'body').text
    assert 'Traceback (most recent call last)' not in text and 'Page not found' not in text, page
    assert browser.title and 'imgcap2text' in browser.title, browser.title
    if page.startswith('api/'): assert 'train_run' in text and 'pretrain_vision' in text, 'the API page lists the module'
