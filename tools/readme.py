"""Write README.md from nbs/index.ipynb and GUIDE.md from nbs/guide.ipynb (nbdev_readme needs Quarto, which is not
installable here): the README is the first screen, the guide the details (both pages of the docs site).
Markdown cells are copied (with `<!-- include: PATH -->` replaced by the file); code cells become fenced Python; `#|`
directives are dropped."""
import json, re, sys
from pathlib import Path
root = Path(__file__).resolve().parents[1]


def markdown(nb: dict) -> str:
    out = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            # `<!-- include: PATH -->` is replaced by that file (generated tables such as `make bench`'s)
            # (a file not made yet is named, with the command that makes it)
            out.append(re.sub(r'<!-- include: (\S+) -->', lambda m: (root/m.group(1)).read_text().strip() if (root/m.group(1)).exists()
                              else f'*`{m.group(1)}` is not there yet: `make readme` includes it once it is made.*', src))
        else:
            lines = [l for l in src.splitlines() if not l.startswith('#|')]
            if lines: out.append('```python\n' + '\n'.join(lines) + '\n```')
    return '\n\n'.join(out) + '\n'


for source, target in (('index', 'README.md'), ('guide', 'GUIDE.md')):
    text, page = markdown(json.loads((root/'nbs'/f'{source}.ipynb').read_text())), root/target
    if '--check' in sys.argv:
        if not page.exists() or page.read_text() != text: sys.exit(f'{target} is out of date with nbs/{source}.ipynb: run `make readme`')
    else: page.write_text(text)
