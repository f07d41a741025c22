"""CLAP-TeminAL: a CLAP-style contrastive audio-text dual encoder (HTSAT or BEATs audio tower, RoBERTa-style text).

The towers are transformers' own public CLAP classes (`ClapAudioModel` = HTSAT, `ClapTextModel` = RoBERTa; subclassed
here only to state their attention support) or hf-alm's `BeatsModel`; the module names (`audio_model`, `text_model`,
`audio_projection.linear1`, ..., `logit_scale_a`, `logit_scale_t`) follow transformers' `ClapModel`, so a
laion/clap-htsat-* checkpoint maps one to one (:meth:`ClapTeminalModel.from_clap`).
"""

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, ClapAudioModel, ClapTextConfig, ClapTextModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput, TransformersKwargs, can_return_tuple

from .beats_tower import beats_model_class
from .configuration_clap_teminal import ClapTeminalConfig
from .remote_code import stage_remote_code


@dataclass
class ClapTeminalOutput(ModelOutput):
    r"""Output of [`ClapTeminalModel.forward`], field for field like transformers' `ClapOutput`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, returned when `return_loss=True`):
            Symmetric InfoNCE: the mean of the cross-entropies of `logits_per_audio` and `logits_per_text` with the
            diagonal (the i-th audio goes with the i-th text) as targets.
        logits_per_audio (`torch.FloatTensor` of shape `(audio_batch_size, text_batch_size)`):
            `exp(logit_scale_a) * cosine(audio_embeds, text_embeds)`.
        logits_per_text (`torch.FloatTensor` of shape `(text_batch_size, audio_batch_size)`):
            `exp(logit_scale_t) * cosine(text_embeds, audio_embeds)`.
        text_embeds (`torch.FloatTensor` of shape `(text_batch_size, projection_dim)`): L2-normalised text embeddings.
        audio_embeds (`torch.FloatTensor` of shape `(audio_batch_size, projection_dim)`):
            L2-normalised audio embeddings.
        text_model_output (`BaseModelOutputWithPooling`): the output of the text tower.
        audio_model_output (`BaseModelOutputWithPooling`): the output of the audio tower.
    """

    loss: torch.FloatTensor | None = None
    logits_per_audio: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    audio_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


class ClapTeminalProjection(nn.Module):
    """Two-layer projection head `linear2(act(linear1(x)))` (the layout of transformers' `ClapProjectionLayer`)."""

    def __init__(self, in_features: int, projection_dim: int, hidden_act: str):
        super().__init__()
        self.linear1 = nn.Linear(in_features, projection_dim)
        self.activation = ACT2FN[hidden_act]
        self.linear2 = nn.Linear(projection_dim, projection_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(hidden_states)))


def contrastive_loss(logits_per_audio: torch.Tensor, logits_per_text: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with diagonal targets: `(CE(logits_per_audio) + CE(logits_per_text)) / 2`."""
    if logits_per_audio.shape[0] != logits_per_audio.shape[1]:
        raise ValueError(
            "return_loss=True needs as many texts as audio clips (one caption per clip), got logits of shape "
            f"{tuple(logits_per_audio.shape)}"
        )
    labels = torch.arange(logits_per_audio.shape[0], device=logits_per_audio.device)
    return (F.cross_entropy(logits_per_audio, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def time_segment_pool(hidden: torch.Tensor, padding_mask: torch.Tensor | None, num_segments: int,
                      num_columns: int) -> torch.Tensor:
    """Order-preserving pooling of time-major patches ``(B, T * num_columns, D)`` into ``(B, num_segments * D)``.

    The patches of each time step are averaged over their ``num_columns`` frequency columns; then the clip's valid
    time steps (``padding_mask`` True = padding, a padded time step has all its columns padded) are cut into
    ``num_segments`` equal spans of its own length, and each span's mean is taken, weighting each time step by the
    length of its overlap with the span (so a clip shorter than ``num_segments`` steps still gets every segment).
    The segments are concatenated in time order.
    """
    batch, num_patches, dim = hidden.shape
    steps = num_patches // num_columns
    frames = hidden[:, : steps * num_columns].reshape(batch, steps, num_columns, dim).mean(2)
    if padding_mask is None:
        lengths = torch.full((batch,), float(steps), device=hidden.device)
    else:
        padded = padding_mask[:, : steps * num_columns].reshape(batch, steps, num_columns).all(-1)
        lengths = (~padded).sum(-1).to(torch.float32).clamp(min=1.0)
    t = torch.arange(steps, device=hidden.device, dtype=torch.float32)
    s = torch.arange(num_segments, device=hidden.device, dtype=torch.float32)
    span = (lengths / num_segments)[:, None, None]  # (B, 1, 1)
    start, end = s[None, :, None] * span, (s[None, :, None] + 1) * span  # (B, K, 1)
    overlap = (torch.minimum(end, t + 1) - torch.maximum(start, t)).clamp(min=0.0)  # (B, K, T)
    weights = (overlap / overlap.sum(-1, keepdim=True)).to(hidden.dtype)
    return torch.bmm(weights, frames).reshape(batch, num_segments * dim)


# transformers' keyword arguments of a model call (`TransformersKwargs`: the output flags, attention / packing arguments
# such as `cu_seq_lens_q`, the Trainer's `num_items_in_batch`); any other unknown keyword is a TypeError naming it
_CALL_KWARGS = frozenset(TransformersKwargs.__annotations__)
_OUTPUT_FLAGS = ("output_attentions", "output_hidden_states")
_TEXT_INPUTS = ("token_type_ids",)  # text-tower inputs a tokenizer may return (BERT-style)


class ClapTeminalTextModel(ClapTextModel):
    """transformers' `ClapTextModel` (RoBERTa-style), with SDPA support stated.

    Its self-attention goes through transformers' `AttentionInterface` and its mask through `create_bidirectional_mask`;
    transformers' class does not set `_supports_sdpa`, which made `attn_implementation="sdpa"` raise and left the
    default on eager. The one thing SDPA needs besides is to be told the attention is bidirectional: its modules carry
    no `is_causal`, and SDPA reads an unmasked call (no padding) as causal. `config.is_causal = False` is the default
    that transformers' forward wrapper passes to the attention as `is_causal` (a per-call `is_causal` still wins).
    Weights and module names are unchanged.
    """

    _supports_sdpa = True

    def __init__(self, config: ClapTextConfig, *args, **kwargs):
        if getattr(config, "is_causal", None) is None:
            config.is_causal = False
        super().__init__(config, *args, **kwargs)


class ClapTeminalAudioModel(ClapAudioModel):
    """transformers' `ClapAudioModel` (HTSAT). Its Swin window attention (relative-position bias, shifted-window mask)
    has one implementation, an explicit softmax: a model-wide `sdpa` (the default, or requested) resolves to `eager`
    here instead of raising, so the audio config names what runs. Weights and module names are unchanged."""

    def get_correct_attn_implementation(self, requested_attention, *args, **kwargs) -> str:
        if requested_attention in (None, "sdpa"):
            return "eager"
        return super().get_correct_attn_implementation(requested_attention, *args, **kwargs)


class ClapTeminalPreTrainedModel(PreTrainedModel):
    config: ClapTeminalConfig
    config_class = ClapTeminalConfig
    base_model_prefix = "clap_teminal"
    input_modalities = ("audio", "text")
    # the towers' layers are GradientCheckpointingLayers (ClapTextLayer, ClapAudioStage, BeatsEncoderLayer), which
    # `gradient_checkpointing_enable` switches on through the whole module tree
    supports_gradient_checkpointing = True
    # text tower: see ClapTeminalTextModel; BEATs: SDPA with its bias as the mask; HTSAT: see ClapTeminalAudioModel
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # the towers are PreTrainedModels and initialise themselves; here: projection heads and logit scales
        factor = self.config.initializer_factor
        if isinstance(module, ClapTeminalProjection):
            for linear in (module.linear1, module.linear2):
                init.normal_(linear.weight, mean=0.0, std=0.02 * factor)
                init.zeros_(linear.bias)
        elif isinstance(module, ClapTeminalModel):
            init.constant_(module.logit_scale_a, self.config.logit_scale_init)
            init.constant_(module.logit_scale_t, self.config.logit_scale_init)


class ClapTeminalModel(ClapTeminalPreTrainedModel):
    r"""CLAP-TeminAL dual encoder: an audio tower (HTSAT or BEATs) and a text tower, each followed by a two-layer
    projection head into a shared `projection_dim` space, and two learnable logit scales (audio->text, text->audio).

    The call signatures and return types follow transformers v5's `ClapModel`, so code written for `ClapModel`
    (including `pipeline("zero-shot-audio-classification")`) works unchanged.
    """

    main_input_name = "input_ids"

    def __init__(self, config: ClapTeminalConfig):
        super().__init__(config)
        # each tower resolves its sub-config's attention implementation (set there by an explicit request, else its
        # own default: sdpa where it supports it)
        if config.audio_tower == "htsat":
            self.audio_model = ClapTeminalAudioModel(config.audio_config)
        else:
            self.audio_model = beats_model_class()(config.audio_config)
        if isinstance(config.text_config, ClapTextConfig):
            self.text_model = ClapTeminalTextModel(config.text_config)
        else:
            self.text_model = AutoModel.from_config(config.text_config)
        self.audio_projection = ClapTeminalProjection(
            config.audio_embed_size, config.projection_dim, config.projection_hidden_act
        )
        self.text_projection = ClapTeminalProjection(
            config.text_config.hidden_size, config.projection_dim, config.projection_hidden_act
        )
        self.logit_scale_a = nn.Parameter(torch.tensor(config.logit_scale_init))
        self.logit_scale_t = nn.Parameter(torch.tensor(config.logit_scale_init))
        self.post_init()

    # ------------------------------------------------------------------ embeddings
    def get_input_embeddings(self) -> nn.Module:
        """The text tower's token embeddings (what `resize_token_embeddings` resizes)."""
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.text_model.set_input_embeddings(value)

    # ------------------------------------------------------------------ towers
    def _check_kwargs(self, method: str, kwargs: dict, extra: tuple = ()) -> None:
        """A TypeError naming the keyword arguments that neither `method` nor transformers' call protocol takes."""
        unknown = sorted(set(kwargs) - _CALL_KWARGS - set(extra))
        if unknown:
            hint = "; the contrastive loss needs return_loss=True, not labels" if "labels" in unknown else ""
            raise TypeError(
                f"{type(self).__name__}.{method}() got unexpected keyword argument(s) "
                f"{', '.join(repr(k) for k in unknown)}{hint}"
            )

    def _output_flags(self, kwargs: dict) -> dict:
        """`output_attentions` / `output_hidden_states` of this call (popped from `kwargs`), else the config's."""
        flags = {}
        for name in _OUTPUT_FLAGS:
            value = kwargs.pop(name, None)
            flags[name] = getattr(self.config, name, False) if value is None else value
        return flags

    def _audio_tower(self, input_features, attention_mask=None, is_longer=None, output_attentions=None,
                     output_hidden_states=None) -> BaseModelOutputWithPooling:
        if input_features is None:
            raise ValueError("input_features is required to compute audio embeddings (got None)")
        if input_features.is_floating_point():  # fp32 processor features into a bf16 / fp16 tower
            input_features = input_features.to(self.audio_model.dtype)
        # dict outputs from the tower whatever its config says; the caller returns tuples if asked
        flags = {"output_attentions": output_attentions, "output_hidden_states": output_hidden_states,
                 "return_dict": True}
        if self.config.audio_tower == "htsat":
            if input_features.dim() == 3:  # (batch, frames, mels) -> (batch, 1, frames, mels)
                input_features = input_features.unsqueeze(1)
            if input_features.dim() != 4:
                raise ValueError(
                    "HTSAT input_features must have shape (batch, channels, frames, mel_bins) or (batch, frames, "
                    f"mel_bins), got {tuple(input_features.shape)}"
                )
            mels = self.config.audio_config.num_mel_bins
            if input_features.shape[-1] != mels:
                raise ValueError(
                    f"input_features have {input_features.shape[-1]} mel bins but the audio tower expects {mels}; "
                    "use the processor saved with this model"
                )
            out = self.audio_model(input_features=input_features, is_longer=is_longer, **flags)
            if self.config.audio_time_segments > 1:
                # last stage (batch, channels, freq, time), time columns in temporal order: average over frequency
                frames = out.last_hidden_state.mean(2).transpose(1, 2)
                out.pooler_output = time_segment_pool(frames, None, self.config.audio_time_segments, 1)
            return out
        if input_features.dim() == 4 and input_features.shape[1] == 1:
            input_features = input_features[:, 0]
        out = self.audio_model(input_features, attention_mask=attention_mask, **flags)
        hidden = out.last_hidden_state
        padding = getattr(out, "padding_mask", None) if attention_mask is not None else None
        if self.config.audio_time_segments > 1:
            pooled = time_segment_pool(hidden, padding, self.config.audio_time_segments,
                                       self.config.audio_config.num_patch_columns)
        elif padding is not None and bool(padding.any()):
            valid = (~padding).to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * valid).sum(1) / valid.sum(1).clamp(min=1.0)
        else:
            pooled = hidden.mean(1)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=pooled,
            hidden_states=getattr(out, "hidden_states", None),
            attentions=getattr(out, "attentions", None),
        )

    def _text_tower(self, input_ids, attention_mask=None, position_ids=None, **kwargs) -> BaseModelOutputWithPooling:
        if input_ids is None:
            raise ValueError("input_ids is required to compute text embeddings (got None)")
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        # dict outputs from the tower whatever its config says; the caller returns tuples if asked
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        if getattr(out, "pooler_output", None) is None:
            out = BaseModelOutputWithPooling(
                last_hidden_state=out.last_hidden_state,
                pooler_output=out.last_hidden_state[:, 0],
                hidden_states=getattr(out, "hidden_states", None),
                attentions=getattr(out, "attentions", None),
            )
        return out

    def _scales(self):
        limit = self.config.logit_scale_max
        return self.logit_scale_a.exp().clamp(max=limit), self.logit_scale_t.exp().clamp(max=limit)

    # ------------------------------------------------------------------ public API
    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        r"""Text embeddings, as transformers v5's `ClapModel.get_text_features`.

        Args:
            kwargs: `token_type_ids`, `output_attentions` / `output_hidden_states` (default: the config's) and
                transformers' attention keyword arguments (`TransformersKwargs`), for the text tower; any other name
                raises `TypeError`.

        Returns:
            `BaseModelOutputWithPooling`: the text tower's output whose `pooler_output` is replaced by the
            **projected and L2-normalised** text embedding, shape `(batch_size, projection_dim)`;
            `last_hidden_state` is the tower's token states.
        """
        self._check_kwargs("get_text_features", kwargs, _TEXT_INPUTS)
        kwargs.update(self._output_flags(kwargs))
        kwargs.pop("num_items_in_batch", None)  # a loss argument (the Trainer's): no tower uses it
        out = self._text_tower(input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        out.pooler_output = F.normalize(self.text_projection(out.pooler_output), dim=-1)
        return out

    @can_return_tuple
    def get_audio_features(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        is_longer: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        r"""Audio embeddings, as transformers v5's `ClapModel.get_audio_features`.

        Args:
            input_features: HTSAT: CLAP log-mels `(batch, 1, frames, 64)` from [`ClapTeminalFeatureExtractor`];
                BEATs: fbank features from `BeatsFeatureExtractor` (also accepted as `input_values`). Cast to the
                audio tower's dtype.
            attention_mask: BEATs only (True/1 = real frame or sample); HTSAT uses repeat-padding and ignores it.
            is_longer: HTSAT fusion models only (as in `ClapModel`).
            kwargs: `input_values`, `output_attentions` / `output_hidden_states` (default: the config's);
                transformers' attention keyword arguments (`TransformersKwargs`) are accepted and ignored (they are
                the text tower's); any other name raises `TypeError`.

        Returns:
            `BaseModelOutputWithPooling`: the audio tower's output whose `pooler_output` is replaced by the
            **projected and L2-normalised** audio embedding, shape `(batch_size, projection_dim)`.
        """
        self._check_kwargs("get_audio_features", kwargs, ("input_values",))
        input_features = self._audio_input(input_features, kwargs)
        out = self._audio_tower(input_features, attention_mask=attention_mask, is_longer=is_longer,
                                **self._output_flags(kwargs))
        out.pooler_output = F.normalize(self.audio_projection(out.pooler_output), dim=-1)
        return out

    @staticmethod
    def _audio_input(input_features, kwargs: dict):
        """`input_features`, or `input_values` (the BEATs feature extractor's name) popped from `kwargs`."""
        input_values = kwargs.pop("input_values", None)
        if input_values is None:
            return input_features
        if input_features is not None:
            raise ValueError("got both input_features and input_values; pass the audio features once")
        return input_values

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.FloatTensor | None = None,
        is_longer: torch.BoolTensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        return_loss: bool | None = None,
        position_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> ClapTeminalOutput:
        r"""Both towers and the audio-text logits, like `ClapModel.forward`.

        Args:
            input_ids, attention_mask: tokenised captions (`attention_mask` is the *text* mask).
            input_features, is_longer: audio features from the processor (`input_values` is accepted too).
            audio_attention_mask: the audio mask (BEATs tower), kept apart from the text mask.
            return_loss: also return the symmetric contrastive loss (needs one caption per clip).
            kwargs: `input_values`, `token_type_ids`, `output_attentions` / `output_hidden_states` (default: the
                config's, for both towers), `return_dict` (default: `config.return_dict`) and transformers' attention
                keyword arguments (`TransformersKwargs`, for the text tower); any other name raises `TypeError`.

        Returns:
            [`ClapTeminalOutput`] with `logits_per_audio = exp(logit_scale_a) * audio_embeds @ text_embeds.T` and
            `logits_per_text = exp(logit_scale_t) * text_embeds @ audio_embeds.T` (embeddings L2-normalised).
        """
        self._check_kwargs("forward", kwargs, ("input_values",) + _TEXT_INPUTS)
        input_features = self._audio_input(input_features, kwargs)
        flags = self._output_flags(kwargs)
        audio_out = self.get_audio_features(
            input_features, attention_mask=audio_attention_mask, is_longer=is_longer, return_dict=True, **flags
        )
        text_out = self.get_text_features(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, return_dict=True, **flags, **kwargs
        )
        audio_embeds = audio_out.pooler_output
        text_embeds = text_out.pooler_output
        scale_a, scale_t = self._scales()
        logits_per_audio = scale_a * audio_embeds @ text_embeds.t()
        logits_per_text = scale_t * text_embeds @ audio_embeds.t()
        loss = contrastive_loss(logits_per_audio, logits_per_text) if return_loss else None
        return ClapTeminalOutput(
            loss=loss,
            logits_per_audio=logits_per_audio,
            logits_per_text=logits_per_text,
            text_embeds=text_embeds,
            audio_embeds=audio_embeds,
            text_model_output=text_out,
            audio_model_output=audio_out,
        )

    # ------------------------------------------------------------------ conversion and remote code
    @classmethod
    def from_clap(cls, src, **kwargs) -> "ClapTeminalModel":
        """Initialise from a transformers `ClapModel` folder (the layout of `laion/clap-htsat-unfused`).

        Every weight is copied; a missing or unknown key raises `ValueError` naming the keys. `kwargs` go to the
        config; with `audio_time_segments=K` the audio projection's first layer is tiled over the K segment means and
        divided by K, so the converted model still computes the checkpoint's embeddings (the mean of K equal segment
        means is the mean) and post-training can learn to use the order.
        """
        from transformers import ClapConfig, ClapModel

        if not os.path.isdir(src):
            raise FileNotFoundError(f"ClapModel folder not found: {src}")
        if not os.path.isfile(os.path.join(src, "config.json")):
            raise FileNotFoundError(f"no config.json in the ClapModel folder {src}")
        clap_config = ClapConfig.from_pretrained(src)
        if clap_config.model_type != "clap":
            raise ValueError(f"{src} holds a {clap_config.model_type!r} model, not a transformers ClapModel ('clap')")
        config = ClapTeminalConfig(
            audio_tower="htsat",
            audio_config=clap_config.audio_config.to_dict(),
            text_config=clap_config.text_config.to_dict(),
            projection_dim=clap_config.projection_dim,
            projection_hidden_act=clap_config.projection_hidden_act,
            logit_scale_init_value=clap_config.logit_scale_init_value,
            **kwargs,
        )
        source, info = ClapModel.from_pretrained(src, output_loading_info=True)
        problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
        if problems:
            raise ValueError(f"the ClapModel checkpoint in {src} does not match its config: {problems}")
        model = cls(config)
        state = source.state_dict()
        segments = config.audio_time_segments
        if segments > 1:  # [W / K, ..., W / K] on the K concatenated segment means = W on their mean (the CLAP pool)
            key = "audio_projection.linear1.weight"
            state[key] = state[key].repeat(1, segments) / segments
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"cannot map the ClapModel weights of {src}: missing {sorted(result.missing_keys)}, "
                f"unknown {sorted(result.unexpected_keys)}"
            )
        model.eval()
        return model

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, then (BEATs tower) the BEATs files are staged for remote code."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        if self.config.audio_tower == "beats":
            stage_remote_code(save_directory, audio_tower="beats")
        return out


ClapTeminalModel.register_for_auto_class("AutoModel")

__all__ = ["ClapTeminalModel", "ClapTeminalOutput", "ClapTeminalPreTrainedModel", "stage_remote_code"]
