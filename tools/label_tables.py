"""Derive the label tables that imgcap2text ships for when `clip-interrogator` is not installed
(`imgcap2text/assets/label_tables.json`), from the 10,282 real DiffusionDB prompts of `../shared/data/diffusiondb_prompts.csv`.

How: every prompt is split at commas into lowercase fragments (the first fragment, the subject, is left out);
- artists: fragments "by X", "art by X", "painted by X" and "in the style of X", names split at " and "; each name
  seen in at least 2 prompts, kept as the name (the interrogator writes "by X" and "inspired by X", as CLIP Interrogator);
- mediums: fragments of at most 4 words whose last word names a medium (painting, photo, render, ...), in at least 2 prompts;
- movements: fragments of at most 3 words ending in "ism" or naming a period or school (art nouveau, baroque, ...);
- flavors: every other fragment of 1-6 words in at least 2 prompts;
- negative: the fragments about quality that negative prompts use (blurry, ugly, ...), in at least 1 prompt, plus
  CLIP Interrogator's habit of listing defects: only words that occur in the prompts.
Run it again after the prompts file changes:  python tools/label_tables.py
"""
import json, re, sys
from collections import Counter
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT.parent/'shared'/'data'/'diffusiondb_prompts.csv'
OUT = ROOT/'imgcap2text'/'assets'/'label_tables.json'
MEDIUM_HEADS = {'painting', 'paintings', 'photo', 'photograph', 'photography', 'render', 'illustration', 'drawing', 'sketch',
                'sculpture', 'watercolor', 'watercolour', 'engraving', 'etching', 'lithograph', 'woodcut', 'print', 'mural',
                'fresco', 'collage', 'poster', 'portrait', 'pastel', 'gouache', 'charcoal', 'art', 'artwork', 'matte', 'cgi',
                'screenprint', 'tapestry', 'mosaic', 'comic', 'manga', 'anime', 'polaroid', 'daguerreotype', 'cartoon'}
MOVEMENT_WORDS = {'art nouveau', 'art deco', 'baroque', 'rococo', 'renaissance', 'pop art', 'ukiyo-e', 'ukiyo - e', 'bauhaus',
                  'pre-raphaelite', 'pre - raphaelite', 'hudson river school', 'vaporwave', 'synthwave', 'cyberpunk', 'steampunk',
                  'dieselpunk', 'solarpunk', 'lowbrow', 'fauvism', 'dada', 'neoclassical', 'romanticism', 'art brut'}
NEGATIVE_WORDS = ('blurry', 'blurred', 'ugly', 'deformed', 'disfigured', 'low quality', 'low resolution', 'lowres', 'jpeg artifacts',
                  'bad anatomy', 'watermark', 'out of focus', 'grainy', 'pixelated', 'distorted', 'noisy', 'overexposed',
                  'underexposed', 'cropped', 'mutated', 'extra limbs', 'text', 'signature', 'duplicate', 'morbid', 'poorly drawn')
ARTIST = re.compile(r'^(?:(?:art|painted|drawn|illustrated|photographed|made)\s+)?by\s+(.+)$|^in the style of\s+(.+)$')


def fragments(prompt: str) -> list[str]:
    parts = [re.sub(r'\s+', ' ', f).strip(' .;:!"\'()[]{}').lower() for f in str(prompt).split(',')]
    return [f for f in parts[1:] if f]


def derive(prompts: list[str]) -> dict:
    artists, frags = Counter(), Counter()
    for p in prompts:
        seen_a, seen_f = set(), set()
        for f in fragments(p):
            m = ARTIST.match(f)
            if m:
                for name in re.split(r'\s+and\s+|\s*&\s*', m.group(1) or m.group(2)):
                    name = name.strip(' ()')
                    if 1 <= len(name.split()) <= 4: seen_a.add(name)
            else: seen_f.add(f)
        artists.update(seen_a); frags.update(seen_f)
    def words(f): return len(f.split())
    mediums = sorted(f for f, c in frags.items() if c >= 2 and words(f) <= 4 and f.split()[-1] in MEDIUM_HEADS)
    movements = sorted(f for f, c in frags.items() if c >= 1 and words(f) <= 3 and (f.endswith('ism') or f in MOVEMENT_WORDS))
    negative = sorted(f for f, c in frags.items() if words(f) <= 3 and any(re.search(rf'\b{re.escape(w)}\b', f) for w in NEGATIVE_WORDS))
    taken = set(mediums) | set(movements) | set(negative)
    flavors = sorted(f for f, c in frags.items() if c >= 2 and 1 <= words(f) <= 6 and f not in taken)
    return dict(artists=sorted(a for a, c in artists.items() if c >= 2), flavors=flavors, mediums=mediums, movements=movements,
                negative=negative)


def main():
    if not SRC.exists(): sys.exit(f'{SRC} is missing: this tool derives the tables from the shared prompts file')
    prompts = pd.read_csv(SRC, keep_default_na=False).prompt.tolist()
    tables = derive(prompts)
    doc = dict(source=f'derived by tools/label_tables.py from {len(prompts):,} real DiffusionDB prompts (shared/data/diffusiondb_prompts.csv: '
                      'DiffusionDB, CC0 1.0, by way of THUDM/ImageReward, Apache-2.0)',
               method=__doc__.split('How: ')[1].split('Run it again')[0].strip(), tables=tables)
    OUT.write_text(json.dumps(doc, indent=0, ensure_ascii=False) + '\n')
    print(OUT, {k: len(v) for k, v in tables.items()})


if __name__ == '__main__': main()
