"""The package's import graph is one-way: no module imports (at the top or inside a function) one that imports it back."""
import ast
from pathlib import Path
import imgcap2text

PKG = Path(imgcap2text.__file__).parent

def import_graph() -> dict[str, set[str]]:
    "Each module's imports of the package's other modules, lazy ones included."
    mods = {p.stem for p in PKG.glob('*.py')}
    graph = {m: set() for m in mods}
    for m in mods:
        for node in ast.walk(ast.parse((PKG/f'{m}.py').read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module: names = [node.module.split('.')[0]]
                elif node.level == 1: names = [a.name for a in node.names]                      # from . import x
                elif (node.module or '').startswith('imgcap2text.'): names = [node.module.split('.')[1]]
                elif node.module == 'imgcap2text': names = [a.name for a in node.names]
                else: names = []
            elif isinstance(node, ast.Import): names = [a.name.split('.')[1] for a in node.names if a.name.startswith('imgcap2text.')]
            else: continue
            graph[m] |= {n for n in names if n in mods and n != m}
    return graph

def find_cycle(graph:dict[str, set[str]]) -> list[str] | None:
    "A cycle of the graph as a path (first == last), or None."
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 'open': return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)): return c
        state[m] = 'done'; stack.pop()
    for m in sorted(graph):
        if m not in state and (c := visit(m)): return c

def test_find_cycle_finds_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set(), 'c': {'a', 'b'}}) is None

def test_import_graph_is_one_way():
    g = import_graph()
    assert {'models', 'evaluation', 'systems'} <= g.keys() and 'generate' in g['train'] and 'models' in g['caption']   # the graph is read
    assert find_cycle(g) is None, ' -> '.join(find_cycle(g))
