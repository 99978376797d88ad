"""`make docs`: the docs site, offline, from the notebooks as committed (no re-execution).

Pages, in the order of the course: the README as the home page, the guide (GUIDE.md, the README's details), every module notebook (00_core ... 11_cli), the
driver notebooks (the executed copies `make demo` left in runs/ when there are some, so a reader sees the actual run;
otherwise the templates), the tables `make demo` / `make bench` keep in benchmarks/, and an API page per module
(autodoc). Sphinx builds them into build/docs/html; then every internal link and image of every page is checked, and
the build fails on a broken one, a missing page, or a Sphinx warning about references or toctrees.

    python tools/docs.py [--out build/docs]
"""
import re, sys, json, shutil, argparse, subprocess
from pathlib import Path
from html.parser import HTMLParser
from urllib.parse import urlsplit, unquote

from run_notebooks import ROOT, module_notebooks   # tools/ is on the path when this runs as a script
DRIVERS = ('data', 'train', 'evaluate', 'analyse', 'report')
TABLE_TITLES = dict(demo_results='Results of make demo', learning_curve='Learning curve of BLIP', results='Speed and memory')
# a Sphinx warning of one of these kinds fails the build (docstring formatting warnings do not)
FATAL = re.compile(r'undefined label|unknown document|reference target not found|nonexisting document|not readable|'
                   r'image file not|not included in any toctree|Unknown target|duplicate label|have a title', re.I)


def modules() -> list[str]:
    "The package's modules, from the notebooks' `#| default_exp` (in notebook order)."
    out = []
    for nb in module_notebooks():
        m = re.search(r'#\|\s*default_exp\s+(\S+)', nb.read_text())
        if m: out.append(m.group(1).replace('\\n', '').strip('"'))
    return out


def demo_runs() -> list[Path]:
    "The executed driver notebooks of `make demo`, in the order it runs them."
    runs = ROOT/'runs'
    order = {d: i for i, d in enumerate(DRIVERS)}
    found = [p for p in runs.glob('*.ipynb') if p.stem.split('-')[0] in order] if runs.exists() else []
    return sorted(found, key=lambda p: (order[p.stem.split('-')[0]], p.stem))


def as_page(nb: Path, suffix: str | None = None) -> str:
    "A notebook as nbdev's docs show it: `#| hide` cells (Colab install, test imports) left out, `#|` directives dropped; `suffix` is added to its title (which run it is)."
    d = json.loads(nb.read_text())
    cells = []
    if suffix:
        for c in d['cells']:
            if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith('# '):
                lines = ''.join(c['source']).split('\n'); lines[0] += f': {suffix}'; c['source'] = '\n'.join(lines); break
    for c in d['cells']:
        text = ''.join(c['source'])
        if c['cell_type'] == 'code':
            if re.search(r'^#\|\s*hide\s*$', text, re.M): continue
            lines = [l for l in text.split('\n') if not l.startswith('#|')]
            if not any(l.strip() for l in lines) and not c.get('outputs'): continue
            c['source'] = '\n'.join(lines).strip('\n')
        cells.append(c)
    d['cells'] = cells
    return json.dumps(d, indent=1, ensure_ascii=False)


def toctree(caption: str, entries: list[str]) -> str:
    return f'```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n\n' + '\n'.join(entries) + '\n```\n'


def assemble(src: Path) -> Path:
    "Write the site's sources into `src`: home page, notebooks, runs, benchmarks, API pages."
    shutil.rmtree(src, ignore_errors=True); (src/'nbs').mkdir(parents=True)
    course = module_notebooks()
    for nb in course: (src/'nbs'/nb.name).write_text(as_page(nb))
    runs = demo_runs()
    if runs:
        (src/'runs').mkdir()
        for nb in runs: (src/'runs'/nb.name).write_text(as_page(nb, suffix=nb.stem))
        drivers = [f'runs/{nb.stem}' for nb in runs]
    else:
        for d in DRIVERS: shutil.copy(ROOT/'nbs'/f'{d}.ipynb', src/'nbs'/f'{d}.ipynb')
        drivers = [f'nbs/{d}' for d in DRIVERS]
    tables = [p for p in sorted((ROOT/'benchmarks').glob('*.md'))]
    if tables:
        (src/'benchmarks').mkdir()
        for p in tables:   # a page needs a title to be linked from the home page
            text = p.read_text()
            title = TABLE_TITLES.get(p.stem, p.stem.replace('_', ' ').capitalize())
            (src/'benchmarks'/p.name).write_text(text if text.lstrip().startswith('# ') else f'# {title}\n\n{text}')
    for p in sorted((ROOT/'benchmarks').glob('*.png')):   # pictures the README shows (the app's screenshot)
        (src/'benchmarks').mkdir(exist_ok=True); shutil.copy(p, src/'benchmarks'/p.name)
    (src/'api').mkdir()
    mods = modules()
    for m in mods:
        (src/'api'/f'{m}.md').write_text(f'# `imgcap2text.{m}`\n\n```{{eval-rst}}\n.. automodule:: imgcap2text.{m}\n   :members:\n```\n')
    home = (ROOT/'README.md').read_text()
    shutil.copy(ROOT/'GUIDE.md', src/'GUIDE.md')      # the README's details, linked from it
    home += '\n' + toctree('Guide', ['GUIDE'])
    home += '\n' + toctree('The course', [f'nbs/{nb.stem}' for nb in course])
    home += '\n' + toctree("The demo's runs" if runs else 'Driver notebooks (run `make demo` to see them executed)', drivers)
    if tables: home += '\n' + toctree('Measured', [f'benchmarks/{p.stem}' for p in tables])
    home += '\n' + toctree('API', [f'api/{m}' for m in mods])
    (src/'index.md').write_text(home)
    return src


class _Links(HTMLParser):
    def __init__(self): super().__init__(); self.links = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ('href', 'src'):
            if a.get(key) and tag in ('a', 'img', 'link', 'script'): self.links.append((tag, a[key]))


def broken_links(html: Path) -> list[str]:
    "Every internal link, image, stylesheet and script of every page that points to a missing file or anchor."
    problems, texts = [], {page: page.read_text(errors='replace') for page in html.rglob('*.html')}
    ids = {page: set(re.findall(r'\bid="([^"]+)"', text)) for page, text in texts.items()}
    for page, text in texts.items():
        if '_static' in page.parts: continue          # the theme's templates, not pages
        if 'class="problematic"' in text: problems.append(f'{page.relative_to(html)}: markup Sphinx could not resolve')
        p = _Links(); p.feed(text)
        for tag, url in p.links:
            u = urlsplit(url)
            if u.scheme or url.startswith('//') or url.startswith('mailto:'): continue
            target = page if not u.path else (page.parent/unquote(u.path)).resolve()
            if target.is_dir(): target = target/'index.html'
            if not target.exists(): problems.append(f'{page.relative_to(html)}: <{tag}> {url} -> missing {target.name}')
            elif u.fragment and target.suffix == '.html' and unquote(u.fragment) not in ids.get(target, set()):
                problems.append(f'{page.relative_to(html)}: <{tag}> {url} -> no #{u.fragment}')
    return problems


def build(out: Path) -> Path:
    src, html = assemble(out/'src'), out/'html'
    shutil.rmtree(html, ignore_errors=True)
    r = subprocess.run([sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-c', str(ROOT/'docs'), str(src), str(html)],
                       capture_output=True, text=True)
    warnings = [l for l in r.stderr.splitlines() if 'WARNING' in l or 'ERROR' in l]
    fatal = [l for l in warnings if FATAL.search(l) or 'ERROR' in l]
    if r.returncode or fatal: sys.exit('docs build failed:\n' + '\n'.join(fatal or r.stderr.splitlines()[-20:]))
    problems = broken_links(html)
    if problems: sys.exit(f'{len(problems)} broken links:\n' + '\n'.join(problems[:50]))
    print(f'{len(list(html.rglob("*.html")))} pages in {html.relative_to(ROOT) if html.is_relative_to(ROOT) else html}, '
          f'no broken internal link ({len(warnings)} other warnings)')
    return html


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=str(ROOT/'build'/'docs'))
    build(Path(ap.parse_args().out).resolve())
