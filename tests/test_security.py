"""What a client of the shared app can send, sent (issue #30): `imgcap2text app` is launched as its README shares it,
in its own process, with a sign-in, small upload limits, a prompt bank offered by name and the hub replica up as the
hub (online, every other connection refused). Every case must end with a message in the page or the API, the server
still serving, the replica asked nothing and no file read that the launcher did not offer."""
import os, resource, socket, subprocess, sys, threading, time, urllib.request, zipfile
from pathlib import Path
import pandas as pd
import pytest
import requests
from imgcap2text.models import build_captioner
from imgcap2text.synth import PromptGrammar, render
from imgcap2text.hub_replica import build_replica, serve_replica, replica_env

AUTH = ('ann', 'correct horse')
MAX_FILE_MB, MAX_FILES = 4, 3
BOMB_GIB = 1.5
MiB = 2 ** 20


def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """A project with two trained runs (untrained tiny weights) and a leaderboard that ranks ViT-GPT2 first, a CLIP,
    a prompt bank, images, a secret file no client may read, and the bad uploads."""
    d = tmp_path_factory.mktemp('security')
    g = PromptGrammar(3); prompts = [g() for _ in range(300)]
    for m in ('blip', 'vit-gpt2'): build_captioner(m, train_prompts=prompts).save_pretrained(d/'runs'/f'{m}-tiny'/'model')
    build_captioner('clip-gpt2', train_prompts=prompts).save_pretrained(d/'cg')
    (d/'results'/'leaderboard').mkdir(parents=True)
    pd.DataFrame(dict(system=['BLIP', 'ViT-GPT2'], combined=[0.70, 0.71], source=['blip-tiny:fine-tuned', 'vit-gpt2-tiny:fine-tuned'])
                ).to_csv(d/'results'/'leaderboard'/'leaderboard.csv', index=False)
    (d/'imgs').mkdir()
    for i in range(4): render(prompts[i], i, size=96).save(d/'imgs'/f'{i}.png')
    (d/'corpus.txt').write_text('\n'.join(prompts[100:]) + '\n')
    (d/'secret.txt').write_text('the launcher never offered this line\n')
    png = (d/'imgs'/'0.png').read_bytes()
    with zipfile.ZipFile(d/'names.zip', 'w') as zf:
        zf.writestr('../../escape.png', png); zf.writestr('/etc/absolute.png', png); zf.writestr('folder/ok.png', png)
    with zipfile.ZipFile(d/'bomb.zip', 'w', zipfile.ZIP_DEFLATED) as zf, zf.open('x.png', 'w') as f:   # the issue's: 1.5 GiB of zeros
        for _ in range(int(BOMB_GIB * 64)): f.write(bytes(16 * MiB))
    (d/'big.png').write_bytes(png + os.urandom((MAX_FILE_MB + 1) * MiB))
    return d


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    root = build_replica(tmp_path_factory.mktemp('replica'), models=['Salesforce/blip-image-captioning-base'], diffusiondb_parts=0)
    with serve_replica(root) as server: yield server


def start_app(d, hub, args, log_name):
    port, log = free_port(), d/f'{log_name}.log'
    env = replica_env(hub, d/'hubhome', d/f'{log_name}-guard.log') | dict(IMGCAP2TEXT_HOME=str(d), IMGCAP2TEXT_CACHE=str(d/'cache'))
    p = subprocess.Popen(['imgcap2text', 'app', '--port', str(port), *args], env=env, cwd=d, stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    return p, f'http://127.0.0.1:{port}/', log


def wait_up(p, url, log):
    for _ in range(240):
        try: urllib.request.urlopen(url, timeout=2); return
        except OSError:
            assert p.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
    pytest.fail('the app did not start: ' + log.read_text()[-3000:])


@pytest.fixture(scope='module')
def server(world, hub):
    "The app as a Colab user shares it, but signed in: the demo's runs (no --model), one bank by name, small upload limits."
    d = world
    p, url, log = start_app(d, hub, ['--bank', f'corpus={d/"corpus.txt"}', '--clip', str(d/'cg'/'clip'), '--auth', ':'.join(AUTH),
                                     '--max-file-mb', str(MAX_FILE_MB), '--max-files', str(MAX_FILES)], 'app')
    wait_up(p, url, log)
    yield url, p.pid
    p.terminate(); p.wait(30)
    assert not (d/'app-guard.log').exists(), (d/'app-guard.log').read_text()
    assert hub.requests == [], f'the app asked the hub: {hub.requests}'


@pytest.fixture(scope='module')
def client(server):
    from gradio_client import Client
    return Client(server[0], verbose=False, auth=AUTH)


def cli_default_caption(d, image) -> str:
    "`imgcap2text caption IMAGE` with its defaults, run where the app runs."
    out = d/'cli-default.csv'
    subprocess.run(['imgcap2text', 'caption', str(image), '--out', str(out)], check=True, cwd=d,
                   env=dict(os.environ, IMGCAP2TEXT_HOME=str(d), IMGCAP2TEXT_CACHE=str(d/'cache')), capture_output=True)
    caption = pd.read_csv(out, keep_default_na=False).caption.tolist()[0]
    out.unlink(); return caption


def still_serving(client, d):
    from gradio_client import handle_file
    assert isinstance(client.predict(handle_file(str(d/'imgs'/'1.png')), api_name='/recover'), str)


def page(client, files, model='vit-gpt2', systems=('captioner',), mode='best', bank='run', tagger='SmilingWolf/wd-eva02-large-tagger-v3') -> str:
    "The page's Recover (its endpoint `recover_many`): the status it shows."
    from gradio_client import handle_file
    status, *_ = client.predict([handle_file(str(f)) for f in files], model, list(systems), mode, bank, tagger, 0.35, 0.85, api_name='/recover_many')
    return status


TYPED = ['/etc/passwd', 'secret.txt', '../../../../etc/passwd', 'runs/blip-tiny', 'Salesforce/blip-image-captioning-base',
         'nlpconnect/vit-gpt2-image-captioning', 'corpus.txt']


def test_defaults_agree_with_the_command_line(world, client):
    "The API with its defaults answers as `caption` with its defaults: both the leaderboard's best run (ViT-GPT2, not the registry's first)."
    from gradio_client import handle_file
    d = world
    got = client.predict(handle_file(str(d/'imgs'/'0.png')), api_name='/recover')
    assert got == cli_default_caption(d, d/'imgs'/'0.png')
    assert got == client.predict(handle_file(str(d/'imgs'/'0.png')), 'vit-gpt2', api_name='/recover')
    assert got != client.predict(handle_file(str(d/'imgs'/'0.png')), 'blip', api_name='/recover')


@pytest.mark.parametrize('typed', TYPED)
def test_text_fields_take_only_what_is_offered(world, server, client, hub, typed):
    "Every text field of the API and the page: a path, a `..` path, a run folder or a hub id is refused with a message."
    from gradio_client import handle_file
    d, image = world, handle_file(str(world/'imgs'/'0.png'))
    calls = {'api model': lambda: client.predict(image, typed, api_name='/recover'),
             'api bank': lambda: client.predict(image, 'vit-gpt2', 'retrieval', 'best', typed, api_name='/recover'),
             'api tagger': lambda: client.predict(image, 'vit-gpt2', 'tagger', 'best', 'run', typed, api_name='/recover'),
             'page model': lambda: page(client, [d/'imgs'/'0.png'], model=typed),
             'page bank': lambda: page(client, [d/'imgs'/'0.png'], systems=['retrieval'], bank=typed),
             'page tagger': lambda: page(client, [d/'imgs'/'0.png'], systems=['tagger'], tagger=typed)}
    for field, call in calls.items():
        with pytest.raises(Exception, match='not in the list of choices') as e: call()
        assert 'launcher never offered' not in str(e.value), field
    assert hub.requests == []   # the offered tagger is a hub id: never asked for either, as no tagging was ever answered
    still_serving(client, d)


def test_offered_bank_by_name(world, client):
    from gradio_client import handle_file
    d = world
    got = client.predict(handle_file(str(d/'imgs'/'0.png')), 'vit-gpt2', 'retrieval', 'best', 'corpus', api_name='/recover')
    assert got in (d/'corpus.txt').read_text().splitlines()


def test_file_field_takes_no_server_path(world, server):
    "A file given by a server path rather than uploaded (the raw API; the client library always uploads) is refused by Gradio."
    d, url = world, server[0]
    s = requests.Session()
    assert s.post(url + 'login', data=dict(username=AUTH[0], password=AUTH[1])).ok
    for path in ('/etc/passwd', str(d/'secret.txt'), str(d/'imgs'/'0.png')):
        r = s.post(url + 'gradio_api/call/recover', json={'data': [{'path': path, 'meta': {'_type': 'gradio.FileData'}}, 'vit-gpt2', 'captioner', 'best', 'run',
                                                                    'SmilingWolf/wd-eva02-large-tagger-v3', 0.35, 0.85]})
        events = s.get(url + f"gradio_api/call/recover/{r.json()['event_id']}", timeout=60).text
        assert 'event: error' in events and 'not uploaded by a user' in events, events
        assert 'launcher never offered' not in events and 'root:' not in events


def test_zip_member_names(world, client):
    "`..` and absolute member names are refused with their reason; the zip's other images are answered."
    status = page(client, [world/'names.zip'])
    assert '1 image answered' in status, status
    assert "a member name with &#x27;..&#x27;" in status and 'an absolute member name' in status, status


def vm(pid, key) -> int:
    "A /proc/<pid>/status figure in bytes (VmRSS now, VmHWM its peak)."
    line = next(l for l in Path(f'/proc/{pid}/status').read_text().splitlines() if l.startswith(key + ':'))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path('/proc/self/clear_refs').exists(), reason='peak memory is read from Linux /proc')
def test_zip_bomb_memory_is_bounded(world, server, client):
    "The issue's bomb (a 1.5 MB zip of a 1.5 GiB member) is refused from the zip's directory: the server's peak memory hardly moves."
    d, pid = world, server[1]
    Path(f'/proc/{pid}/clear_refs').write_text('5')   # restart the peak (VmHWM) from now
    before = vm(pid, 'VmRSS')
    status = page(client, [d/'bomb.zip'])
    rise = vm(pid, 'VmHWM') - before
    print(f'\nzip bomb ({(d/"bomb.zip").stat().st_size / MiB:.1f} MiB zip, {BOMB_GIB} GiB member): the server\'s peak memory rose {rise / MiB:.1f} MiB')
    assert 'bomb.zip' in status and 'would decompress to 1,536 MiB: at most' in status, status
    assert rise < 100 * MiB, f'{rise / MiB:.0f} MiB'
    still_serving(client, d)


def test_upload_limits(world, server, client):
    "A file over --max-file-mb is refused by the server before it is stored (and by the client library); more than --max-files files, by the page."
    d, url = world, server[0]
    s = requests.Session(); s.post(url + 'login', data=dict(username=AUTH[0], password=AUTH[1]))
    r = s.post(url + 'gradio_api/upload', files={'files': ('big.png', open(d/'big.png', 'rb'))})
    assert r.status_code == 413 and 'maximum allowed size' in r.text, (r.status_code, r.text)
    with pytest.raises(ValueError, match='exceeds the maximum file size'): page(client, [d/'big.png'])
    status = page(client, [d/'imgs'/f'{i}.png' for i in range(4)])
    assert f'4 files in one request: at most {MAX_FILES}' in status, status
    still_serving(client, d)


def test_a_second_client_is_answered_while_bad_uploads_are_processed(world, client, server):
    from gradio_client import Client, handle_file
    d = world
    bad_statuses, stop = [], threading.Event()
    def attacker():
        attack = Client(server[0], verbose=False, auth=AUTH)
        while not stop.is_set():
            for files in ([d/'bomb.zip'], [d/'names.zip', d/'bomb.zip'], [d/'imgs'/f'{i}.png' for i in range(4)]):
                bad_statuses.append(page(attack, files))
    t = threading.Thread(target=attacker); t.start()
    try:
        want = cli_default_caption(d, d/'imgs'/'2.png')
        for _ in range(3): assert client.predict(handle_file(str(d/'imgs'/'2.png')), api_name='/recover') == want
    finally:
        stop.set(); t.join(120)
    assert bad_statuses and all('at most' in s for s in bad_statuses), bad_statuses


def test_sign_in_is_required(server):
    from gradio_client import Client
    for auth in (None, (AUTH[0], 'wrong')):
        with pytest.raises(Exception, match='(?i)credentials|login|incorrect'): Client(server[0], verbose=False, auth=auth)


def test_share_without_sign_in_warns(world, hub):
    "`--share` without `--auth` says what the link exposes (the link itself needs the internet, refused here)."
    p, url, log = start_app(world, hub, ['--share', '--model', 'blip', '--bank', f'corpus={world/"corpus.txt"}'], 'share')
    try:
        for _ in range(240):
            if 'warning: --share without --auth' in log.read_text() or p.poll() is not None: break
            time.sleep(0.5)
        text = log.read_text()
        assert 'anyone who has the link can use this app' in text and 'captioners it offers (blip)' in text and 'banks (corpus)' in text, text[-3000:]
    finally:
        p.terminate(); p.wait(30)


def test_caption_bounds_zips_too(world):
    "`imgcap2text caption` reads zips from elsewhere within the same checks: the bomb's member is skipped from the directory, its peak memory stays a captioner's."
    d = world
    r = subprocess.run(['imgcap2text', 'caption', str(d/'bomb.zip'), str(d/'names.zip'), '--model', 'blip', '--out', str(d/'zips.csv')],
                       cwd=d, env=dict(os.environ, IMGCAP2TEXT_HOME=str(d), IMGCAP2TEXT_CACHE=str(d/'cache')), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '1 captioned' in r.stdout and 'x.png: would decompress to 1,536 MiB: at most 256 MiB a member' in r.stdout and "a member name with '..'" in r.stdout, r.stdout
    assert pd.read_csv(d/'zips.csv').image.str.endswith('names.zip::folder/ok.png').tolist() == [True]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024   # the largest child so far: this caption, or the app's
    assert peak < BOMB_GIB * 2 ** 30, f'{peak / MiB:.0f} MiB'
