"""Speed and memory benchmarks (issue 6). Each row is a ratio of two timings measured in this run on this machine.

    .venv/bin/python tools/benchmarks.py            # prints the table and writes results/benchmarks.md (`make bench`)

Nothing here is a test: targets are goals to compare against, not assertions.
"""
import os, sys, time, json, resource, subprocess, tempfile
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import torch, pandas as pd
from imgcap2text.core import project_path, set_seed, provenance, atomic_write
from imgcap2text.synth import PromptGrammar, render

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def images_and_prompts(n, size=64, seed=0):
    g = PromptGrammar(seed); prompts = [g() for _ in range(n)]
    return [render(p, i, size=size) for i, p in enumerate(prompts)], prompts

def caption_speed(cap, images, max_new_tokens=20):
    "Images/s: one `generate` per image (the seeds' code) against our batched generation (fp32, and bf16 autocast)."
    from imgcap2text.generate import generate_captions
    dec = dict(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)  # equal lengths
    def one_by_one():
        for im in images:
            with torch.no_grad(): cap.generate_sequences(cap.image_inputs([im]), None, **dec)
    def batched(bf16=False):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16), torch.no_grad():
            cap.generate_sequences(cap.image_inputs(images), None, **dec)
    cap.model.eval(); batched()   # warm-up
    base = timed(one_by_one); fp32 = timed(batched); bf16 = timed(lambda: batched(True))
    n = len(images)
    return dict(baseline=n / base, ours=n / fp32, ours_bf16=n / bf16)

def bench_captioning(rows):
    from imgcap2text.models import build_captioner
    from imgcap2text.models import BlipCaptioner
    from transformers import BlipConfig, BlipForConditionalGeneration, AutoTokenizer
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    from imgcap2text.models import bert_tokenizer_with_dec
    ims, prompts = images_and_prompts(16)
    tiny = build_captioner('blip', train_prompts=prompts * 5)
    r = caption_speed(tiny, ims)
    rows.append(dict(benchmark='captioning, tiny BLIP (16 images, greedy 20 tokens)', baseline=f"{r['baseline']:.1f} img/s one at a time",
                     ours=f"{r['ours']:.1f} img/s batched; {r['ours_bf16']:.1f} bf16", ratio=max(r['ours'], r['ours_bf16']) / r['baseline'], goal='>= 3x'))
    set_seed(0)
    base = BlipCaptioner(BlipForConditionalGeneration(BlipConfig()), bert_tokenizer_with_dec(), BlipImageProcessorPil(), 'paper')  # BLIP-base size, random weights
    big, _ = images_and_prompts(8, size=384)
    r = caption_speed(base, big)
    rows.append(dict(benchmark='captioning, BLIP-base architecture (8 images 384², greedy 20 tokens)', baseline=f"{r['baseline']:.2f} img/s one at a time",
                     ours=f"{r['ours']:.2f} img/s batched; {r['ours_bf16']:.2f} bf16", ratio=max(r['ours'], r['ours_bf16']) / r['baseline'], goal='>= 3x'))
    return base

def bench_cached_clip(rows):
    """A CLIP-prefix training epoch with cached CLIP embeddings against encoding the images at every step (CLIP ViT-B
    size). Per-epoch time = (time for 3 epochs − time for 1 epoch) / 2, so the one-off caching is not counted."""
    from datasets import Dataset, DatasetDict
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from imgcap2text.models import build_captioner
    from imgcap2text.train import fit
    ims, prompts = images_and_prompts(96, size=224)
    names = [f'{i}.png' for i in range(len(ims))]
    dsd = DatasetDict(train=Dataset.from_dict(dict(image=ims, prompt=prompts, image_name=names)),
                      validation=Dataset.from_dict(dict(image=ims[:8], prompt=prompts[:8], image_name=names[:8])))
    def run(cached, epochs):
        set_seed(0)
        cap = build_captioner('clip-gpt2', train_prompts=prompts * 3, freeze_gpt2=True)
        clip = CLIPModel(CLIPConfig(projection_dim=cap.model.config.clip_dim)).eval()   # ViT-B/32-size vision tower, random weights
        cap.clip, cap.image_processor = clip, CLIPImageProcessorPil()
        for p in clip.parameters(): p.requires_grad = False
        cap.cache_features = cached
        with tempfile.TemporaryDirectory() as d: return timed(lambda: fit(cap, dsd, d, epochs=epochs, batch_size=16, resume=False))
    per_epoch = {c: (run(c, 3) - run(c, 1)) / 2 for c in (True, False)}
    rows.append(dict(benchmark='CLIP-prefix training epoch (96 images 224², CLIP ViT-B size, GPT-2 frozen)', baseline=f'{per_epoch[False]:.2f} s encoding every step',
                     ours=f'{per_epoch[True]:.2f} s with cached embeddings', ratio=per_epoch[False] / per_epoch[True], goal='>= 10x'))

def bench_evaluator(rows, n=2000, chunk=10):
    "BERTScore + sentence cosine for n pairs: our scorers loaded once, against a fresh scorer per call of `chunk` pairs."
    from imgcap2text import metrics
    g = PromptGrammar(1); refs = [g() for _ in range(n)]; preds = [g() for _ in range(n)]
    def ours():
        metrics.bert_scorer.cache_clear(); metrics.sentence_model.cache_clear()
        metrics.bertscore(preds, refs); metrics.sentence_cosine(preds, refs)
    def per_call():
        from bert_score import BERTScorer
        from sentence_transformers import SentenceTransformer
        for i in range(0, n, chunk):
            BERTScorer(model_type=str(metrics.minilm_path()), num_layers=6, lang='en').score(preds[i:i+chunk], refs[i:i+chunk])
            m = SentenceTransformer(str(metrics.minilm_path())); m.encode(preds[i:i+chunk]); m.encode(refs[i:i+chunk])
    t_ours, t_base = timed(ours), timed(per_call)
    rows.append(dict(benchmark=f'evaluator, {n} pairs (BERTScore + cosine)', baseline=f'{t_base:.1f} s, scorers loaded per call of {chunk}',
                     ours=f'{t_ours:.1f} s, loaded once', ratio=t_base / t_ours, goal='>= 5x'))

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
                     ours=f'{after / 2**20:.2f} GiB peak ({time.perf_counter() - t:.0f} s)', ratio=after / before, goal='(measured)'))

if __name__ == '__main__':
    rows, chosen = [], sys.argv[1:]   # names of benchmarks to run (default: all), e.g. `bench_evaluator`
    for b in (bench_captioning, bench_cached_clip, bench_evaluator, bench_memory):
        if chosen and b.__name__ not in chosen: continue
        print(f'running {b.__name__} …', flush=True); b(rows); print(rows[-1], flush=True)
    df = pd.DataFrame(rows); df['ratio'] = df.ratio.map(lambda r: f'{r:.1f}x')
    table = df.to_markdown(index=False)
    print(table)
    out = project_path('results', 'benchmarks.md' if not chosen else 'benchmarks-partial.md')
    atomic_write(out, f'{table}\n\nMachine: {os.cpu_count()} cores; torch {torch.__version__}; threads {torch.get_num_threads()}.\n')
    atomic_write(out.with_suffix('.json'), json.dumps(dict(rows=rows, provenance=provenance()), indent=1, default=str))
