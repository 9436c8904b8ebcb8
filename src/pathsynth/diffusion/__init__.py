"""The class-conditional diffusion generator: a ``diffusers`` UNet trained with v-prediction,
sampled with DDIM or DPM-Solver++ under classifier-free guidance, behind the GAN's run interface."""
