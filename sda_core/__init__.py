"""sda_core: the logic of the SDA / DDA test-time adaptation workflow.

Everything the Snakemake rules run lives here and is importable without Snakemake:
`diffusion` (schedule maths, guided re-noise/denoise, training loss), `models`
(ADM UNet, DiT, timm classifiers), `data` (digits world, corruptions), `store`
(resumable zarr image stores) and `jobs` (one entry function per workflow stage).
"""
