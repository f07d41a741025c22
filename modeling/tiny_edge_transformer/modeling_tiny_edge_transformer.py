"""The tiny edge transformer: a BERT-style encoder over log-mel frames with a classification head.

Architecture (Elliott et al., arXiv 2103.12157; dimensions chosen by counting parameters, see the configuration):
each log-mel frame is one token, ``inputs_embeds = Linear(num_mel_bins -> hidden_size)``; learned absolute position
embeddings are added, then LayerNorm and dropout (BERT embeddings); ``num_hidden_layers`` post-LN layers
``h = LN(h + Dropout(SelfAttention(h)))``, ``h = LN(h + Dropout(FFN(h)))``; pooling is the masked mean of the frames
(or a [CLS] token); the head is dropout + one linear layer. Attention goes through the transformers attention
interface (``eager`` and ``sdpa``).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # the attention registry (AttentionInterface)

from .configuration_tiny_edge_transformer import TinyEdgeTransformerConfig


def eager_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0, **kwargs):
    """softmax(q k^T * scaling + mask) v; returns (output (B, T, heads, head_dim), weights (B, heads, T, T))."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class TinyEdgeTransformerEmbeddings(nn.Module):
    """Mel frames -> tokens: linear projection + learned positions (+ optional [CLS]) -> LayerNorm -> dropout."""

    def __init__(self, config: TinyEdgeTransformerConfig):
        super().__init__()
        self.use_cls = config.pooling == "cls"
        self.projection = nn.Linear(config.num_mel_bins, config.hidden_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if self.use_cls else None
        self.position_embeddings = nn.Embedding(config.max_position_embeddings + int(self.use_cls),
                                                config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        # float32 features from the feature extractor into a bf16 / fp16 model: cast to the parameters' dtype
        tokens = self.projection(input_values.to(self.projection.weight.dtype))
        if self.use_cls:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        tokens = tokens + self.position_embeddings(positions)[None]
        return self.dropout(self.LayerNorm(tokens))


class TinyEdgeTransformerSelfAttention(nn.Module):
    def __init__(self, config: TinyEdgeTransformerConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False, **kwargs):
        shape = (*hidden_states.shape[:-1], -1, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        # read at call time, so model.set_attn_implementation(...) takes effect on a built model
        implementation = self.config._attn_implementation or "eager"
        if output_attentions:
            implementation = "eager"  # only the eager kernel returns probabilities
        attention = eager_attention_forward
        if implementation != "eager":
            attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention(self, query, key, value, attention_mask,
                                    dropout=self.attention_dropout if self.training else 0.0, scaling=self.scaling,
                                    **kwargs)
        output = output.reshape(*hidden_states.shape[:-1], -1).contiguous()
        return self.o_proj(output), weights


class TinyEdgeTransformerLayer(nn.Module):
    """A post-LN (BERT) encoder layer."""

    def __init__(self, config: TinyEdgeTransformerConfig):
        super().__init__()
        self.attention = TinyEdgeTransformerSelfAttention(config)
        self.attention_LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False, **kwargs):
        attended, weights = self.attention(hidden_states, attention_mask, output_attentions=output_attentions,
                                           **kwargs)
        hidden_states = self.attention_LayerNorm(hidden_states + self.dropout(attended))
        ffn = self.output(self.activation(self.intermediate(hidden_states)))
        hidden_states = self.output_LayerNorm(hidden_states + self.dropout(ffn))
        return hidden_states, weights


# The Auto classes of this model type, as ``import hf_alm`` registers them (hf_alm/auto reads this mapping). A saved
# folder names all of them in ``auto_map`` whichever class was saved, so that with ``trust_remote_code=True`` and no
# hf-alm installed a classifier folder also loads with ``AutoModel`` (its encoder), as it does with hf-alm.
AUTO_CLASS_NAMES = {"AutoModel": "TinyEdgeTransformerModel",
                     "AutoModelForAudioClassification": "TinyEdgeTransformerForAudioClassification"}


class TinyEdgeTransformerPreTrainedModel(PreTrainedModel):
    config_class = TinyEdgeTransformerConfig
    config: TinyEdgeTransformerConfig
    base_model_prefix = "tiny_edge_transformer"
    main_input_name = "input_values"
    input_modalities = ("audio",)
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["TinyEdgeTransformerLayer"]

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with every Auto class of the model type in ``auto_map`` (the saved
        class keeps its own entry: a tokenizer folder's ``AutoModel`` stays the tokenizer)."""
        if getattr(type(self), "_auto_class", None) is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            for auto_name, class_name in AUTO_CLASS_NAMES.items():
                auto_map.setdefault(auto_name, f"{module}.{class_name}")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, TinyEdgeTransformerEmbeddings) and module.cls_token is not None:
            try:
                from transformers import initialization as init

                init.normal_(module.cls_token, mean=0.0, std=self.config.initializer_range)
            except ImportError:  # pragma: no cover
                module.cls_token.normal_(mean=0.0, std=self.config.initializer_range)


def _validate_inputs(config: TinyEdgeTransformerConfig, input_values, attention_mask):
    if input_values is None:
        raise ValueError("input_values (batch, frames, num_mel_bins) is required")
    if input_values.ndim != 3 or input_values.shape[-1] != config.num_mel_bins:
        raise ValueError(f"input_values must have shape (batch, frames, {config.num_mel_bins}), "
                         f"got {tuple(input_values.shape)}")
    if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
        if input_values.shape[1] > config.max_position_embeddings:
            raise ValueError(f"input has {input_values.shape[1]} frames, more than max_position_embeddings="
                             f"{config.max_position_embeddings}; truncate it (the feature extractor does)")
        if input_values.shape[1] == 0:
            raise ValueError("input_values has 0 frames")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_values.shape[:2]):
        raise ValueError(f"attention_mask must have shape {tuple(input_values.shape[:2])} (batch, frames), "
                         f"got {tuple(attention_mask.shape)}")


class TinyEdgeTransformerModel(TinyEdgeTransformerPreTrainedModel):
    """The encoder; ``pooler_output`` is the masked mean of the last hidden states (or the [CLS] state)."""

    def __init__(self, config: TinyEdgeTransformerConfig):
        super().__init__(config)
        self.embeddings = TinyEdgeTransformerEmbeddings(config)
        self.layers = nn.ModuleList([TinyEdgeTransformerLayer(config) for _ in range(config.num_hidden_layers)])
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.projection

    def forward(self, input_values: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> BaseModelOutputWithPooling | tuple:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, frames, num_mel_bins)`): normalised log-mel frames
            from [`TinyEdgeTransformerFeatureExtractor`].
        attention_mask (`torch.Tensor` of shape `(batch_size, frames)`, *optional*): 1 for real frames, 0 for padding.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (self.config.output_hidden_states if output_hidden_states is None
                                else output_hidden_states)
        return_dict = self.config.return_dict if return_dict is None else return_dict
        _validate_inputs(self.config, input_values, attention_mask)

        hidden_states = self.embeddings(input_values)
        batch, length = hidden_states.shape[:2]
        frame_mask = None
        additive_mask = None
        if attention_mask is not None:
            frame_mask = attention_mask.to(torch.bool)
            token_mask = frame_mask
            if self.config.pooling == "cls":
                token_mask = torch.cat([frame_mask.new_ones(batch, 1), frame_mask], dim=1)
            additive_mask = torch.zeros(batch, 1, 1, length, dtype=hidden_states.dtype, device=hidden_states.device)
            additive_mask = additive_mask.masked_fill(~token_mask[:, None, None, :],
                                                      torch.finfo(hidden_states.dtype).min)

        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, additive_mask, output_attentions=bool(output_attentions),
                                           **kwargs)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
            if output_attentions:
                all_attentions = all_attentions + (weights,)

        if self.config.pooling == "cls":
            pooled = hidden_states[:, 0]
        elif frame_mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            weights_t = frame_mask.to(hidden_states.dtype)[..., None]
            pooled = (hidden_states * weights_t).sum(dim=1) / weights_t.sum(dim=1).clamp(min=1.0)

        if not return_dict:
            return tuple(v for v in (hidden_states, pooled, all_hidden, all_attentions) if v is not None)
        return BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=pooled,
                                          hidden_states=all_hidden, attentions=all_attentions)


class TinyEdgeTransformerForAudioClassification(TinyEdgeTransformerPreTrainedModel):
    """The encoder + dropout + a linear classifier on the pooled output."""

    def __init__(self, config: TinyEdgeTransformerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.tiny_edge_transformer = TinyEdgeTransformerModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_values: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> SequenceClassifierOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*): class indices (cross-entropy); float
            `(batch_size, num_labels)` multi-hot targets with `problem_type="multi_label_classification"` (BCE).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.tiny_edge_transformer(input_values, attention_mask=attention_mask,
                                             output_attentions=output_attentions,
                                             output_hidden_states=output_hidden_states, return_dict=True, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self._loss(logits, labels)
        if not return_dict:
            rest = tuple(v for v in (outputs.hidden_states, outputs.attentions) if v is not None)
            return ((loss,) if loss is not None else ()) + (logits,) + rest
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                        attentions=outputs.attentions)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        problem = self.config.problem_type
        if problem is None:
            if self.num_labels == 1:
                problem = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        labels = labels.to(logits.device)
        if problem == "regression":
            return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
        if problem == "multi_label_classification":
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_labels):
            raise ValueError(f"labels must be in [0, {self.num_labels - 1}], got values from {int(labels.min())} "
                             f"to {int(labels.max())}")
        return nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))


TinyEdgeTransformerModel.register_for_auto_class("AutoModel")
TinyEdgeTransformerForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")

__all__ = ["TinyEdgeTransformerForAudioClassification", "TinyEdgeTransformerModel",
           "TinyEdgeTransformerPreTrainedModel"]
