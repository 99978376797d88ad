"""Learning curve (issue 11): how much data fine-tuning needs. BLIP (tiny preset, the demo's settings) trained on
mini-DiffusionDBs with more and more distinct prompts (DiffusionDB's 1.33 images a prompt, split by prompt), each
scored on its own test split: Combined with its 95% interval, the oracle's Combined, and visible-part accuracy over
the images that show each part.

    .venv/bin/python tools/learning_curve.py --jobs 2                   # `make learning-curve`: 250 … 7,500 prompts
    .venv/bin/python tools/learning_curve.py --prompts 250,1000 --model vit-gpt2

Writes benchmarks/learning_curve.{json,md} (kept in git, with the machine it ran on), figures/learning_curve.{pdf,png}
and figures/data/learning_curve.dat; the report shows the figure where the file exists. Runs go to
runs/learning-curve/ and are skipped when complete, so an interrupted curve resumes.
"""
import os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import numpy as np, pandas as pd
from fastcore.script import call_parse
from imgcap2text.core import project_path, provenance, save_json, atomic_write, set_seed
from imgcap2text.data import column
from imgcap2text.synth import write_mini_diffusiondb
from imgcap2text.train import train_run, SYNTH_DEFAULTS
from imgcap2text.models import load_captioner, check_model
from imgcap2text.generate import generate_captions
from imgcap2text.metrics import text_scores
from imgcap2text.data import load_run_splits
from imgcap2text.evaluation import image_visibility, visible_accuracy, oracle_captions, bootstrap_ci, VISIBLE_PARTS
from imgcap2text import plots

def point(model, n_prompts, seed=42):
    "Train (or reuse) one run on `n_prompts` distinct prompts and score it on its test split."
    src = project_path('data', 'learning-curve', f'mini-{n_prompts}')
    write_mini_diffusiondb(src, **(SYNTH_DEFAULTS | dict(n_prompts=n_prompts)))
    out = project_path('runs', 'learning-curve', f'{model}-{n_prompts}')
    t = time.time(); summary = train_run(model, source=str(src), out=str(out), seed=seed); train_s = time.time() - t
    dsd = load_run_splits(out); test = dsd['test']
    prompts, train_prompts = column(test, 'prompt'), column(dsd['train'], 'prompt')
    caps = [g['caption'] for g in generate_captions(load_captioner(out/'model'), test['image'], progress=False)]
    visible = image_visibility(test)
    fine = bootstrap_ci(text_scores(caps, prompts).combined)
    oracle = float(text_scores(oracle_captions(prompts, train_prompts, visible), prompts).combined.mean())
    return dict(n_prompts=n_prompts, train_prompts=len(set(train_prompts)), n_train=len(dsd['train']), n_test=len(test),
                combined=fine['mean'], combined_lo=fine['lo'], combined_hi=fine['hi'], oracle=oracle,
                ceiling=fine['mean'] / oracle, train_seconds=round(train_s), **visible_accuracy(caps, prompts, visible))

def write_outputs(model, rows, config):
    "benchmarks/learning_curve.{json,md} and the figure, from the runs' rows."
    df = pd.DataFrame(rows).sort_values('train_prompts')
    cols = ['train_prompts', 'n_train', 'combined', 'combined_lo', 'combined_hi', 'oracle', 'ceiling', *VISIBLE_PARTS]
    table = df[cols].astype({'train_prompts': str, 'n_train': str})   # counts as they are, the rest to 3 digits
    atomic_write(project_path('benchmarks', 'learning_curve.md'),
                 f'Learning curve of {model} (tiny preset), test split by prompt; `make learning-curve`\n\n' + table.to_markdown(index=False, floatfmt='.3f') + '\n')
    save_json(dict(model=model, rows=df.to_dict('records'), provenance=provenance(config)), project_path('benchmarks', 'learning_curve.json'))
    plots.plot_learning_curve(rows, project_path('figures'), label=f'{model} fine-tuned')
    print(df[cols].to_string())

def _point(job):
    "One point in a worker process: (model, n_prompts, seed) -> its row."
    model, n, seed = job
    set_seed(seed); row = point(model, n, seed); print(row, flush=True)
    return row

@call_parse
def main(prompts:str='250,1000,2500,5000,7500', # distinct prompts of each mini-DiffusionDB, comma-separated (5,000: the demo's; 7,500: the seed report's 10k images)
         model:str='blip',                     # the captioner
         seed:int=42,
         jobs:int=1):                          # points at once, a thread each (2 on 2 cores: nearly twice the work of one two-thread job)
    check_model(model)
    ns = sorted(map(int, prompts.split(',')), reverse=True)   # the largest first: the jobs finish together
    if jobs <= 1: rows = [_point((model, n, seed)) for n in ns]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'   # read by each worker's torch as it starts
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context('spawn')) as pool: rows = list(pool.map(_point, [(model, n, seed) for n in ns]))
    write_outputs(model, rows, dict(prompts=prompts, model=model, seed=seed, jobs=jobs))
