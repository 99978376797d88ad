"""Speed and memory benchmarks (issue 6). Each row is a ratio of two timings measured in this run on this machine.

    .venv/bin/python tools/benchmarks.py                    # all (`make bench`): prints the table, writes benchmarks/results.{json,md}
    .venv/bin/python tools/benchmarks.py bench_evaluator    # only some; the other rows of benchmarks/results.json are kept

Nothing here is a test: targets are goals to compare against, not assertions.
"""
import os, sys, time, json, resource, subprocess, tempfile
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import numpy as np, torch, pandas as pd
from transformers import TrainerCallback
from imgcap2text.core import set_seed, provenance, atomic_write
from imgcap2text.synth import PromptGrammar, render

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def images_and_prompts(n, size=64, seed=0):
    g = PromptGrammar(seed); prompts = [g() for _ in range(n)]
    return [render(p, i, size=size) for i, p in enumerate(prompts)], prompts

DECODING = dict(num_beams=1, max_new_tokens=20)   # greedy, up to 20 tokens: the same decoding on both sides

def caption_vs_pipeline(folder, images, batch_size, precision='fp32'):
    """Images/s of transformers' `pipeline` called one image at a time (what the seeds' notebooks do) against our
    batched `generate_captions`, both loading the same saved folder in the same precision, and whether they agree."""
    from transformers import pipeline
    from imgcap2text.models import load_captioner, PRECISIONS
    from imgcap2text.generate import generate_captions
    # transformers 5 folded "image-to-text" into "image-text-to-text"; an empty text asks BLIP for a plain caption
    from imgcap2text.core import get_device
    pipe = pipeline('image-text-to-text', model=str(folder), dtype=PRECISIONS[precision], device=get_device())   # where load_captioner puts ours
    def baseline(): return [pipe(images=im, text='', max_new_tokens=DECODING['max_new_tokens'],
                                 generate_kwargs=dict(do_sample=False, num_beams=1))[0]['generated_text'].strip() for im in images]
    cap = load_captioner(folder, precision)
    def ours(): return [c['caption'] for c in generate_captions(cap, images, batch_size=batch_size, progress=False, **DECODING)]
    baseline_one = images[:1]
    pipe(images=baseline_one[0], text='', max_new_tokens=2); generate_captions(cap, baseline_one, max_new_tokens=2, progress=False)  # warm-up
    t0 = time.perf_counter(); a = baseline(); t_base = time.perf_counter() - t0
    t0 = time.perf_counter(); b = ours(); t_ours = time.perf_counter() - t0
    same = sum(x == y for x, y in zip(a, b))
    return len(images) / t_base, len(images) / t_ours, same

def bench_captioning(rows):
    """Captioning: the tiny preset's BLIP and the BLIP-base architecture built from its config (real size, random
    weights), each saved with `save_pretrained` and loaded by both sides, in fp32 and in bf16."""
    from transformers import BlipConfig, BlipForConditionalGeneration
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    from imgcap2text.models import build_captioner, BlipCaptioner, bert_tokenizer_with_dec
    tmp = Path(tempfile.mkdtemp())
    ims, prompts = images_and_prompts(64)
    set_seed(0); build_captioner('blip', train_prompts=prompts * 5, sizes={'stem': None}).save_pretrained(tmp/'tiny')   # plain patches: pipeline() builds the stock class
    set_seed(0)
    BlipCaptioner(BlipForConditionalGeneration(BlipConfig()), bert_tokenizer_with_dec(), BlipImageProcessorPil(), 'paper').save_pretrained(tmp/'base')
    big, _ = images_and_prompts(16, size=384)
    for label, folder, images, bs in [('tiny BLIP, 64 images 64²', tmp/'tiny', ims, 16), ('BLIP-base architecture, 16 images 384²', tmp/'base', big, 8)]:
        for precision in ('fp32', 'bf16'):
            base, ours, same = caption_vs_pipeline(folder, images, bs, precision)
            rows.append(dict(benchmark=f'captioning, {label}, {precision}, greedy ≤ 20 tokens',
                             baseline=f'{base:.2f} img/s, `pipeline` one image at a time',
                             ours=f'{ours:.2f} img/s, batches of {bs} ({same}/{len(images)} captions identical)',
                             ratio=ours / base, goal='>= 3x'))
            print(rows[-1], flush=True)

class EpochTimer(TrainerCallback):
    "Wall time of each epoch's training steps (Trainer evaluates and saves after `on_epoch_end`)."
    def __init__(self): self.times = []
    def on_epoch_begin(self, *a, **k): self.t = time.perf_counter()
    def on_epoch_end(self, *a, **k): self.times.append(time.perf_counter() - self.t)

def bench_cached_clip(rows):
    """A CLIP-prefix training epoch (GPT-2 frozen, the report's setting) with CLIP embeddings cached once against
    encoding the images at every step. Only the epoch's training steps are timed (a callback), not the one-off caching,
    the per-epoch evaluation or the checkpoint save. Two sizes: a ViT-B/32-size CLIP with the tiny GPT-2, and the
    report's sizes (ViT-B/16 CLIP, GPT-2 base) through the paper preset's code path, random weights."""
    from datasets import Dataset, DatasetDict
    from transformers import CLIPConfig, CLIPModel, GPT2Config, GPT2LMHeadModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from imgcap2text.models import build_captioner, train_bpe_tokenizer
    from imgcap2text.train import fit
    tmp = Path(tempfile.mkdtemp())
    def data(n):
        ims, prompts = images_and_prompts(n, size=224); names = [f'{i}.png' for i in range(n)]
        return prompts, DatasetDict(train=Dataset.from_dict(dict(image=ims, prompt=prompts, image_name=names)),
                                     validation=Dataset.from_dict(dict(image=ims[:8], prompt=prompts[:8], image_name=names[:8])))
    def tiny_gpt2_big_clip(prompts):
        cap = build_captioner('clip-gpt2', train_prompts=prompts * 3, freeze_gpt2=True)
        clip = CLIPModel(CLIPConfig(projection_dim=cap.model.config.clip_dim)).eval()   # ViT-B/32-size vision tower
        for p in clip.parameters(): p.requires_grad = False
        cap.clip, cap.image_processor = clip, CLIPImageProcessorPil()
        return cap
    def paper_sizes(prompts):
        ck = tmp/'paper'
        if not ck.exists():
            tok = train_bpe_tokenizer(prompts * 3)
            for part in (CLIPModel(CLIPConfig(vision_config=dict(patch_size=16))), CLIPImageProcessorPil(), tok): part.save_pretrained(ck/'clip')
            for part in (GPT2LMHeadModel(GPT2Config()), tok): part.save_pretrained(ck/'gpt2')
        return build_captioner('clip-gpt2', 'paper', checkpoint=str(ck))
    for label, make, n in [('CLIP ViT-B/32 size, tiny GPT-2', tiny_gpt2_big_clip, 96), ('report sizes: CLIP ViT-B/16, GPT-2 base', paper_sizes, 32)]:
        prompts, dsd = data(n)
        per_epoch = {}
        for cached in (True, False):
            set_seed(0); cap = make(prompts); cap.cache_features = cached
            timer = EpochTimer()
            with tempfile.TemporaryDirectory() as d: fit(cap, dsd, d, epochs=2, batch_size=16, resume=False, callbacks=[timer])
            per_epoch[cached] = sum(timer.times) / len(timer.times)
        rows.append(dict(benchmark=f'CLIP-prefix training epoch, {label}, GPT-2 frozen ({n} images 224², batch 16)',
                         baseline=f'{per_epoch[False]:.2f} s, encoding the images at every step',
                         ours=f'{per_epoch[True]:.2f} s, embeddings cached once', ratio=per_epoch[False] / per_epoch[True], goal='>= 10x'))
        print(rows[-1], flush=True)

def bench_evaluator(rows, n=2000, n_baseline=400):
    """Per-pair sentence BLEU, BERTScore and cosine (`metrics.text_scores`) for n pairs: our scorers loaded once,
    against loading them for every pair, as a loop over `bert_score.score(...)` or `evaluate.load("bertscore")` does.
    The baseline is timed on the first `n_baseline` pairs and scaled to n (its cost per pair is constant)."""
    from imgcap2text import metrics
    g = PromptGrammar(1); refs = [g() for _ in range(n)]; preds = [g() for _ in range(n)]
    def fresh(): metrics.bert_scorer.cache_clear(); metrics.sentence_model.cache_clear()
    fresh(); metrics.text_scores(preds[:2], refs[:2]); fresh()          # warm-up: imports, first-use costs
    t0 = time.perf_counter(); ours = metrics.text_scores(preds, refs); t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = []
    for p, r in zip(preds[:n_baseline], refs[:n_baseline]): fresh(); base.append(metrics.text_scores([p], [r]))
    t_base = (time.perf_counter() - t0) * n / n_baseline
    agree = max(abs(a - b) for a, b in zip(ours.bertscore[:n_baseline], pd.concat(base).bertscore))
    rows.append(dict(benchmark=f'evaluator, {n} pairs (sentence BLEU, BERTScore, cosine)',
                     baseline=f'{t_base:.0f} s, scorers loaded for every pair ({n_baseline} timed, scaled to {n})',
                     ours=f'{t_ours:.1f} s, loaded once (BERTScore differs by at most {agree:.0e})', ratio=t_base / t_ours, goal='>= 5x'))

PEAK = '''
import resource, torch, sys
from transformers import BlipConfig, BlipForConditionalGeneration
torch.manual_seed(0)
m = BlipForConditionalGeneration(BlipConfig()); m.train()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pv = torch.randn(8, 3, 384, 384); ids = torch.randint(1000, 2000, (8, 40))
out = m(pixel_values=pv, input_ids=ids, labels=ids); out.loss.backward()
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''

def bench_memory(rows):
    "Peak resident memory of one BLIP-base training step at batch 8 (384², 40 tokens), in a fresh process."
    t = time.perf_counter()
    before, after = map(int, subprocess.run([sys.executable, '-c', PEAK], capture_output=True, text=True, check=True).stdout.split())
    rows.append(dict(benchmark='peak memory, one BLIP-base training step (batch 8, 384², fp32, CPU)', baseline=f'{before / 2**20:.2f} GiB after building the model',
                     ours=f'{after / 2**20:.2f} GiB peak ({time.perf_counter() - t:.0f} s)', ratio=float('nan'), goal='(measured)'))

STREAM = r"""
import sys, json, math, time, resource, tempfile
from datasets import Dataset
from imgcap2text.data import stream_diffusiondb, stream_split, FEATURES
from imgcap2text.models import build_captioner
from imgcap2text.train import train_model, CaptionCollator
subset, rows_per_part, n_parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
splits = stream_split(stream_diffusiondb(subset), seed=0)   # hub parts fetched from the replica when reached, deleted once read
val = Dataset.from_generator(lambda: iter(splits['validation'].take(16)), features=FEATURES)
prompts = [r['prompt'] for r in splits['train'].select_columns(['prompt']).take(200)]
cap = build_captioner('blip', 'tiny', train_prompts=prompts)
steps = math.ceil(0.6 * rows_per_part * n_parts / 16)       # one pass over the training rows of every part
seen = []
class Count:   # the collator, counting the rows the stream delivered
    def __init__(self, c): self.c = c
    def __call__(self, rows): seen.extend(r['part_id'] for r in rows); return self.c(rows)
train_model(cap.model, Count(CaptionCollator(cap, 48)), splits['train'], val, tempfile.mkdtemp(), max_steps=steps, batch_size=16,
            lr=1e-3, keep='last', bf16='auto')
print(json.dumps(dict(rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, seconds=time.perf_counter() - t, steps=steps,
                      rows=len(seen), parts=len(set(seen)))))
"""

def bench_streaming(rows, rows_per_part=300, size=256):
    """Peak memory of training the tiny BLIP by steps over a DiffusionDB stream of 1 and of 10 hub parts (one pass over
    every part's training rows), the parts served by the hub replica on 127.0.0.1 and each deleted once read."""
    from imgcap2text.hub_replica import build_replica, serve_replica, replica_env
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)/'hub'; (root/'models').mkdir(parents=True)
        from imgcap2text.hub_replica import build_diffusiondb
        build_diffusiondb(root/'datasets'/'poloclub'/'diffusiondb', n_parts=10, images_per_part=rows_per_part, size=size)
        with serve_replica(root) as hub:
            res = {}
            for subset, n in (('2m_first_1k', 1), ('2m_first_5k', 5), ('2m_first_10k', 10)):
                env = replica_env(hub, Path(d)/subset) | dict(IMGCAP2TEXT_PROGRESS='0')
                out = subprocess.run([sys.executable, '-c', STREAM, subset, str(rows_per_part), str(n)], env=env, capture_output=True, text=True)
                if out.returncode: raise RuntimeError(out.stderr[-3000:])
                res[n] = json.loads(out.stdout.strip().splitlines()[-1])
                print(subset, res[n], flush=True)
    one, five, ten = res[1], res[5], res[10]
    rows.append(dict(benchmark=f'peak memory, tiny BLIP trained by steps over a DiffusionDB stream ({rows_per_part} images {size}² a part, hub replica)',
                     baseline=f"{five['rss'] / 2**10:.0f} MiB, 5 parts ({five['steps']} steps, {five['seconds']:.0f} s); 1 part: {one['rss'] / 2**10:.0f} MiB ({one['steps']} steps)",
                     ours=f"{ten['rss'] / 2**10:.0f} MiB, 10 parts ({ten['steps']} steps, {ten['rows']} rows from {ten['parts']} parts, {ten['seconds']:.0f} s)",
                     ratio=ten['rss'] / five['rss'], goal='<= 1.1x (flat)'))

OUT = Path(__file__).resolve().parents[1]/'benchmarks'   # committed: the README and the report show this table

def bench_systems(rows, run='runs/blip-tiny'):
    """What the practitioners' systems add to one evaluation of the demo's BLIP run (`make demo` first): fitting them on
    the training split (sentence embeddings, the regression head, the bank's CLIP text embeddings) and answering for the
    test split, against what the evaluation already spends captioning that split with the fine-tuned BLIP."""
    from imgcap2text.core import project_path
    from imgcap2text.data import column
    from imgcap2text.data import load_run_splits
    from imgcap2text.evaluation import caption_frame
    from imgcap2text.models import load_captioner
    from imgcap2text.systems import PromptSystems, run_systems
    run = project_path(run)
    if not (run/'summary.json').exists(): print(f'bench_systems: skipped, no trained run at {run} (run `make demo` first)'); return
    ps = run_systems(run); d = load_run_splits(run); train, test = d['train'], d['test']
    im_train, im_test = ps.scorer.image_embeds(train['image']), ps.scorer.image_embeds(test['image'])
    cap = load_captioner(run/'model')
    caption_frame(cap, test.select(range(16)), progress=False)                     # warm-up
    t0 = time.perf_counter(); caps = caption_frame(cap, test, progress=False).caption.tolist(); t_cap = time.perf_counter() - t0
    t_fit = timed(lambda: PromptSystems.fit(ps.scorer, im_train, column(train, 'prompt')))
    t = {s: timed(lambda s=s: ps.answer(s, im_test, caps)) for s in ('retrieval', 'regression', 'interrogator')}
    total = t_fit + sum(t.values())
    rows.append(dict(benchmark=f"practitioners' systems in one evaluation ({len(train):,} training, {len(test)} test images)",
                     baseline=f'{t_cap:.0f} s: the fine-tuned BLIP captions the test split',
                     ours=f"{total:.0f} s: fit {t_fit:.0f} s, retrieval {t['retrieval']:.2f} s, regression {t['regression']:.2f} s, interrogator {t['interrogator']:.0f} s",
                     ratio=t_cap / total, goal='(measured: the share they add)'))

def bench_scoring(rows, run='blip-tiny'):
    """Scoring one evaluation's eight systems (the demo's BLIP run, `make demo` first): each system's captions in a call
    of its own, against all of them in one pass (`evaluation.score_frames`: each distinct text embedded once), and
    against one pass over the three systems left when the split's own ones come from another run (`split_results`)."""
    from imgcap2text.core import project_path
    from imgcap2text.data import load_run_splits
    from imgcap2text.metrics import default_clip
    from imgcap2text.evaluation import score_frame, score_frames, SYSTEMS, SPLIT_SYSTEMS
    from imgcap2text.metrics import clip_scorer
    out = project_path('results', run)
    if not (out/'metrics.json').exists(): print(f'bench_scoring: skipped, no evaluation at {out} (run `make demo` first)'); return
    read = lambda f: pd.read_csv(out/f, keep_default_na=False)
    base = read('baselines.csv')
    frames = {'pre-trained': read('predictions_pretrained.csv'), 'fine-tuned': read('predictions.csv')}
    frames = {k: (frames[k] if k in frames else base[base.system == k][['image', 'prompt', 'caption']].reset_index(drop=True), None)
              for k in SYSTEMS if k in frames or k in set(base.system)}
    frames = {k: (df.drop(columns=[c for c in df if c not in ('image', 'prompt', 'caption', 'n_tokens', 'mean_entropy')]), v)
              for k, (df, v) in frames.items()}
    scorer = clip_scorer(default_clip('tiny')); test = load_run_splits(project_path('runs', run))['test']
    order = {n: i for i, n in enumerate(test['image_name'])}
    im = scorer.image_embeds(test.select([order[n] for n in frames['fine-tuned'][0].image])['image'])
    score_frame(frames['prior'][0].head(8), None, scorer, image_embeds=im[:8])       # warm-up: scorers loaded
    t_each = timed(lambda: {k: score_frame(df, None, scorer, v, image_embeds=im) for k, (df, v) in frames.items()})
    one = {}
    t_one = timed(lambda: one.update(score_frames(frames, None, scorer, image_embeds=im)))
    own = {k: f for k, f in frames.items() if k not in SPLIT_SYSTEMS}
    t_own = timed(lambda: score_frames(own, None, scorer, image_embeds=im))
    alone = score_frame(frames['fine-tuned'][0], None, scorer, image_embeds=im)[0]
    agree = float((alone.combined - one['fine-tuned'][0].combined).abs().max())
    n = len(frames['fine-tuned'][0])
    rows.append(dict(benchmark=f'scoring one evaluation: {len(frames)} systems x {n} test images (BLEU, BERTScore, cosine, CLIP)',
                     baseline=f'{t_each:.0f} s: a call per system',
                     ours=f"{t_one:.0f} s in one pass (Combined within {agree:.0e}); {t_own:.0f} s for the {len(own)} systems left when the split's own are reused",
                     ratio=t_each / t_own, goal='(measured)'))

def tiny_clip_folder():
    "The demo's tiny CLIP (`make demo` first), else an untrained one of the same size (then speeds hold, recall is on random weights)."
    from imgcap2text.core import project_path
    p = project_path('runs', 'clip-tiny', 'clip')
    if (p/'config.json').exists(): return str(p), "the demo's tiny CLIP"
    from imgcap2text.models import build_captioner
    d = Path(tempfile.mkdtemp())/'cg'
    build_captioner('clip-gpt2', train_prompts=images_and_prompts(300)[1]).save_pretrained(d)
    return str(d/'clip'), 'an untrained tiny CLIP (no demo run here)'

def synthetic_bank(n, seed=0):
    "n distinct synthetic prompts: the grammar's scenes with real DiffusionDB modifiers, numbered where the grammar repeats itself."
    g, out, seen = PromptGrammar(seed), [], set()
    while len(out) < n:
        p = g()
        if p in seen: p = f'{p}, variation {len(out)}'
        seen.add(p); out.append(p)
    return out

BANK_BUILD = r"""
import sys, json, time, resource
from imgcap2text.metrics import clip_scorer
from imgcap2text.bank import PromptBank
sys.path.insert(0, sys.argv[4]); from benchmarks import synthetic_bank
n, clip, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
prompts = synthetic_bank(n)
t = time.perf_counter(); b = PromptBank.build(prompts, clip_scorer(clip), folder, progress=False); s = time.perf_counter() - t
print(json.dumps(dict(seconds=s, embed_seconds=b.config['embed_seconds'], index=b.config['index'], nprobe=b.config.get('nprobe'),
                      nlist=b.config.get('nlist'), rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
"""

def bench_bank(rows, sizes=(100_000, 1_000_000), n_queries=1000):
    """Prompt banks with no run (15_bank): building one of 100k and of 1M synthetic prompts with the tiny CLIP's text
    tower, each in a fresh process for its peak memory, against the old path on 10k (every prompt's CLIP and MiniLM
    embeddings, `PromptSystems.with_bank`); then 1,000 image queries against the 1M bank: the IVF index against exact
    search, its speed and recall@8."""
    import numpy as np
    from imgcap2text.metrics import clip_scorer, sentence_embeds
    from imgcap2text.bank import PromptBank, exact_search, recall_at
    clip, which = tiny_clip_folder()
    scorer = clip_scorer(clip)
    old = synthetic_bank(10_000, seed=1)
    t_old = timed(lambda: (scorer.text_embeds(old), sentence_embeds(old)))
    tmp = Path(tempfile.mkdtemp())
    built = {}
    for n in sizes:
        out = subprocess.run([sys.executable, '-c', BANK_BUILD, str(n), clip, str(tmp/f'bank{n}'), str(Path(__file__).parent)],
                             capture_output=True, text=True, env=dict(os.environ, IMGCAP2TEXT_PROGRESS='0'))
        if out.returncode: raise RuntimeError(out.stderr[-3000:])
        built[n] = json.loads(out.stdout.strip().splitlines()[-1]); print(n, built[n], flush=True)
        rows.append(dict(benchmark=f'building a prompt bank of {n:,} synthetic prompts ({which}, 2 cores)',
                         baseline=f'{len(old) / t_old:,.0f} prompts/s: CLIP and MiniLM embeddings of every prompt (10k, the old path)',
                         ours=f"{n / built[n]['seconds']:,.0f} prompts/s ({built[n]['seconds']:.0f} s, {built[n]['index']} index"
                              f"{', nlist ' + str(built[n]['nlist']) + ', nprobe ' + str(built[n]['nprobe']) if built[n]['nprobe'] else ''}), "
                              f"peak RSS {built[n]['rss'] / 2**20:.2f} GiB",
                         ratio=(n / built[n]['seconds']) / (len(old) / t_old), goal='(measured)'))
    big = PromptBank(tmp/f'bank{max(sizes)}')
    ims, _ = images_and_prompts(n_queries, seed=7)
    q = scorer.image_embeds(ims).numpy()
    exact_search(q[:8], big.keys, 8); big.search(q[:8], 8)        # warm-up: the pages of both on disk read once
    t0 = time.perf_counter(); _, exact = exact_search(q, big.keys, 8); t_exact = time.perf_counter() - t0
    t0 = time.perf_counter(); _, found = big.search(q, 8); t_ivf = time.perf_counter() - t0
    r = recall_at(found, exact)
    rows.append(dict(benchmark=f'searching {len(big):,} prompt embeddings with {n_queries:,} image queries ({big.keys.shape[1]}-d, fp16 on disk)',
                     baseline=f'{t_exact:.1f} s: exact inner product (FAISS brute force over the memory-mapped rows)',
                     ours=f"{t_ivf:.2f} s: IVF (nlist {big.config['nlist']}, nprobe {big.config['nprobe']}), recall@8 {r:.3f}",
                     ratio=t_exact / t_ivf, goal='>= 10x at recall@8 >= 0.95'))

def bench_interrogator(rows, n=16, run='runs/blip-tiny'):
    """The interrogator's best mode over CLIP Interrogator's full tables (14_interrogator), the demo's tiny CLIP and
    BLIP (`make demo` first): batched across images, the chain's shared prefix encoded once, against one image at a
    time with every candidate encoded in full, as CLIP Interrogator runs it; and the one-time cost of embedding the tables."""
    from imgcap2text.core import project_path
    from imgcap2text.interrogator import Interrogator, LabelTable, load_label_tables
    from imgcap2text.caption import load_any_captioner
    run = project_path(run)
    if not (run/'model'/'captioner.json').exists(): print(f'bench_interrogator: skipped, no trained run at {run} (run `make demo` first)'); return
    clip, which = tiny_clip_folder()
    it = Interrogator.load(clip, load_any_captioner(str(run)), progress=False)
    tables = load_label_tables()
    n_labels = sum(len(v) for v in tables['tables'].values())
    t_tables = timed(lambda: [LabelTable.embed(v, it.scorer, k, cache=False, progress=False) for k, v in tables['tables'].items()])
    ims, _ = images_and_prompts(n, seed=11)
    it.interrogate(ims[:2], 'best')                                              # warm-up
    t0 = time.perf_counter(); ours = it.interrogate(ims, 'best'); t_ours = time.perf_counter() - t0
    t0 = time.perf_counter(); base = it.interrogate(ims, 'best', one_at_a_time=True); t_base = time.perf_counter() - t0
    same = sum(a['prompt'] == b['prompt'] for a, b in zip(ours, base))
    steps = sum(len(r['steps']) - 1 for r in ours) / n
    rows.append(dict(benchmark=f"interrogator, best mode, {n} images, CLIP Interrogator's tables ({n_labels:,} labels), {which} and the demo's BLIP",
                     baseline=f'{n / t_base:.2f} images/s: one image at a time, each candidate encoded in full',
                     ours=f'{n / t_ours:.2f} images/s batched, shared prefix ({same}/{n} answers the same, {steps:.1f} labels chained an image); '
                          f'embedding the tables once: {t_tables:.0f} s ({n_labels / t_tables:,.0f} labels/s)',
                     ratio=t_base / t_ours, goal='>= 3x, same answers'))

def app_load(app_url:str, paths:list[str], clients:int, per_client:int, timeout:float=120.) -> dict:
    "`clients` concurrent gradio_client clients, each calling /recover `per_client` times: answered count, latencies, wall time."
    import concurrent.futures as cf
    from gradio_client import Client, handle_file
    def one(c):
        client, lat, ok = Client(app_url, verbose=False), [], 0
        for j in range(per_client):
            t = time.perf_counter()
            job = client.submit(handle_file(paths[(c * per_client + j) % len(paths)]), api_name='/recover')
            try: ok += isinstance(job.result(timeout=timeout), str)
            except Exception: pass
            lat.append(time.perf_counter() - t)
        return ok, lat
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex: res = list(ex.map(one, range(clients)))
    wall = time.perf_counter() - t0
    lat = sorted(l for _, ls in res for l in ls)
    return dict(answered=sum(ok for ok, _ in res), n=clients * per_client, p50=lat[len(lat) // 2], p95=lat[min(len(lat) - 1, int(0.95 * len(lat)))],
                wall=wall, rate=clients * per_client / wall)

def bench_app(rows, clients=16, per_client=4, max_batch=8):
    """The web app's API under load (17_app): `clients` concurrent gradio_client clients against 127.0.0.1, each asking
    /recover for `per_client` images, with the API's requests answered together (up to `max_batch`) against one at a
    time. The demo's BLIP where it is trained, else an untrained one of the same size (speed, not quality)."""
    import socket
    from imgcap2text.core import project_path
    from imgcap2text.app import Recoverer, build_app
    run = project_path('runs', 'blip-tiny')
    clip, which = tiny_clip_folder()
    if (run/'model'/'captioner.json').exists(): model, what = str(run), "the demo's BLIP"
    else:
        from imgcap2text.models import build_captioner
        model, what = str(Path(tempfile.mkdtemp())/'blip'), 'an untrained tiny BLIP'
        build_captioner('blip', train_prompts=images_and_prompts(300)[1]).save_pretrained(model)
    d = Path(tempfile.mkdtemp())
    ims, _ = images_and_prompts(clients * per_client, seed=5)
    paths = [str(d/f'{i}.png') for i in range(len(ims))]
    for im, p in zip(ims, paths): im.save(p)
    r = Recoverer(model, clip)
    r.recover([('warm-up', ims[0])])                                           # load the models once, before either run
    out = {}
    for name, batch in (('alone', 1), ('batched', max_batch)):
        with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
        app = build_app(r, max_batch=batch)
        app.launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
        try: out[name] = app_load(f'http://127.0.0.1:{port}/', paths, clients, per_client)
        finally: app.close()
    a, b = out['alone'], out['batched']
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    fmt = lambda x: f"{x['answered']}/{x['n']} answered, p50 {x['p50']:.2f} s, p95 {x['p95']:.2f} s, {x['rate']:.1f} images/s"
    rows.append(dict(benchmark=f'web app: {clients} concurrent gradio_client clients x {per_client} images on /recover, {what}',
                     baseline=fmt(a) + ': one request at a time',
                     ours=fmt(b) + f': up to {max_batch} requests answered together; peak RSS {rss:.2f} GiB (server and clients)',
                     ratio=b['rate'] / a['rate'], goal='all answered; batched above alone'))

def demo_tagger():
    "The demo's tagger (runs/clip-tiny/tagger, `make demo` first), else the hub replica's WD-shaped tagger (448², random weights)."
    from imgcap2text.core import project_path
    p = project_path('runs', 'clip-tiny', 'tagger')
    if (p/'model.onnx').exists(): return str(p), "the demo's tagger (64², ONNX)"
    from imgcap2text.hub_replica import build_wd_tagger
    d = Path(tempfile.mkdtemp())/'wd'; d.mkdir(); build_wd_tagger(d)
    return str(d), 'a WD v3-shaped tagger (448², random weights)'

def bench_tagger(rows, n=64, batch=16):
    "`--system tagger`: onnxruntime batched against one image at a time (TagGUI's #328), the same tags."
    from imgcap2text.tagger import WdTagger
    folder, what = demo_tagger()
    t = WdTagger.from_pretrained(folder)
    ims, _ = images_and_prompts(n)
    t.probabilities(ims[:2], 2)   # warm-up
    one_by_one, batched = [], []
    t_one = timed(lambda: one_by_one.extend(t.answer(ims, batch_size=1)))
    t_batch = timed(lambda: batched.extend(t.answer(ims, batch_size=batch)))
    rows.append(dict(benchmark=f'tagger ({what}, {t.provider}), {n} images', baseline=f'{n / t_one:.0f} images/s one at a time',
                     ours=f'{n / t_batch:.0f} images/s in batches of {batch} (the same tags: {one_by_one == batched})', ratio=t_one / t_batch, goal='>1x'))

def bench_sidecars(rows, n=10_000):
    """Captioning a training folder: a rerun over {n} images that all have their caption file (no model may load: the
    model path given does not exist), and writing the caption files beside the CSV against the CSV alone."""
    from imgcap2text.caption import caption_paths
    from imgcap2text.sidecars import Sidecars
    d = Path(tempfile.mkdtemp())
    ims, _ = images_and_prompts(16, size=32)
    for i in range(n):
        f = d/'data'/f'{i // 1000:02d}'/f'{i:05d}.png'; f.parent.mkdir(parents=True, exist_ok=True)
        ims[i % 16].save(f); f.with_suffix('.txt').write_text(f'a caption, number {i}\n')
    t_rerun = timed(lambda: caption_paths([str(d/'data')], str(d/'no-such-model'), d/'rerun.csv', sidecar='txt', progress=False))
    rows.append(dict(benchmark=f'a rerun over {n:,} images that all have their caption file (`caption FOLDER --sidecar txt`)', baseline='—',
                     ours=f'{t_rerun:.1f} s, no model loaded', ratio=float('nan'), goal='< 5 s'))
    keys = [str(p) for p in sorted((d/'data').rglob('*.png'))][:2000]
    sc = Sidecars([str(d/'data')], 'txt', 'overwrite')
    rows_csv = [dict(image=k, caption=f'new caption {i}') for i, k in enumerate(keys)]
    t_csv = timed(lambda: atomic_write(d/'index.csv', pd.DataFrame(rows_csv).to_csv(index=False)))
    t_side = timed(lambda: [sc.write(k, r['caption']) for k, r in zip(keys, rows_csv)])
    rows.append(dict(benchmark=f'writing {len(keys):,} captions: a caption file each (atomic) beside the CSV', baseline=f'{t_csv * 1000:.0f} ms the CSV alone',
                     ours=f'{t_side * 1000:.0f} ms the caption files ({t_side / len(keys) * 1e6:.0f} µs a file)', ratio=t_side / max(t_csv, 1e-9), goal='(measured: a cost, not a speed-up)'))

def bench_vlm(rows, n=32, batch=8, repo='Qwen/Qwen2.5-VL-3B-Instruct'):
    """A vision-language captioner (issue 31; TagGUI's #328: one image at a time left a 4090 at 25%): the hub replica's
    tiny {repo} asked for SD prompts, batched with left padding against one image at a time, the same answers."""
    from imgcap2text.vlm import VlmCaptioner
    from imgcap2text.vlm_replica import VLM_BUILDERS
    from imgcap2text.generate import generate_captions
    d = Path(tempfile.mkdtemp())/repo; d.mkdir(parents=True); VLM_BUILDERS[repo](d)
    cap = VlmCaptioner.from_pretrained(str(d), style='sd')
    ims, _ = images_and_prompts(n)
    generate_captions(cap, ims[:2], batch_size=2, max_new_tokens=4, progress=False)   # warm-up
    one, batched = [], []
    t_one = timed(lambda: one.extend(g['caption'] for im in ims for g in generate_captions(cap, [im], max_new_tokens=16, progress=False)))
    t_batch = timed(lambda: batched.extend(g['caption'] for g in generate_captions(cap, ims, batch_size=batch, max_new_tokens=16, progress=False)))
    rows.append(dict(benchmark=f'VLM captioner ({repo}, tiny replica, 16 new tokens), {n} images', baseline=f'{n / t_one:.1f} images/s one at a time',
                     ours=f'{n / t_batch:.1f} images/s in batches of {batch} (the same answers: {one == batched})', ratio=t_one / t_batch, goal='>= 3x'))

def bench_pez(rows, n=64, iters=100):
    """PEZ (issue 33): seconds an image, every image's prompt optimised in one batch against one image at a time (the
    paper's loop), the offline preset's 16 tokens for {iters} steps on the tiny CLIP; the same answers either way."""
    from imgcap2text.metrics import clip_scorer
    from imgcap2text.pez import pez_config, pez_prompts
    folder, which = tiny_clip_folder()
    scorer = clip_scorer(folder)
    ims = scorer.image_embeds(images_and_prompts(n)[0])
    c = pez_config('small', iters=iters)
    one, batched = [], []
    t_one = timed(lambda: one.extend(pez_prompts(scorer, ims, pez_config(c, batch_size=1))))
    t_batch = timed(lambda: batched.extend(pez_prompts(scorer, ims, pez_config(c, batch_size=n))))
    same = [a['prompt'] for a in one] == [b['prompt'] for b in batched]
    rows.append(dict(benchmark=f'PEZ ({which}, {c.prompt_len} tokens, {iters} steps), {n} images', baseline=f'{t_one / n:.3f} s an image, one at a time',
                     ours=f'{t_batch / n:.3f} s an image in one batch of {n} (the same prompts: {same})', ratio=t_one / t_batch, goal='>= 3x'))

def bench_regenerate(rows, n=16, batch=8):
    """The round trip through diffusers (issue 33): the hub replica's tiny CompVis/stable-diffusion-v1-4 (random weights,
    a UNet on 8x8 latents), {n} prompts with DiffusionDB settings (one sampler, steps and CFG: one group), batched
    against one at a time; each image its own seeded generator, so the same images."""
    from imgcap2text.regenerate import build_stable_diffusion, load_pipeline, render_with
    d = Path(tempfile.mkdtemp())/'sd'; build_stable_diffusion(d)
    pipe = load_pipeline(str(d), device='cpu'); pipe.set_progress_bar_config(disable=True)
    _, prompts = images_and_prompts(n)
    settings = [dict(seed=i, step=10, cfg=7.0, sampler=8) for i in range(n)]
    render_with(pipe, prompts[:2], settings[:2], batch_size=2)   # warm-up
    one, batched = [], []
    t_one = timed(lambda: one.extend(render_with(pipe, prompts, settings, batch_size=1)))
    t_batch = timed(lambda: batched.extend(render_with(pipe, prompts, settings, batch_size=batch)))
    diff = max(float(np.abs(np.asarray(a, float) - np.asarray(b, float)).max()) for a, b in zip(one, batched))
    rows.append(dict(benchmark=f'regeneration through diffusers (tiny SD 1.4 replica, k_lms, 10 steps, {one[0].width}px), {n} prompts',
                     baseline=f'{n / t_one:.1f} images/s one at a time', ours=f'{n / t_batch:.1f} images/s in batches of {batch} (largest pixel difference: {diff:.0f})',
                     ratio=t_one / t_batch, goal='SD 1.4 fp16 on a GPU: tools/gpu_check'))

def machine() -> str:
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), 'unknown CPU') \
          if Path('/proc/cpuinfo').exists() else 'unknown CPU'
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'
    return f'{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads'

def write_results(rows:list[dict], ran:list[str]):
    "Merge this run's rows into benchmarks/results.json (rows of benchmarks not run now are kept) and write the Markdown table."
    old = json.loads((OUT/'results.json').read_text())['rows'] if (OUT/'results.json').exists() else []
    rows = [r for r in old if r['group'] not in ran] + rows
    order = [b.__name__ for b in BENCHMARKS]
    rows.sort(key=lambda r: order.index(r['group']) if r['group'] in order else len(order))
    df = pd.DataFrame(rows)[['benchmark', 'baseline', 'ours', 'ratio', 'goal']]
    df['ratio'] = df.ratio.map(lambda r: '—' if r != r else f'{r:.1f}x')
    table = df.to_markdown(index=False)
    atomic_write(OUT/'results.json', json.dumps(dict(rows=rows, machine=machine(), provenance=provenance()), indent=1, default=str))
    atomic_write(OUT/'results.md', f'{table}\n\nMeasured by `make bench` (tools/benchmarks.py) on {machine()}.\n')
    return table

BENCHMARKS = (bench_captioning, bench_cached_clip, bench_evaluator, bench_memory, bench_streaming, bench_systems, bench_scoring,
              bench_bank, bench_interrogator, bench_app, bench_tagger, bench_sidecars, bench_vlm, bench_pez, bench_regenerate)

if __name__ == '__main__':
    chosen = sys.argv[1:] or [b.__name__ for b in BENCHMARKS]   # names of benchmarks to run (default: all), e.g. `bench_evaluator`
    for name in chosen:
        if name not in [b.__name__ for b in BENCHMARKS]: sys.exit(f'unknown benchmark {name!r}; valid choices: {", ".join(b.__name__ for b in BENCHMARKS)}')
    rows = []
    for b in BENCHMARKS:
        if b.__name__ not in chosen: continue
        print(f'running {b.__name__} …', flush=True)
        new = []; b(new)
        rows += [r | dict(group=b.__name__) for r in new]
    print(write_results(rows, chosen))
