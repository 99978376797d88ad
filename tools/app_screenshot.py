"""The README's picture of the app: `imgcap2text app` on the demo's trained runs (after `make demo`), three of the demo's
test images answered by the default captioner, the interrogator (the run's phrases) and the demo's tagger, shot in
headless Chromium (Debian's chromium + chromium-driver).

    .venv/bin/python tools/app_screenshot.py      # `make screenshot`: writes benchmarks/app_screenshot.png
"""
import os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT/'benchmarks'/'app_screenshot.png'


def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def main():
    from imgcap2text.models import trained_runs
    from imgcap2text.data import load_run_splits
    if 'blip-tiny' not in trained_runs(): sys.exit('no demo run here: run `make demo` first')
    test = load_run_splits(ROOT/'runs'/'blip-tiny')['test']
    d = Path(tempfile.mkdtemp())
    shots = []
    for i in (0, 7, 21):
        im, name = test[i]['image'], test[i]['image_name']
        im.resize((192, 192)).save(d/name); shots.append(d/name)
    bank = ROOT.parent/'shared'/'data'/'diffusiondb_prompts.csv'
    port = free_port()
    args = ['imgcap2text', 'app', '--port', str(port)] + (['--bank', f'diffusiondb={bank}'] if bank.exists() else [])
    app = subprocess.Popen(args, cwd=ROOT, stdout=open(d/'app.log', 'w'), stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE='1'))
    url = f'http://127.0.0.1:{port}/'
    try:
        for _ in range(240):
            try: urllib.request.urlopen(url, timeout=2); break
            except OSError:
                if app.poll() is not None: sys.exit((d/'app.log').read_text()[-3000:])
                time.sleep(0.5)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
        opts = webdriver.ChromeOptions(); opts.binary_location = shutil.which('chromium')
        for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,1600',
                  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'):
            opts.add_argument(a)
        b = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=opts)
        try:
            b.get(url)
            WebDriverWait(b, 60).until(lambda b: b.find_elements('css selector', '#i2t-go'))
            b.find_element('css selector', '#i2t-files input[type=file]').send_keys('\n'.join(map(str, shots)))
            WebDriverWait(b, 60).until(lambda b: shots[-1].stem in b.find_element('css selector', '#i2t-files').text)
            for system in ('interrogator', 'tagger'):
                b.find_element('xpath', f"//*[@id='i2t-systems']//label[contains(., '{system}')]").click()
            if bank.exists():
                from selenium.webdriver.common.keys import Keys
                field = b.find_element('css selector', '#i2t-bank input'); field.click()
                field.send_keys(Keys.CONTROL, 'a'); field.send_keys('diffusiondb', Keys.ENTER)
            b.find_element('css selector', '#i2t-go').click()
            WebDriverWait(b, 600).until(lambda b: 'answered' in b.find_element('css selector', '#i2t-status').text)
            time.sleep(1)
            OUT.parent.mkdir(exist_ok=True); b.save_screenshot(str(OUT))
            print(f'{OUT}: {b.find_element("css selector", "#i2t-status").text}')
        finally: b.quit()
    finally:
        app.terminate(); app.wait(30)


if __name__ == '__main__':
    main()
