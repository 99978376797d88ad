"""Write README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which is not installable here).
Markdown cells are copied (with `<!-- include: PATH -->` replaced by the file); code cells become fenced Python; `#|`
directives are dropped."""
import json, re, sys
from pathlib import Path
root = Path(__file__).resolve().parents[1]
nb = json.loads((root/'nbs'/'index.ipynb').read_text())
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
text = '\n\n'.join(out) + '\n'
readme = root/'README.md'
if '--check' in sys.argv:
    if readme.read_text() != text: sys.exit('README.md is out of date with nbs/index.ipynb: run `make readme`')
else: readme.write_text(text)
