"""diffusers' LoRA methods on `UniViGUModel`, a transformers model: the `load_lora_adapter`, `fuse_lora`, `unload_lora`,
`set_adapters`, ... of diffusers' `PeftAdapterMixin` (the ones `WanTransformer3DModel` has), so diffusers' LoRA loader
(`WanLoraLoaderMixin.load_lora_weights`) loads Wan LoRAs into it. Only the diffusers names transformers does not have
are taken: transformers' own `add_adapter` / `set_adapter` / `load_adapter` / `enable_adapters` / `disable_adapters` /
`active_adapters` / `delete_adapter` stay transformers'. Both libraries keep their adapters in the same place (peft
layers, `peft_config`, `_hf_peft_config_loaded`), so an adapter loaded through either is seen by both."""

from diffusers.loaders.peft import PeftAdapterMixin


class DiffusersLoraMixin:
    """
    diffusers' LoRA methods for [`UniViGUModel`] (those of diffusers' `PeftAdapterMixin`, borrowed as `UniViGUPipeline`
    borrows `WanPipeline.encode_prompt`): `load_lora_adapter`, `save_lora_adapter`, `fuse_lora` / `unfuse_lora`,
    `unload_lora`, `disable_lora` / `enable_lora`, `delete_adapters`, `set_adapters`, `enable_lora_hotswap`. The LoRA
    keys are Wan's module names (`blocks.0.attn1.to_q`, ...), which `UniViGUModel` keeps.
    """

    # kwargs for peft's `prepare_model_for_compiled_hotswap`, set by `enable_lora_hotswap`
    _prepare_lora_hotswap_kwargs: dict | None = None

    _optionally_disable_offloading = PeftAdapterMixin.__dict__["_optionally_disable_offloading"]

    def load_lora_adapter(self, pretrained_model_name_or_path_or_dict, prefix="transformer", hotswap=False, **kwargs):
        """
        diffusers' `PeftAdapterMixin.load_lora_adapter` (see there for the arguments): loads a diffusers-format LoRA
        (`<prefix>.blocks.0.attn1.to_q.lora_A.weight`, ...) into this model. The injected LoRA layers then follow the
        model's train/eval mode (peft creates them in training mode, so an adapter saved with `lora_dropout` would
        otherwise drop activations at inference).
        """
        PeftAdapterMixin.load_lora_adapter(self, pretrained_model_name_or_path_or_dict, prefix, hotswap, **kwargs)
        self.train(self.training)

    save_lora_adapter = PeftAdapterMixin.save_lora_adapter
    fuse_lora = PeftAdapterMixin.fuse_lora
    _fuse_lora_apply = PeftAdapterMixin._fuse_lora_apply
    unfuse_lora = PeftAdapterMixin.unfuse_lora
    _unfuse_lora_apply = PeftAdapterMixin._unfuse_lora_apply
    unload_lora = PeftAdapterMixin.unload_lora
    disable_lora = PeftAdapterMixin.disable_lora
    enable_lora = PeftAdapterMixin.enable_lora
    delete_adapters = PeftAdapterMixin.delete_adapters
    enable_lora_hotswap = PeftAdapterMixin.enable_lora_hotswap

    def set_adapters(self, adapter_names: list[str] | str, weights: float | dict | list | None = None) -> None:
        """
        Activates `adapter_names` with their `weights` (a number, a `{module-name-pattern: number}` dict, or one of
        those per adapter; `None` means 1.0), as diffusers' `PeftAdapterMixin.set_adapters` (whose per-block expansion
        is keyed by diffusers model class, so the generic layer-name matching is used here).
        """
        from diffusers.loaders.lora_base import set_adapters_for_text_encoder

        if not getattr(self, "_hf_peft_config_loaded", False):
            raise ValueError("No LoRA adapter is loaded: load one first (`load_lora_adapter` / `load_lora_weights`).")
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        missing = [name for name in names if name not in self.peft_config]
        if missing:
            raise ValueError(
                f"Adapter name(s) {missing} not in the list of present adapters: {set(self.peft_config)}."
            )
        set_adapters_for_text_encoder(names, self, weights)


__all__ = ["DiffusersLoraMixin"]
