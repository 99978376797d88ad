"""The GPU check (issue 12): what matters on CUDA, measured in one run of a few minutes, written to benchmarks/gpu.{json,md}
with the device named.

1. Captioning with the BLIP-base architecture (384², random weights: the device machine has no hub), batched against
   transformers' `pipeline` one image at a time, in fp32 and bf16 (tools/benchmarks.py `bench_captioning`).
2. A paper-size BLIP training step (BLIP-base, batch 8, 384², 40 tokens) under fp16 and bf16 autocast and in fp32:
   time per step and peak GPU memory.
3. The CLIP-prefix training epoch at the report's sizes (CLIP ViT-B/16, GPT-2 base), embeddings cached once against
   encoding the images at every step (`bench_cached_clip`).
4. Zero-shot prompt recovery at CLIP ViT-L/14 size (SD 1.x's CLIP, random weights, bf16): embedding CLIP Interrogator's
   tables, building a prompt bank, and the interrogator's best mode batched with the shared prefix against one image
   at a time (`bench_interrogator`'s comparison).
5. The round trip at SD 1.4's size (its UNet, VAE and ViT-L/14 text encoder, random weights, fp16, 512², k_lms):
   regeneration images/s batched against one at a time, peak memory; PEZ at ViT-L/14 size, batched against one image
   at a time (issue 33).

    bash tools/gpu_check.sh            # on the GPU machine (installs what it lacks from wheels/ if there)
    python tools/gpu_check.py --dry-run   # anywhere: the same code on the CPU at toy sizes, writes nothing
"""
import sys, json, time, argparse
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch, pandas as pd
import benchmarks as B
from imgcap2text.core import provenance, atomic_write

def training_step(rows, batch:int=8, size:int=384, tokens:int=40, steps:int=5, config:dict|None=None):
    "Mean time of a BLIP training step after a warm-up, and the peak GPU memory, in fp32 and under fp16 / bf16 autocast."
    from transformers import BlipConfig, BlipForConditionalGeneration
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(**(config or {}))).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    pv = torch.randn(batch, 3, size, size, device=dev); ids = torch.randint(1000, 2000, (batch, tokens), device=dev)
    res = {}
    for name, dtype in (('fp32', None), ('fp16', torch.float16), ('bf16', torch.bfloat16)):
        if dev == 'cuda' and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported(): continue
        scaler = torch.amp.GradScaler(dev, enabled=dtype is torch.float16 and dev == 'cuda')
        def step():
            with torch.autocast(dev, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = model(pixel_values=pv, input_ids=ids, labels=ids).loss
            scaler.scale(loss).backward(); scaler.step(opt); scaler.update(); opt.zero_grad(set_to_none=True)
        step()   # warm-up
        if dev == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(steps): step()
        if dev == 'cuda': torch.cuda.synchronize()
        res[name] = ((time.perf_counter() - t) / steps, torch.cuda.max_memory_allocated() / 2**30 if dev == 'cuda' else float('nan'))
    for name, (sec, mem) in res.items():
        rows.append(dict(benchmark=f'BLIP training step, batch {batch}, {size}², {tokens} tokens, {name}' + (' autocast' if name != 'fp32' else ''),
                         baseline=f"{res['fp32'][0] * 1000:.0f} ms/step fp32", ours=f'{sec * 1000:.0f} ms/step, peak {mem:.2f} GiB',
                         ratio=res['fp32'][0] / sec, goal='(measured)'))
        print(rows[-1], flush=True)

def vit_l_zero_shot(rows, n_bank:int=200_000, n_images:int=8, dry:bool=False):
    """CLIP ViT-L/14's architecture (openai/clip-vit-large-patch14's sizes, random weights, a BPE tokenizer trained here)
    in bf16: the label tables' embedding, a prompt bank's build, and the interrogator's best mode both ways."""
    import tempfile
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from imgcap2text.hub_replica import clip_tokenizer
    from imgcap2text.metrics import ClipScorer
    from imgcap2text.interrogator import Interrogator, LabelTable, load_label_tables
    from imgcap2text.bank import PromptBank
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    sizes = (dict(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
                  vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16),
                  projection_dim=16) if dry else
             dict(text_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
                  vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224, patch_size=14),
                  projection_dim=768))
    torch.manual_seed(0)
    tok = clip_tokenizer()[0]
    model = CLIPModel(CLIPConfig(**sizes)).to(dev, torch.bfloat16 if dev == 'cuda' else torch.float32).eval()
    size = sizes['vision_config']['image_size']
    scorer = ClipScorer(model, CLIPImageProcessorPil(size={'shortest_edge': size}, crop_size={'height': size, 'width': size}), tok, 'ViT-L/14 size')
    tables = load_label_tables()
    if dry: tables['tables'] = {k: v[:200] for k, v in tables['tables'].items()}
    n_labels = sum(len(v) for v in tables['tables'].values())
    t0 = time.perf_counter()
    embedded = {k: LabelTable.embed(v, scorer, k, cache=False, progress=False) for k, v in tables['tables'].items()}
    t_tables = time.perf_counter() - t0
    rows.append(dict(benchmark=f"embedding CLIP Interrogator's tables ({n_labels:,} labels), ViT-L/14 size, bf16", baseline='—',
                     ours=f'{t_tables:.0f} s ({n_labels / t_tables:,.0f} labels/s)', ratio=float('nan'), goal='(measured: once per CLIP)'))
    bank = B.synthetic_bank(2000 if dry else n_bank)
    t0 = time.perf_counter(); b = PromptBank.build(bank, scorer, tempfile.mkdtemp(), batch_size=1024, progress=False); t_bank = time.perf_counter() - t0
    rows.append(dict(benchmark=f'building a prompt bank of {len(bank):,} prompts, ViT-L/14 size, bf16', baseline='—',
                     ours=f"{len(bank) / t_bank:,.0f} prompts/s ({t_bank:.0f} s, {b.config['index']} index)", ratio=float('nan'), goal='(measured)'))
    it = Interrogator(scorer, embedded, batch_size=1024)
    ims, prompts = B.images_and_prompts(2 if dry else n_images, seed=3)
    caps = [p.split(',')[0] for p in prompts]
    it.interrogate(ims[:1], 'best', caps[:1])                                   # warm-up
    t0 = time.perf_counter(); ours = it.interrogate(ims, 'best', caps); t_ours = time.perf_counter() - t0
    t0 = time.perf_counter(); base = it.interrogate(ims, 'best', caps, one_at_a_time=True); t_base = time.perf_counter() - t0
    same = sum(a['prompt'] == b['prompt'] for a, b in zip(ours, base))
    rows.append(dict(benchmark=f'interrogator, best mode, {len(ims)} images, ViT-L/14 size, bf16', baseline=f'{len(ims) / t_base:.2f} images/s one at a time, in full',
                     ours=f'{len(ims) / t_ours:.2f} images/s batched, shared prefix ({same}/{len(ims)} answers the same)', ratio=t_base / t_ours, goal='>= 3x'))
    for r in rows[-3:]: print(r, flush=True)

def sd14_round_trip(rows, n:int=8, steps:int=25, dry:bool=False):
    """Stable Diffusion 1.4's architecture (CompVis/stable-diffusion-v1-4's UNet, VAE and text encoder sizes; random
    weights: the device machine has no hub) in fp16 through `regenerate.render_with`, then PEZ against a ViT-L/14-size CLIP."""
    import tempfile
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel, AutoencoderKL, PNDMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from imgcap2text.hub_replica import clip_tokenizer
    from imgcap2text.regenerate import render_with
    from imgcap2text.metrics import ClipScorer
    from imgcap2text.pez import pez_config, pez_prompts
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    dtype = torch.float16 if dev == 'cuda' else torch.float32
    torch.manual_seed(0)
    tok = clip_tokenizer()[0]; tok.model_max_length, tok.pad_token = 77, tok.eos_token
    w = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2) if dry else \
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    text = CLIPTextModel(CLIPTextConfig(**w, vocab_size=len(tok), max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    blocks = (32, 64) if dry else (320, 640, 1280, 1280)
    unet = UNet2DConditionModel(sample_size=8 if dry else 64, block_out_channels=blocks, layers_per_block=1 if dry else 2,
                                down_block_types=('CrossAttnDownBlock2D',) * (len(blocks) - 1) + ('DownBlock2D',),
                                up_block_types=('UpBlock2D',) + ('CrossAttnUpBlock2D',) * (len(blocks) - 1),
                                cross_attention_dim=w['hidden_size'], attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(8, 8, 16, 16) if dry else (128, 256, 512, 512), layers_per_block=1 if dry else 2, latent_channels=4,
                        norm_num_groups=8 if dry else 32, down_block_types=('DownEncoderBlock2D',) * 4, up_block_types=('UpDecoderBlock2D',) * 4)
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear', skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False).to(dev, dtype)
    pipe.set_progress_bar_config(disable=True)
    size, n, steps = (64, 2, 2) if dry else (512, n, steps)
    _, prompts = B.images_and_prompts(n, seed=5)
    settings = [dict(seed=i, step=steps, cfg=7.0, sampler=8) for i in range(n)]
    render_with(pipe, prompts[:1], settings[:1], size=size, batch_size=1)   # warm-up
    if dev == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter(); render_with(pipe, prompts, settings, size=size, batch_size=1); t_one = time.perf_counter() - t0
    t0 = time.perf_counter(); render_with(pipe, prompts, settings, size=size, batch_size=n); t_batch = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev == 'cuda' else float('nan')
    rows.append(dict(benchmark=f'regeneration, SD 1.4 size ({sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M-parameter UNet), {str(dtype)[6:]}, {size}², {steps} k_lms steps, {n} prompts',
                     baseline=f'{n / t_one:.2f} images/s one at a time', ours=f'{n / t_batch:.2f} images/s in one batch (peak {peak:.1f} GiB)', ratio=t_one / t_batch, goal='(measured)'))
    del pipe, unet, vae, text
    if dev == 'cuda': torch.cuda.empty_cache()
    cw = dict(text_config=w, vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16),
              projection_dim=16 if dry else 768)
    clip = CLIPModel(CLIPConfig(**cw)).to(dev, torch.bfloat16 if dev == 'cuda' else torch.float32).eval()
    scorer = ClipScorer(clip, CLIPImageProcessorPil(size={'shortest_edge': 32}, crop_size={'height': 32, 'width': 32}), tok, 'ViT-L/14 size')
    targets = torch.nn.functional.normalize(torch.randn(2 if dry else 32, cw['projection_dim'], device=dev), dim=-1)
    c = pez_config('paper', iters=5 if dry else 100)
    t0 = time.perf_counter(); pez_prompts(scorer, targets, pez_config(c, batch_size=1)); t_one = time.perf_counter() - t0
    t0 = time.perf_counter(); pez_prompts(scorer, targets, pez_config(c, batch_size=len(targets))); t_batch = time.perf_counter() - t0
    rows.append(dict(benchmark=f'PEZ, ViT-L/14-size text encoder, {c.prompt_len} tokens, {c.iters} steps, {len(targets)} images', baseline=f'{t_one / len(targets):.2f} s an image, one at a time',
                     ours=f'{t_batch / len(targets):.3f} s an image in one batch (the paper\'s 3,000 steps: {3000 / c.iters:.0f}x these)', ratio=t_one / t_batch, goal='>= 3x'))
    for r in rows[-2:]: print(r, flush=True)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--dry-run', action='store_true', help='toy sizes on any device; writes nothing')
    dry = ap.parse_args().dry_run
    if not dry and not torch.cuda.is_available(): sys.exit('no CUDA device: run this on the GPU machine, or try --dry-run')
    rows, t0 = [], time.perf_counter()
    if dry:
        small = dict(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=64),
                     text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2))
        training_step(rows, batch=2, size=64, tokens=8, steps=1, config=small)
        vit_l_zero_shot(rows, dry=True)
        sd14_round_trip(rows, dry=True)
    else:
        for bench in (B.bench_captioning, lambda r: training_step(r), B.bench_cached_clip, vit_l_zero_shot, sd14_round_trip):
            new = []; bench(new); rows += new
    df = pd.DataFrame(rows)[['benchmark', 'baseline', 'ours', 'ratio', 'goal']]
    df['ratio'] = df.ratio.map(lambda r: '—' if r != r else f'{r:.1f}x')
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'
    table = df.to_markdown(index=False) + f'\n\nMeasured by `tools/gpu_check.sh` on {device} (torch {torch.__version__}) in {time.perf_counter() - t0:.0f} s.\n'
    print(table)
    if not dry:
        out = Path(__file__).resolve().parents[1]/'benchmarks'
        atomic_write(out/'gpu.json', json.dumps(dict(rows=rows, device=device, provenance=provenance()), indent=1, default=str))
        atomic_write(out/'gpu.md', table)
